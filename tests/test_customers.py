"""CustomerService: every customer write, and the change each one publishes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs.customers import CustomerService
from omnix_recs.domain.models import (
    Consent,
    Customer,
    CustomerChange,
    Interaction,
    InteractionKind,
    Preferences,
    Product,
    Purchase,
    RecommendedItem,
    ServedRecommendation,
)
from omnix_recs.errors import ConflictError, InvalidArgumentError, NotFoundError
from omnix_recs.store.sqlite import SqliteStore

CREATED = datetime(2025, 1, 1, tzinfo=UTC)
BOUGHT = datetime(2025, 3, 1, tzinfo=UTC)


class Published(list):
    """The changes a service published, in order: (customer_id, change)."""

    def __call__(self, customer_id: str, change: CustomerChange) -> None:
        self.append((customer_id, change))


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = SqliteStore.temporary()
    for customer_id in ("c1", "c2"):
        store.create_customer(Customer(customer_id=customer_id, created_at=CREATED, updated_at=CREATED))
    store.upsert_products([Product("p1", "Oat milk", "dairy", "milk", price=1.5)])
    yield store
    store.close()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def service(store: SqliteStore, published: Published) -> CustomerService:
    return CustomerService(store, publish=published)


def line(
    customer_id: str = "c1",
    product_id: str = "p1",
    *,
    order_id: str = "o1",
    unit_price: float = 0.0,
    at: datetime = BOUGHT,
) -> Purchase:
    return Purchase(customer_id, order_id, product_id, quantity=1, unit_price=unit_price, purchased_at=at)


# --- profile updates: read, change, write only if nobody wrote in between --------------------


def test_an_update_that_raced_another_is_redone_over_the_newer_profile(store, service, published) -> None:
    calls: list[Customer] = []

    def change(customer: Customer) -> Customer:
        if not calls:  # another request writes between this update's read and its write
            store.put_customer(
                dataclasses.replace(
                    customer, display_name="written meanwhile", updated_at=customer.updated_at + timedelta(seconds=1)
                )
            )
        calls.append(customer)
        return dataclasses.replace(customer, household_size=4)

    updated = service.update_profile("c1", change)
    assert len(calls) == 2  # the first write was refused, the second computed from the new profile
    stored = store.get_customer("c1")
    assert stored == updated
    assert (stored.household_size, stored.display_name) == (4, "written meanwhile")  # both count
    assert published == [("c1", CustomerChange.DATA)]  # once, for the write that happened


def test_an_update_that_keeps_losing_ends_in_conflict_and_writes_nothing(store, published) -> None:
    def always_raced(customer: Customer) -> Customer:
        current = store.get_customer("c1")  # another request writes first, every time
        store.put_customer(dataclasses.replace(current, updated_at=current.updated_at + timedelta(seconds=1)))
        return dataclasses.replace(customer, household_size=7)

    service = CustomerService(store, publish=published, update_attempts=3)
    with pytest.raises(ConflictError):
        service.update_profile("c1", always_raced)
    assert store.get_customer("c1").household_size != 7
    assert published == []


def test_every_update_moves_updated_at_forward(store, service) -> None:
    future = datetime(2099, 1, 1, tzinfo=UTC)  # a clock that was ahead wrote last
    store.put_customer(dataclasses.replace(store.get_customer("c1"), updated_at=future))
    updated = service.update_profile("c1", lambda c: dataclasses.replace(c, household_size=2))
    assert updated.updated_at > future


def test_updating_an_unknown_customer_is_not_found(service, published) -> None:
    with pytest.raises(NotFoundError):
        service.set_consent("ghost", Consent(marketing=True))
    assert published == []


def test_named_preference_fields_are_replaced_and_the_others_kept(store, service) -> None:
    service.update_preferences("c1", Preferences(favorite_brands=("Oatly",), budget_per_trip=40.0))
    updated = service.update_preferences("c1", Preferences(organic_preference=True), ["organic_preference"])
    assert updated.preferences == Preferences(favorite_brands=("Oatly",), budget_per_trip=40.0, organic_preference=True)
    # No names: the whole preferences are replaced.
    assert service.update_preferences("c1", Preferences()).preferences == Preferences()
    assert store.get_customer("c1").preferences == Preferences()


def test_dietary_restrictions_and_consent_are_stored_and_published(store, service, published) -> None:
    service.set_dietary_restrictions("c1", ("vegan",), ("peanuts",))
    service.set_consent("c1", Consent(marketing=True))
    stored = store.get_customer("c1")
    assert (stored.dietary_restrictions, stored.allergens, stored.consent.marketing) == (("vegan",), ("peanuts",), True)
    assert published == [("c1", CustomerChange.DATA)] * 2


def test_registering_publishes_nothing(store, service, published) -> None:
    service.register(Customer(customer_id="c3", created_at=CREATED, updated_at=CREATED))
    assert store.get_customer("c3").customer_id == "c3"
    assert published == []


# --- purchases and behaviour -----------------------------------------------------------------


def test_a_basket_is_priced_from_the_catalog_and_published_once(store, service, published) -> None:
    stored = service.record_purchases(
        "c1", [line(), line(product_id="p9"), line(product_id="p1", order_id="o2", unit_price=2.0)]
    )
    # 0 = the catalog price; a product the catalog does not know keeps 0; a given price is kept.
    assert [p.unit_price for p in stored] == [1.5, 0.0, 2.0]
    assert store.purchases_of("c1") == sorted(stored, key=lambda p: (p.purchased_at, p.order_id, p.product_id))
    assert published == [("c1", CustomerChange.DATA)]


def test_purchases_of_an_unregistered_customer_are_not_found_and_not_written(store, service, published) -> None:
    with pytest.raises(NotFoundError):
        service.record_purchases("ghost", [line("ghost")])
    assert store.count_purchases() == 0 and published == []


@pytest.mark.parametrize(
    ("kind", "quantity", "change"),
    [
        (InteractionKind.CART_ADD, 1, CustomerChange.CART),
        (InteractionKind.CART_REMOVE, 1, CustomerChange.CART),
        (InteractionKind.VIEW, 0, CustomerChange.BROWSING),
        (InteractionKind.WISHLIST, 0, CustomerChange.BROWSING),
    ],
)
def test_an_interaction_publishes_what_it_made_stale(store, service, published, kind, quantity, change) -> None:
    interaction = Interaction("c1", "i1", kind, BOUGHT, product_id="p1", quantity=quantity)
    assert service.record_interaction(interaction) == interaction
    assert store.list_interactions("c1") == [interaction]
    assert published == [("c1", change)]


def test_an_interaction_of_an_unregistered_customer_is_not_found(service, published) -> None:
    with pytest.raises(NotFoundError):
        service.record_interaction(Interaction("ghost", "i1", InteractionKind.VIEW, BOUGHT, product_id="p1"))
    assert published == []


# --- import -----------------------------------------------------------------------------------


def test_an_import_writes_every_row_and_publishes_each_customer_once(store, service, published) -> None:
    rows = [line("c2", order_id="o1"), line("c1", order_id="o2"), line("c2", order_id="o3", product_id="p9")]
    summary = service.import_purchases(rows)
    assert (summary.rows_received, summary.customers, summary.rows_written) == (3, 2, 3)
    assert [p.unit_price for p in store.purchases_of("c2")] == [1.5, 0.0]
    assert published == [("c2", CustomerChange.DATA), ("c1", CustomerChange.DATA)]  # in order of first row


def test_an_import_naming_an_unregistered_customer_writes_nothing_and_names_its_first_row(
    store, service, published
) -> None:
    rows = [line("c1"), line("ghost", order_id="o2"), line("ghost", order_id="o3")]
    with pytest.raises(InvalidArgumentError) as raised:
        service.import_purchases(rows)
    assert raised.value.field == "rows[1].customer_id" and "'ghost' is not registered" in raised.value.message
    assert store.count_purchases() == 0 and published == []


# --- export and erasure -----------------------------------------------------------------------


class ServedJustNow:
    """Served lists held back from the store until `flush` (like `ServedListWriter`)."""

    def __init__(self, store: SqliteStore, held: ServedRecommendation) -> None:
        self.store, self.held, self.flushes = store, [held], 0

    def flush(self) -> None:
        self.flushes += 1
        for served in self.held:
            self.store.save_recommendation(served)
        self.held.clear()


def served(customer_id: str = "c1") -> ServedRecommendation:
    return ServedRecommendation("r1", customer_id, BOUGHT, "balanced", "v1", (RecommendedItem("p1", 0.9, 0.5),))


def test_an_export_has_everything_newest_first_including_lists_just_served(store, published) -> None:
    service = CustomerService(store, publish=published, served_lists=ServedJustNow(store, served()))  # type: ignore[arg-type]
    service.record_purchases("c1", [line(at=BOUGHT), line(order_id="o2", at=BOUGHT + timedelta(days=1))])
    export = service.export("c1")
    assert export.customer == store.get_customer("c1")
    assert [p.order_id for p in export.purchases] == ["o2", "o1"]
    assert [s.recommendation_id for s in export.recommendations] == ["r1"]


def test_an_erasure_writes_pending_lists_first_then_removes_everything_and_publishes(store, published) -> None:
    pending = ServedJustNow(store, served())
    service = CustomerService(store, publish=published, served_lists=pending)  # type: ignore[arg-type]
    service.record_purchases("c1", [line()])
    published.clear()
    erasure = service.erase("c1")
    assert pending.flushes == 1
    assert erasure.counts["profile"] == 1 and erasure.counts["purchases"] == 1
    assert erasure.counts["recommendations"] == 1  # the list served just before is erased too
    assert published == [("c1", CustomerChange.DATA)]
    with pytest.raises(NotFoundError):
        service.export("c1")


def test_erasing_an_unknown_customer_is_not_found_and_publishes_nothing(service, published) -> None:
    with pytest.raises(NotFoundError):
        service.erase("ghost")
    assert published == []


def test_a_failing_listener_fails_the_call_but_the_write_is_kept(store) -> None:
    def broken(customer_id: str, change: CustomerChange) -> None:
        raise RuntimeError("cache unreachable")

    service = CustomerService(store, publish=broken)
    with pytest.raises(RuntimeError):
        service.record_purchases("c1", [line()])
    assert store.count_purchases() == 1
