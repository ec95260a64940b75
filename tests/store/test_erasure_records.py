"""The erasure's pending second pass (customers.py `ERASURE_PENDING`) on every store: recorded
before the erasure, kept by it, listed across customers, not part of a customer's documents,
and removed when finished; an id registered again keeps what it wrote since."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omnix_recs.customers import ERASURE_PENDING, CustomerService
from omnix_recs.domain.models import Customer, CustomerChange, Purchase
from omnix_recs.errors import NotFoundError
from omnix_recs.store.base import Store

CREATED = datetime(2025, 1, 1, tzinfo=UTC)
BOUGHT = datetime(2025, 3, 1, tzinfo=UTC)


def nobody(customer_id: str, change: CustomerChange) -> None:
    return None


def pending(store: Store) -> list[str]:
    return [body["customer_id"] for _, _, body in store.list_documents(ERASURE_PENDING)]


@pytest.fixture
def service(store: Store) -> CustomerService:
    for customer_id in ("c1", "c2"):
        store.create_customer(Customer(customer_id=customer_id, created_at=CREATED, updated_at=CREATED))
        store.add_purchases([Purchase(customer_id, "o1", "p1", 1, 1.5, BOUGHT)])
    made = CustomerService(store, publish=nobody)
    made.erasure_sweep_after_s = None  # no timer: the test runs the second pass
    return made


def test_the_record_outlives_the_erasure_and_goes_when_the_second_pass_is_done(
    store: Store, service: CustomerService
) -> None:
    service.erase("c1")
    assert pending(store) == ["c1"]
    store.add_purchases([Purchase("c1", "o-late", "p1", 1, 1.5, BOUGHT)])  # written late by another process
    assert store.customer_documents("c1") == []

    assert CustomerService(store, publish=nobody).finish_erasures(due_by=datetime.now(UTC)) == 1

    assert pending(store) == [] and store.customer_documents("#erasure:c1") == []
    assert store.purchases_of("c1") == []
    assert [p.order_id for p in store.purchases_of("c2")] == ["o1"]
    with pytest.raises(NotFoundError):
        store.get_customer("c1")


def test_an_id_registered_again_keeps_its_new_rows(store: Store, service: CustomerService) -> None:
    service.erase("c1")
    store.create_customer(Customer(customer_id="c1", created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
    store.add_purchases([Purchase("c1", "o-new", "p1", 1, 1.5, BOUGHT)])

    assert service.finish_erasures(due_by=datetime.now(UTC)) == 1

    assert pending(store) == []
    assert [p.order_id for p in store.purchases_of("c1")] == ["o-new"]
    assert store.customer_documents("c1") == []


def test_an_unknown_customer_leaves_no_record(store: Store, service: CustomerService) -> None:
    with pytest.raises(NotFoundError):
        service.erase("ghost")
    assert pending(store) == []
