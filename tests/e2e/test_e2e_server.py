"""The server as a whole: health, reflection, placeholders, limits, request ids, shutdown."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from e2e_support import purchase, rpc_error
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from omnix_recs._proto.omnix.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2
from omnix_recs._proto.omnix.v1 import customer_pb2 as pb
from omnix_recs.config import Limits, Settings
from omnix_recs.errors import InvalidArgumentError

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_of(channel: grpc.Channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status


def test_every_implemented_service_is_serving(server):
    assert {"omnix.v1.CustomerService", "omnix.v1.CatalogService"} <= set(server.services)
    for service in ["", *server.services]:
        assert health_of(server.channel, service) == SERVING
    error = rpc_error(health_of, server.channel, "omnix.v1.NoSuchService")
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_reflection_describes_the_services(server):
    database = ProtoReflectionDescriptorDatabase(server.channel)
    listed = set(database.get_services())
    assert {*server.services, HEALTH, REFLECTION} <= listed
    customer = DescriptorPool(database).FindServiceByName("omnix.v1.CustomerService")
    assert {"RegisterCustomer", "ImportPurchases", "ExportCustomerData", "DeleteCustomer"} <= {
        m.name for m in customer.methods
    }


def test_declared_but_unimplemented_services_say_so(server):
    database = ProtoReflectionDescriptorDatabase(server.channel)
    placeholders = sorted(set(database.get_services()) - {*server.services, HEALTH, REFLECTION})
    if not placeholders:
        pytest.skip("every declared service is implemented")
    pool = DescriptorPool(database)
    for name in placeholders:
        assert name.startswith("omnix.v1.")
        method = next(m for m in pool.FindServiceByName(name).methods if not (m.client_streaming or m.server_streaming))
        error = rpc_error(server.channel.unary_unary(f"/{name}/{method.name}"), b"")
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED
        assert error.details() == f"{method.name} is not implemented yet in this server version"


def test_request_id_comes_back(customers):
    customers.RegisterCustomer(pb.RegisterCustomerRequest(customer_id="c1"))
    request = pb.GetCustomerProfileRequest(customer_id="c1")
    _, call = customers.GetCustomerProfile.with_call(request, metadata=(("x-request-id", "till-7-0042"),))
    assert ("x-request-id", "till-7-0042") in call.trailing_metadata()
    error = rpc_error(
        customers.GetCustomerProfile,
        pb.GetCustomerProfileRequest(customer_id="ghost"),
        metadata=(("x-request-id", "till-7-0043"),),
    )
    assert ("x-request-id", "till-7-0043") in error.trailing_metadata()


def test_oversized_messages_are_refused(running_server):
    server = running_server(settings=Settings(limits=dataclasses.replace(Limits(), max_message_bytes=4096)))
    catalog = server.stub(catalog_pb2_grpc.CatalogServiceStub)
    products = [common_pb2.Product(product_id=f"p{i}", name="n" * 100, department="d", aisle="a") for i in range(60)]
    error = rpc_error(catalog.UpsertProducts, catalog_pb2.UpsertProductsRequest(products=products))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.store.get_products([p.product_id for p in products]) == {}


def test_graceful_shutdown_drains_the_call_in_flight(server, customers):
    customers.RegisterCustomer(pb.RegisterCustomerRequest(customer_id="c1"))
    watch = health_pb2_grpc.HealthStub(server.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == SERVING

    first_row_sent, release = threading.Event(), threading.Event()

    def rows():
        yield pb.ImportPurchasesRow(customer_id="c1", purchase=purchase("o1"))
        first_row_sent.set()
        release.wait(10)
        yield pb.ImportPurchasesRow(customer_id="c1", purchase=purchase("o2"))

    import_call = customers.ImportPurchases.future(rows())
    assert first_row_sent.wait(10)
    shutdown = server.begin_shutdown(grace_s=10)

    assert next(watch).status == NOT_SERVING  # load balancers watching health see it first
    watch.cancel()
    release.set()
    assert import_call.result(10).rows_received == 2  # the in-flight import finished...
    shutdown.result(10)
    assert server.store.count_purchases() == 2  # ...and was written
    with pytest.raises(grpc.RpcError):  # while new calls are no longer taken
        customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id="c1"), timeout=2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(channel: grpc.Channel, process: subprocess.Popen, timeout_s: float = 30) -> None:
    ready = grpc.channel_ready_future(channel)
    for _ in range(int(timeout_s / 0.25)):
        try:
            ready.result(timeout=0.25)
            return
        except grpc.FutureTimeoutError:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}: {process.communicate()[1]}")
    pytest.fail("the server did not start listening")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_stops_gracefully_on_sigterm(tmp_path: Path, loop: str):
    """`serve()` in its own process, as `omnix serve` runs it, on either event loop."""
    port = free_port()
    env = {
        **os.environ,
        "OMNIX_STORE": f"sqlite:///{tmp_path / 'omnix.db'}",
        "OMNIX_GRPC_HOST": "127.0.0.1",
        "OMNIX_GRPC_PORT": str(port),
        "OMNIX_LOG_LEVEL": "INFO",
        "OMNIX_EVENT_LOOP": loop,
    }
    code = "from omnix_recs.config import Settings; from omnix_recs.server import serve; serve(Settings.from_env())"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_until_ready(channel, process)
            assert health_of(channel, "omnix.v1.CustomerService") == SERVING
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "shutting down" in stderr and "stopped" in stderr
    assert f"({loop})" in stderr  # the start-up line names the loop


def test_an_unknown_event_loop_is_refused_naming_the_variable():
    with pytest.raises(InvalidArgumentError, match="OMNIX_EVENT_LOOP"):
        Settings.from_env({"OMNIX_EVENT_LOOP": "trio"})
