"""Fixtures of the marketing tests: the real server over the small shop of `marketing_shop.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from marketing_shop import seed

from omnix_recs._proto.omnix.v1 import customer_pb2_grpc, marketing_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.engine.train import train_model
from omnix_recs.store.base import Store

# The Bedrock-compatible test server lives with the insights tests; campaign texts use it too.
sys.path.append(str(Path(__file__).resolve().parents[1] / "insights"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"))


@pytest.fixture
def server(running_server, settings):
    def seed_and_train(store: Store) -> None:
        seed(store)
        train_model(store, settings)

    return running_server(settings=settings, prepare=seed_and_train)


@pytest.fixture
def marketing(server) -> marketing_pb2_grpc.MarketingServiceStub:
    return server.stub(marketing_pb2_grpc.MarketingServiceStub)


@pytest.fixture
def customers(server) -> customer_pb2_grpc.CustomerServiceStub:
    return server.stub(customer_pb2_grpc.CustomerServiceStub)
