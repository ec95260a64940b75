"""Per-client limits shared through Redis: two server processes (like two workers or hosts,
sharing the store and Redis) give one client one budget, answer RESOURCE_EXHAUSTED with a
RetryInfo past it, and fall back to per-process limits, logged once, while Redis is down."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fuzz_support import FuzzServer
from google.rpc import error_details_pb2, status_pb2
from security_support import SECRET

from omnix_recs._proto.omnix.v1 import catalog_pb2, catalog_pb2_grpc, customer_pb2_grpc
from omnix_recs.config import DEFAULT_REDIS_FAILURE_THRESHOLD
from omnix_recs.security.fairness import ClientLimiter
from omnix_recs.security.shared_limits import KEY_PREFIX, SharedClientLimiter

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
from scale_support import RedisServer, free_port  # noqa: E402

WAIT_S = 15.0
FALLBACK_LOG = "counting per process until it answers"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def two_servers(tmp_path: Path, redis_server: RedisServer) -> Iterator[Callable[..., tuple[FuzzServer, FuzzServer]]]:
    started: list[FuzzServer] = []

    def start(**env: str) -> tuple[FuzzServer, FuzzServer]:
        common = {
            "OMNIX_STORE": f"sqlite:///{tmp_path / 'omnix.db'}",
            "OMNIX_MODEL_DIR": str(tmp_path / "models"),
            "OMNIX_REDIS_URL": redis_server.url,
            "OMNIX_AUTH_JWT_SECRET": SECRET,
            **env,
        }
        for name in ("a", "b"):
            started.append(FuzzServer(common, free_port(), tmp_path / f"server-{name}.log"))
        return started[-2], started[-1]

    yield start
    for server in started:
        server.stop()


def metadata(mint, sub: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {mint(sub, 'service')}"),)


def list_products(server: FuzzServer, md) -> grpc.StatusCode:
    try:
        server_stub(server).ListProducts(catalog_pb2.ListProductsRequest(), metadata=md, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def server_stub(server: FuzzServer) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(server.channel)


def retry_delay_s(error: grpc.RpcError) -> float:
    details = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


class HeldStream:
    """An ImportPurchases stream kept open (sending nothing) until `finish`: it holds one of
    its client's calls in flight."""

    def __init__(self, server: FuzzServer, md) -> None:
        self._done = threading.Event()
        stub = customer_pb2_grpc.CustomerServiceStub(server.channel)
        self.future = stub.ImportPurchases.future(self._requests(), metadata=md, timeout=60)

    def _requests(self):
        self._done.wait(60)
        return
        yield

    def finish(self) -> None:
        self._done.set()
        try:
            self.future.result(10)
        except grpc.RpcError:
            pass  # an empty import may be refused: only the slot matters here


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_calls_in_flight_are_counted_across_processes(two_servers, redis_server, mint):
    a, b = two_servers(OMNIX_CLIENT_MAX_INFLIGHT="2")
    pos, other = metadata(mint, "pos"), metadata(mint, "other")
    inflight = f"{KEY_PREFIX}:inflight:service:pos"
    with redis_server.client() as redis:
        held = [HeldStream(a, pos)]
        wait_for(lambda: redis.zcard(inflight) == 1, "the first stream to count")
        held.append(HeldStream(b, pos))
        wait_for(lambda: redis.zcard(inflight) == 2, "the second stream to count")

        for server in (a, b):  # each process alone would still have room: the budget is shared
            with pytest.raises(grpc.RpcError) as info:
                server_stub(server).ListProducts(catalog_pb2.ListProductsRequest(), metadata=pos, timeout=10)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 2 at once across the service" in info.value.details()
            assert 0 < retry_delay_s(info.value) <= 1.0
            assert list_products(server, other) is grpc.StatusCode.OK  # another client is served

        for stream in held:
            stream.finish()
        wait_for(lambda: redis.zcard(inflight) == 0, "the streams to be released")
    assert list_products(a, pos) is grpc.StatusCode.OK
    assert list_products(b, pos) is grpc.StatusCode.OK


def test_the_rate_is_counted_across_processes(two_servers, mint):
    a, b = two_servers(OMNIX_CLIENT_MAX_INFLIGHT="0", OMNIX_CLIENT_RATE_PER_S="1")
    pos = metadata(mint, "pos")
    assert list_products(a, pos) is grpc.StatusCode.OK
    with pytest.raises(grpc.RpcError) as info:  # the same second, on the other process
        server_stub(b).ListProducts(catalog_pb2.ListProductsRequest(), metadata=pos, timeout=10)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 1 per second across the service" in info.value.details()
    assert 0 < retry_delay_s(info.value) <= 1.0
    assert list_products(b, metadata(mint, "other")) is grpc.StatusCode.OK


def test_a_redis_outage_falls_back_to_per_process_limits(two_servers, redis_server, mint):
    a, b = two_servers(OMNIX_CLIENT_MAX_INFLIGHT="2")
    pos = metadata(mint, "pos")
    assert list_products(a, pos) is grpc.StatusCode.OK
    redis_server.stop()

    # No call fails because Redis is down; each process counts on its own: two held on `a`
    # fill its own budget there, while `b` still has its own.
    assert [list_products(server, pos) for server in (a, b) for _ in range(5)] == [grpc.StatusCode.OK] * 10
    held = [HeldStream(a, pos), HeldStream(a, pos)]
    wait_for(lambda: list_products(a, pos) is grpc.StatusCode.RESOURCE_EXHAUSTED, "a's own limit")
    assert list_products(b, pos) is grpc.StatusCode.OK
    for stream in held:
        stream.finish()
    wait_for(lambda: list_products(a, pos) is grpc.StatusCode.OK, "a's streams to end")
    for server in (a, b):
        assert server.log().count(FALLBACK_LOG) == 1, server.log()[-2000:]
        assert "Traceback" not in server.log()


def test_lone_redis_timeouts_keep_the_limits_shared_and_a_frozen_redis_is_skipped(redis_server, caplog):
    """A timeout counts that one call in this process; only `failure_threshold` in a row switch
    every call to per-process limits (logged once)."""

    async def scenario() -> list[bool]:
        limiter = SharedClientLimiter(redis_server.url, ClientLimiter(16), timeout_s=0.1, retry_after_s=60)
        held = []  # released at the end: a release in the background would meet the frozen Redis
        try:
            for _ in range(DEFAULT_REDIS_FAILURE_THRESHOLD):  # as many as switch, were they in a row
                redis_server.pause()  # one call times out, as under a CPU-starved server
                try:
                    held.append(await limiter.acquire("pos"))
                finally:
                    redis_server.resume()
                held.append(await limiter.acquire("pos"))
            assert FALLBACK_LOG not in caplog.text
            redis_server.pause()  # frozen: the threshold's timeouts in a row
            try:
                for _ in range(DEFAULT_REDIS_FAILURE_THRESHOLD):
                    held.append(await limiter.acquire("pos"))
            finally:
                redis_server.resume()
            held.append(await limiter.acquire("pos"))  # Redis answers again, but is skipped
            for ticket in held:
                limiter.release(ticket)
        finally:
            await limiter.close()
        return [ticket.local for ticket in held]

    with caplog.at_level(logging.WARNING, logger="omnix.security"):
        counted_locally = asyncio.run(scenario())
    assert counted_locally == [True, False] * DEFAULT_REDIS_FAILURE_THRESHOLD + [True] * (
        DEFAULT_REDIS_FAILURE_THRESHOLD + 1
    )
    assert caplog.text.count(FALLBACK_LOG) == 1
