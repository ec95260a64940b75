"""The `store` fixture: one fresh, empty store per test, for every `Store` implementation.

Each implementation is a factory in `STORE_FACTORIES`; the fixture is parametrized over them,
so every contract test runs once per implementation and DynamoDB stand-in (test ids `[sqlite]`,
`[dynamodb]` on moto, `[dynoxide]`). A factory opens an empty store of its kind: SQLite in the
test's `tmp_path`; DynamoDB on a session-scoped local server (tests/store/moto_server.py) with
tables unique to the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto_server import (  # noqa: F401  (local_dynamodb, local_dynoxide: session fixtures)
    dynamo_store,
    dynoxide_store,
    local_dynamodb,
    local_dynoxide,
)

from omnix_recs.store.base import Store
from omnix_recs.store.sqlite import SqliteStore


def _sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}")


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": _sqlite_store,
    "dynamodb": dynamo_store,
    "dynoxide": dynoxide_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = STORE_FACTORIES[request.param](request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()
