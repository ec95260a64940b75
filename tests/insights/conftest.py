"""Fixtures for the AI tests: fake AWS credentials, the fake Bedrock server, a small shop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_bedrock import FakeBedrock, isolate_aws_credentials
from shop import MODEL_ID, seed_shop

from omnix_recs.breaker import CircuitBreaker
from omnix_recs.config import Settings
from omnix_recs.insights.analyst import InsightsService
from omnix_recs.insights.bedrock import BedrockAnalyst
from omnix_recs.store import open_store
from omnix_recs.store.base import Store


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials for signing requests to the fake server; nothing from this machine's AWS setup."""
    isolate_aws_credentials(monkeypatch, tmp_path)


@pytest.fixture
def fake_bedrock() -> Iterator[FakeBedrock]:
    fake = FakeBedrock().start()
    yield fake
    fake.stop()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'shop.db'}")
    seed_shop(store)
    yield store
    store.close()


def bedrock_settings(endpoint_url: str, **overrides: object) -> Settings:
    return dataclasses.replace(
        Settings(),
        bedrock_enabled=True,
        bedrock_endpoint_url=endpoint_url,
        bedrock_model_id=MODEL_ID,
        aws_region="eu-west-1",
        **overrides,
    )


@pytest.fixture
def make_service(shop: Store) -> Iterator[Callable[..., InsightsService]]:
    """`make_service(endpoint_url, breaker=..., **settings)`: an InsightsService on the shop
    whose Bedrock client talks to `endpoint_url`."""
    analysts: list[BedrockAnalyst] = []

    def make(endpoint_url: str, *, breaker: CircuitBreaker | None = None, **overrides: object) -> InsightsService:
        settings = bedrock_settings(endpoint_url, **overrides)
        analyst = BedrockAnalyst(settings, breaker=breaker)
        analysts.append(analyst)
        return InsightsService(shop, settings, bedrock=analyst)

    yield make
    for analyst in analysts:
        analyst.close()
