"""A real OMNIX stack for the gateway tests: gRPC server and REST gateway in one process.

`stack` (once per test session): a generated supermarket (small, seeded) imported into a fresh
SQLite store, two trained model versions (the second, tuned, active, so rollback has somewhere
to go),
then the real `OmnixServer` and the gateway beside it on one event loop in a background thread,
exactly as `omnix serve --http-port` runs them. Tests call it over sockets: REST with httpx,
gRPC with generated stubs on an ordinary channel.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest

from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.engine.train import train_model
from omnix_recs.gateway.serve import GatewayServer, start_beside
from omnix_recs.server import OmnixServer
from omnix_recs.store import open_store
from omnix_recs.store.base import Store

T = TypeVar("T")
START_TIMEOUT_S = 30.0
# The browser tests' chromium (their modules skip when it is missing) and where screenshots go.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
CUSTOMERS, PRODUCTS, DAYS = 40, 200, 120


@dataclass
class Stack:
    store: Store
    grpc_address: str
    base_url: str
    channel: grpc.Channel
    http: httpx.Client
    loop: asyncio.AbstractEventLoop
    customer_ids: list[str]
    product_ids: list[str]

    def stub(self, stub_class: Any) -> Any:
        return stub_class(self.channel)

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(START_TIMEOUT_S)


def _seed(store: Store, settings: Settings, data_dir: Path) -> None:
    today = datetime.now(UTC).date()
    generate_instacart(data_dir, customers=CUSTOMERS, products=PRODUCTS, days=DAYS, seed=5, end_date=today)
    import_instacart(store, data_dir, as_of=today)
    train_model(store, settings, tune=False)
    train_model(store, settings, force=True)  # the active one: tuned, with validation figures


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("gateway-stack")
    store_url = f"sqlite:///{root / 'omnix.db'}"
    settings = Settings(store_url=store_url, grpc_host="127.0.0.1", grpc_port=0, model_dir=str(root / "models"))
    store = open_store(store_url)
    _seed(store, settings, root / "data")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="omnix-gateway-test", daemon=True)
    thread.start()

    async def start() -> tuple[OmnixServer, GatewayServer]:
        server = await OmnixServer.create(settings, store)
        await server.start()
        return server, await start_beside("127.0.0.1", server.port, "127.0.0.1", 0)

    server, gateway = asyncio.run_coroutine_threadsafe(start(), loop).result(START_TIMEOUT_S)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    http = httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30.0)
    try:
        yield Stack(
            store=store,
            grpc_address=f"127.0.0.1:{server.port}",
            base_url=f"http://127.0.0.1:{gateway.port}",
            channel=channel,
            http=http,
            loop=loop,
            customer_ids=list(store.list_customer_ids(10).items),
            product_ids=[p.product_id for p, _ in zip(store.iter_products(), range(10))],
        )
    finally:
        http.close()
        channel.close()

        async def stop() -> None:
            await gateway.stop()
            await server.shutdown(0)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(START_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        loop.close()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium through chromium-driver; the browser tests skip when either is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)  # find_element waits for elements a page script adds (the docs page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
