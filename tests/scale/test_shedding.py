"""Load shedding: beyond `max_inflight` calls a process refuses at once instead of queueing."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs.config import Settings

CHECK = health_pb2.HealthCheckRequest()


def test_a_call_beyond_the_bound_is_refused_at_once_and_served_once_there_is_room(running_server):
    server = running_server(settings=Settings(max_inflight=1))
    health = server.stub(health_pb2_grpc.HealthStub)
    watch = health.Watch(CHECK)  # a streaming call that holds the only slot until cancelled
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

    started = time.perf_counter()
    with pytest.raises(grpc.RpcError) as refused:
        health.Check(CHECK, timeout=5)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.perf_counter() - started < 1.0  # refused, not queued until the deadline

    watch.cancel()
    deadline = time.monotonic() + 5
    while True:  # the slot frees once the server has seen the cancellation
        try:
            assert health.Check(CHECK, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            break
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
            time.sleep(0.05)


def test_many_concurrent_calls_are_answered_or_refused_none_hangs(running_server):
    server = running_server(settings=Settings(max_inflight=2))
    health = server.stub(health_pb2_grpc.HealthStub)
    watch = health.Watch(CHECK)  # holds one of the two slots
    next(watch)
    started = time.perf_counter()
    futures = [health.Check.future(CHECK, timeout=5) for _ in range(100)]
    codes = [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in futures]
    assert time.perf_counter() - started < 4.0
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert grpc.StatusCode.OK in codes
    watch.cancel()


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"OMNIX_MAX_INFLIGHT": "64"}, "max_inflight", 64),
        ({"OMNIX_MAX_INFLIGHT": "0"}, "max_inflight", 0),
        ({"OMNIX_KEEPALIVE_TIME_MS": "30000"}, "keepalive_time_ms", 30_000),
        ({"OMNIX_CACHE_TTL_S": "0"}, "cache_ttl_s", 0),
        ({"OMNIX_REDIS_TIMEOUT_MS": "250"}, "redis_timeout_ms", 250),
        ({}, "redis_failure_threshold", 3),
        ({"OMNIX_REDIS_FAILURE_THRESHOLD": "1"}, "redis_failure_threshold", 1),
        ({}, "worker_base_port", 0),
        ({"OMNIX_WORKER_BASE_PORT": "50061"}, "worker_base_port", 50_061),
    ],
)
def test_scale_settings_come_from_the_environment(env, field, expected):
    assert getattr(Settings.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"OMNIX_MAX_INFLIGHT": "-1"}, "OMNIX_MAX_INFLIGHT"),
        ({"OMNIX_KEEPALIVE_TIME_MS": "10"}, "OMNIX_KEEPALIVE_TIME_MS"),
        ({"OMNIX_CACHE_MAX_ENTRIES": "0"}, "OMNIX_CACHE_MAX_ENTRIES"),
        ({"OMNIX_REDIS_TIMEOUT_MS": "soon"}, "OMNIX_REDIS_TIMEOUT_MS"),
        ({"OMNIX_REDIS_FAILURE_THRESHOLD": "0"}, "OMNIX_REDIS_FAILURE_THRESHOLD"),
        ({"OMNIX_WORKER_BASE_PORT": "70000"}, "OMNIX_WORKER_BASE_PORT"),
    ],
)
def test_bad_scale_settings_name_the_variable(env, field):
    from omnix_recs.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError) as error:
        Settings.from_env(env)
    assert error.value.field == field
