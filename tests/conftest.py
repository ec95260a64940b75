"""Fixtures shared by every test area.

`running_server` — a real OMNIX gRPC server for end-to-end tests
-----------------------------------------------------------------
A factory fixture: each call starts the real server (`omnix_recs.server.OmnixServer`, the same
assembly `omnix serve` runs: interceptor, health, reflection, every registered servicer) on
127.0.0.1 and a free port, over a fresh SQLite store in the test's `tmp_path`, with its own
event loop in a background thread. Tests talk to it through generated stubs on an ordinary
(synchronous) channel, so they need no asyncio plugin. Everything started is shut down when
the test ends.

    from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc

    def test_register(running_server):
        server = running_server()
        customers = server.stub(customer_pb2_grpc.CustomerServiceStub)
        customers.RegisterCustomer(customer_pb2.RegisterCustomerRequest(customer_id="c1"))

Options (all keyword): `settings=` a `Settings` to start from (host, port and store URL are
always overridden), `prepare=` a function called with the store before the server starts
(seed data, save a model record). The returned `RunningServer` offers `.channel`, `.stub(cls)`,
`.address`, `.app` (the server's `AppContext`), `.services`, `.store` (the same store object
the server uses, for asserting on what was written), `.call_on_loop(coroutine)` and
`.begin_shutdown(grace_s)`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.server import OmnixServer
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

T = TypeVar("T")
START_TIMEOUT_S = 10.0


class RunningServer:
    """A started `OmnixServer` on its own event loop thread, and a channel to it."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="omnix-test-server", daemon=True)
        self._thread.start()
        self._shutdown: concurrent.futures.Future[None] | None = None
        try:
            self._server: OmnixServer = self.call_on_loop(self._start(settings, store))
        except BaseException:
            self._close_loop()
            raise
        self.port = self._server.port
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address)

    @staticmethod
    async def _start(settings: Settings, store: Store) -> OmnixServer:
        server = await OmnixServer.create(settings, store)
        await server.start()
        return server

    @property
    def app(self) -> AppContext:
        return self._server.app

    @property
    def services(self) -> list[str]:
        """Full names of the implemented services (each reports SERVING on health)."""
        return self._server.services

    def stub(self, stub_class: Callable[[grpc.Channel], T]) -> T:
        return stub_class(self.channel)

    def call_on_loop(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = START_TIMEOUT_S) -> T:
        """Run a coroutine on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def begin_shutdown(self, grace_s: float) -> concurrent.futures.Future[None]:
        """Start the graceful shutdown (health NOT_SERVING, then drain); returns at once."""
        if self._shutdown is None:
            self._shutdown = asyncio.run_coroutine_threadsafe(self._server.shutdown(grace_s), self._loop)
        return self._shutdown

    def stop(self) -> None:
        self.channel.close()
        self.begin_shutdown(0).result(START_TIMEOUT_S)
        self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)
        self._loop.close()


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[tuple[RunningServer, Store]] = []

    def start(*, settings: Settings | None = None, prepare: Callable[[Store], None] | None = None) -> RunningServer:
        store_url = f"sqlite:///{tmp_path / f'omnix-{len(started)}.db'}"
        settings = dataclasses.replace(settings or Settings(), grpc_host="127.0.0.1", grpc_port=0, store_url=store_url)
        store = open_store(store_url)
        try:
            if prepare is not None:
                prepare(store)
            server = RunningServer(settings, store)
        except BaseException:
            store.close()
            raise
        started.append((server, store))
        return server

    yield start
    for server, store in reversed(started):
        try:
            server.stop()
        finally:
            store.close()
