"""Per-client limits and idle streams: one client cannot lock everyone else out."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from security_support import bearer

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc
from omnix_recs.security.fairness import ClientLimiter, ClientLimitError, is_loopback_peer, peer_host


def test_a_client_holds_at_most_its_share_of_calls():
    limiter = ClientLimiter(max_inflight=2)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(ClientLimitError, match="at most 2 at once"):
        limiter.acquire("a")
    limiter.acquire("b")  # another client is not affected
    limiter.release("a")
    limiter.acquire("a")
    assert limiter.inflight("a") == 2


def test_a_rate_limited_client_is_told_when_to_retry():
    limiter = ClientLimiter(max_inflight=0, rate_per_s=5)
    for _ in range(5):  # a second's burst
        limiter.acquire("a")
        limiter.release("a")
    with pytest.raises(ClientLimitError, match="at most 5 per second") as info:
        limiter.acquire("a")
    assert 0 < info.value.retry_after_s <= 0.2


@pytest.mark.parametrize(
    ("peer", "host", "loopback"),
    [
        ("ipv4:127.0.0.1:5000", "127.0.0.1", True),
        ("ipv6:[::1]:5000", "::1", True),
        ("ipv4:10.1.2.3:5000", "10.1.2.3", False),
        ("ipv6:[2001:db8::7]:443", "2001:db8::7", False),
    ],
)
def test_peers(peer, host, loopback):
    assert peer_host(peer) == host
    assert is_loopback_peer(peer) is loopback


class SilentStreams:
    """Client streams that send nothing until released, held open by an asyncio client on a
    thread of its own (each on its own connection, as separate importers would be)."""

    def __init__(self, address: str, metadata: tuple[tuple[str, str], ...], count: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.released = asyncio.Event()
        self.calls = asyncio.run_coroutine_threadsafe(self._open(address, metadata, count), self.loop).result(10)

    async def _open(self, address: str, metadata, count: int) -> list[asyncio.Task]:
        self.channels = [grpc.aio.insecure_channel(address) for _ in range(count)]

        async def silence():
            await self.released.wait()
            return
            yield  # (an async generator)

        return [
            asyncio.ensure_future(
                customer_pb2_grpc.CustomerServiceStub(channel).ImportPurchases(silence(), metadata=metadata, timeout=30)
            )
            for channel in self.channels
        ]

    def close(self) -> list[BaseException | None]:
        async def finish():
            self.released.set()
            outcomes = await asyncio.gather(*self.calls, return_exceptions=True)
            for channel in self.channels:
                await channel.close()
            return outcomes

        outcomes = asyncio.run_coroutine_threadsafe(finish(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        return outcomes


def retry_delay_ms(error: grpc.RpcError) -> int:
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]
    info = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(info)
    return info.retry_delay.ToMilliseconds()


def test_streams_count_against_their_client_only(secured_server, mint):
    server = secured_server(client_max_inflight=2, stream_idle_timeout_s=20)
    customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
    greedy, other = bearer(mint("importer", "service")), bearer(mint("checkout", "service"))
    streams = SilentStreams(server.address, greedy, 2)
    try:
        # Until both streams hold their slot (a call of ours in between would take one of them).
        limiter = server._server.security.limiter
        deadline = time.monotonic() + 10
        while limiter.inflight("service:importer") < 2:
            assert time.monotonic() < deadline, "the streams never reached the server"
            time.sleep(0.02)
        request = customer_pb2.GetCustomerProfileRequest(customer_id="c1")
        with pytest.raises(grpc.RpcError) as info:
            customers.GetCustomerProfile(request, metadata=greedy, timeout=5)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many calls in flight for this client (at most 2 at once)" in info.value.details()
        assert retry_delay_ms(info.value) == 1000
        # Everyone else, health checks included, is served.
        with pytest.raises(grpc.RpcError) as info:
            customers.GetCustomerProfile(request, metadata=other, timeout=5)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        health = server.stub(health_pb2_grpc.HealthStub)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        streams.close()
    # The streams ended: the client's share is back.
    with pytest.raises(grpc.RpcError) as info:
        customers.GetCustomerProfile(request, metadata=greedy, timeout=5)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_an_idle_stream_is_closed(secured_server, mint):
    server = secured_server(stream_idle_timeout_s=1)
    streams = SilentStreams(server.address, bearer(mint("importer", "service")), 1)
    started = time.monotonic()
    while not streams.calls[0].done() and time.monotonic() - started < 20:
        time.sleep(0.05)
    (error,) = streams.close()
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == "no message from the client for 1 s: the stream was closed"
