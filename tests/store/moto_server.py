"""A local DynamoDB-compatible server for the store tests: moto's server mode on 127.0.0.1.

One server per test session (`local_dynamodb`), started in a thread of the test process and
reached over real HTTP by real boto3 clients, so requests, errors and pagination go through
the same code as against AWS. Each store gets its own set of tables by a unique `env`
(`omnix-ai-<table>-t<N>`), so tests share the server but never data, and its own client from
one shared boto3 session, which loads botocore's service models once.

Fake credentials are put in the environment for the session and the previous values restored
afterwards: boto3 signs every request, moto accepts any signature, and no real AWS
configuration on the machine is read by these tests.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from omnix_recs.store.dynamodb import DynamoStore

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
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
    """A moto server on 127.0.0.1 (a free port), with fake AWS credentials set meanwhile."""
    saved = {name: os.environ.get(name) for name in FAKE_AWS_ENVIRONMENT}
    os.environ.update(FAKE_AWS_ENVIRONMENT)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield LocalDynamoDB(f"http://{host}:{port}", boto3.session.Session())
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dynamo_store(request: pytest.FixtureRequest, tmp_path: Path) -> DynamoStore:
    """A `STORE_FACTORIES` entry: an empty DynamoDB store with tables of its own."""
    return request.getfixturevalue("local_dynamodb").open_store()
