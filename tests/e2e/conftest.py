"""Stubs on a default running server (see `running_server` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from omnix_recs._proto.omnix.v1 import catalog_pb2_grpc, customer_pb2_grpc


@pytest.fixture
def server(running_server):
    return running_server()


@pytest.fixture
def customers(server) -> customer_pb2_grpc.CustomerServiceStub:
    return server.stub(customer_pb2_grpc.CustomerServiceStub)


@pytest.fixture
def catalog(server) -> catalog_pb2_grpc.CatalogServiceStub:
    return server.stub(catalog_pb2_grpc.CatalogServiceStub)
