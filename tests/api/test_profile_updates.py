"""Profile updates are read-modify-write: a write that raced another is refused and redone."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from omnix_recs.api import customer as customer_api
from omnix_recs.domain.models import Customer
from omnix_recs.errors import ConflictError
from omnix_recs.store.sqlite import SqliteStore

CREATED = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}")
    store.create_customer(Customer(customer_id="c1", created_at=CREATED, updated_at=CREATED))
    yield store
    store.close()


def other_writer(store: SqliteStore, **fields: object):
    """A change function that, the first time it runs, lets another request write the profile
    between this update's read and its write (the race, made deterministic)."""
    calls = []

    def change(customer: Customer) -> Customer:
        if not calls:
            current = store.get_customer("c1")
            meanwhile = dataclasses.replace(current, display_name="written meanwhile", updated_at=datetime.now(timezone.utc))
            store.put_customer(meanwhile)
        calls.append(customer)
        return dataclasses.replace(customer, **fields)

    return change, calls


def test_an_update_that_raced_another_is_redone_over_the_newer_profile(store: SqliteStore) -> None:
    change, calls = other_writer(store, household_size=4)
    updated = customer_api._update_customer(store, "c1", change)
    assert len(calls) == 2  # the first write was refused, the second computed from the new profile
    stored = store.get_customer("c1")
    assert stored == updated
    assert (stored.household_size, stored.display_name) == (4, "written meanwhile")  # both count


def test_an_update_that_keeps_losing_ends_in_conflict_and_writes_nothing(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_raced(customer: Customer) -> Customer:
        current = store.get_customer("c1")  # another request writes first, every time
        store.put_customer(dataclasses.replace(current, updated_at=current.updated_at + timedelta(seconds=1)))
        return dataclasses.replace(customer, household_size=7)

    monkeypatch.setattr(customer_api, "UPDATE_ATTEMPTS", 3)
    with pytest.raises(ConflictError):
        customer_api._update_customer(store, "c1", always_raced)
    assert store.get_customer("c1").household_size != 7


def test_every_update_moves_updated_at_forward(store: SqliteStore) -> None:
    future = datetime(2099, 1, 1, tzinfo=timezone.utc)  # a clock that was ahead wrote last
    store.put_customer(dataclasses.replace(store.get_customer("c1"), updated_at=future))
    updated = customer_api._update_customer(store, "c1", lambda c: dataclasses.replace(c, household_size=2))
    assert updated.updated_at > future
