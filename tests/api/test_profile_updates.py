"""Profile-changing RPCs are read-modify-write: one that raced another write is refused and
redone, so both changes count (the retry itself: tests/test_customers.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from omnix_recs._proto.omnix.v1 import customer_pb2 as pb
from omnix_recs.api.customer import CustomerServicer
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer
from omnix_recs.store.sqlite import SqliteStore

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


class RacedOnce:
    """The store, where another request writes the profile just before this update's first
    conditional write, i.e. between its read and its write (the race, made deterministic)."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.conditional_writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_customer(self, customer: Customer, *, replaces: datetime | None = None) -> None:
        if replaces is not None:
            self.conditional_writes += 1
            if self.conditional_writes == 1:
                current = self._store.get_customer(customer.customer_id)
                self._store.put_customer(
                    dataclasses.replace(
                        current, display_name="written meanwhile", updated_at=current.updated_at + timedelta(seconds=1)
                    )
                )
        self._store.put_customer(customer, replaces=replaces)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = SqliteStore.temporary()
    store.create_customer(Customer(customer_id="c1", created_at=CREATED, updated_at=CREATED))
    yield store
    store.close()


UPDATES = {
    "UpdatePreferences": pb.UpdatePreferencesRequest(
        customer_id="c1",
        preferences=pb.Preferences(favorite_brands=["Oatly"]),
        update_mask=field_mask_pb2.FieldMask(paths=["favorite_brands"]),
    ),
    "SetDietaryRestrictions": pb.SetDietaryRestrictionsRequest(customer_id="c1", restrictions=["vegan"]),
}


@pytest.mark.parametrize("rpc", UPDATES)
def test_an_update_that_raced_another_write_is_redone_and_both_count(store: SqliteStore, rpc: str) -> None:
    raced = RacedOnce(store)
    servicer = CustomerServicer(AppContext(settings=Settings(), store=raced))  # type: ignore[arg-type]
    profile = asyncio.run(getattr(servicer, rpc)(UPDATES[rpc], None))
    assert raced.conditional_writes == 2  # the first write was refused, the second went through
    stored = store.get_customer("c1")
    assert stored.display_name == profile.display_name == "written meanwhile"  # the other write counts
    assert (stored.preferences.favorite_brands, stored.dietary_restrictions) == {
        "UpdatePreferences": (("Oatly",), ()),
        "SetDietaryRestrictions": ((), ("vegan",)),
    }[rpc]  # and so does this one
