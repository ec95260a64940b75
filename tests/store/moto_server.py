"""Local DynamoDB-compatible servers for the store tests, on 127.0.0.1: moto's server mode
(`local_dynamodb`) and dynoxide (`local_dynoxide`, an emulator over SQLite, much faster than moto
on large tables: the one the scale tests and benches use).

One server of each per test session, reached over real HTTP by real boto3 clients, so requests, errors and pagination go through
the same code as against AWS. Each store gets its own set of tables by a unique `env`
(`omnix-ai-<table>-t<N>`), so tests share the server but never data, and its own client from
one shared boto3 session, which loads botocore's service models once.

The servers and their fake credentials come from tests/local_aws.py, shared with the S3 tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from local_aws import dynoxide_server, moto_server

from omnix_recs.store.dynamodb import DynamoStore

_fresh_envs = (f"t{n}" for n in itertools.count())


@dataclass(frozen=True)
class LocalDynamoDB:
    endpoint: str  # http://127.0.0.1:<port>
    session: boto3.session.Session

    def url(self, env: str | None = None) -> str:
        """An `OMNIX_STORE` URL for this server; a fresh table set unless `env` is given."""
        return f"dynamodb://?region=us-east-1&endpoint={self.endpoint}&env={env or next(_fresh_envs)}"

    def open_store(self, env: str | None = None, *, create_tables: bool = True) -> DynamoStore:
        store = DynamoStore.from_url(self.url(env), session=self.session)
        if create_tables:
            store.create_tables()
        return store


@pytest.fixture(scope="session")
def local_dynamodb() -> Iterator[LocalDynamoDB]:
    """A moto server on 127.0.0.1 for the test session (tests/local_aws.py)."""
    with moto_server() as endpoint:
        yield LocalDynamoDB(endpoint, boto3.session.Session())


def dynamo_store(request: pytest.FixtureRequest, tmp_path: Path) -> DynamoStore:
    """A `STORE_FACTORIES` entry: an empty DynamoDB store with tables of its own."""
    return request.getfixturevalue("local_dynamodb").open_store()


@pytest.fixture(scope="session")
def local_dynoxide() -> Iterator[LocalDynamoDB]:
    """A dynoxide process on 127.0.0.1 for the test session (tests/local_aws.py); skips the
    tests that use it where dynoxide is not installed, fails them in CI."""
    with dynoxide_server() as endpoint:
        yield LocalDynamoDB(endpoint, boto3.session.Session())


def dynoxide_store(request: pytest.FixtureRequest, tmp_path: Path) -> DynamoStore:
    """A `STORE_FACTORIES` entry: an empty DynamoDB store on dynoxide, with tables of its own."""
    return request.getfixturevalue("local_dynoxide").open_store()
