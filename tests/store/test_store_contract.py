"""The `Store` contract: what every implementation promises (see `store/base.py`).

Every test runs against each implementation through the `store` fixture (tests/store/conftest.py)
and uses only the public protocol, so a new implementation passes or fails the same suite.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from omnix_recs.domain.models import (
    Consent,
    Customer,
    Feedback,
    FeedbackEvent,
    Interaction,
    InteractionKind,
    Preferences,
    Product,
    ProductFilter,
    Purchase,
    RecommendedItem,
    ServedRecommendation,
)
from omnix_recs.domain.purchases import OrderLines, PurchaseColumns
from omnix_recs.errors import (
    AlreadyExistsError,
    ConflictError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from omnix_recs.store.base import ModelRecord, Store

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PAGE_SIZES = [1, 2, 3, 7, 100]


def at(days: float = 0, **delta: float) -> datetime:
    return T0 + timedelta(days=days, **delta)


def customer(customer_id: str = "c1", **changes: object) -> Customer:
    full = Customer(
        customer_id=customer_id,
        created_at=at(),
        updated_at=at(hours=2, microseconds=123),
        display_name="Ana Silva",
        email="ana@example.com",
        age_band="25-34",
        household_size=3,
        postcode="SW1A 1AA",
        preferences=Preferences(
            favorite_departments=("dairy", "produce"),
            favorite_brands=("Acme",),
            disliked_products=("p9",),
            budget_per_trip=85.5,
            organic_preference=True,
        ),
        dietary_restrictions=("vegetarian", "gluten_free"),
        allergens=("peanuts",),
        consent=Consent(personalization=True, marketing=True, analytics=False),
    )
    return replace(full, **changes)


def product(product_id: str, **changes: object) -> Product:
    return replace(
        Product(
            product_id=product_id,
            name=f"Product {product_id}",
            department="dairy",
            aisle="milk",
            brand="Acme",
            price=1.25,
            pack_size="1 L",
            dietary_tags=("vegetarian",),
            allergens=("milk",),
            in_stock=True,
            updated_at=at(),
        ),
        **changes,
    )


def purchase(customer_id: str, order_id: str, product_id: str, when: datetime, quantity: int = 1) -> Purchase:
    return Purchase(customer_id, order_id, product_id, quantity, 2.5, when)


CATALOG = (
    product("p1", dietary_tags=("vegan", "vegetarian", "organic")),
    product("p2", in_stock=False),
    product("p3", department="produce", aisle="fruit", brand="Farm", dietary_tags=("vegan", "vegetarian")),
    product("p4", department="produce", aisle="vegetables", brand="Farm", dietary_tags=("vegan", "organic")),
    product("p5", department="bakery", aisle="bread", brand="Baker", dietary_tags=(), allergens=("gluten",)),
    product("p6", department="dairy", aisle="cheese", brand="Acme", updated_at=None),
    product("p7", department="produce", aisle="fruit", brand="Acme", dietary_tags=("vegan",), in_stock=False),
)

# Two customers; c1 has several lines per order and several orders at the same moment, so
# pages must break ties on (order, product). Lines from HISTORY[6] on are imported as
# `PurchaseColumns` in some tests, which carry whole seconds.
HISTORY = (
    purchase("c1", "o1", "p1", at(-30, microseconds=7)),
    purchase("c1", "o1", "p2", at(-30, microseconds=7)),
    purchase("c1", "o1", "p3", at(-30, microseconds=7)),
    purchase("c1", "o2", "p1", at(-20)),
    purchase("c1", "o3", "p4", at(-20)),
    purchase("c1", "o3", "p5", at(-20)),
    purchase("c1", "o4", "p1", at(-10)),
    purchase("c1", "o5", "p6", at(-1)),
    purchase("c1", "o5", "p7", at(-1)),
    purchase("c1", "o5", "p2", at(-1)),
    purchase("c2", "o6", "p1", at(-5)),
    purchase("c2", "o6", "p3", at(-5)),
)


def newest_first(purchases: tuple[Purchase, ...] | list[Purchase]) -> list[Purchase]:
    return sorted(purchases, key=lambda p: (p.purchased_at, p.order_id, p.product_id), reverse=True)


def history_of(customer_id: str) -> list[Purchase]:
    return [p for p in HISTORY if p.customer_id == customer_id]


@pytest.fixture
def catalog(store: Store) -> Store:
    store.upsert_products(CATALOG)
    return store


@pytest.fixture
def history(store: Store) -> Store:
    store.add_purchases(HISTORY)
    return store


# --- customers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [
        customer(),
        customer(
            "c-minimal",
            display_name="",
            email="",
            preferences=Preferences(),
            consent=Consent(),
            dietary_restrictions=(),
            allergens=(),
            household_size=0,
        ),
    ],
    ids=["every-field", "defaults"],
)
def test_customer_round_trip(store: Store, profile: Customer) -> None:
    store.create_customer(profile)
    assert store.get_customer(profile.customer_id) == profile


def test_creating_a_taken_customer_id_is_already_exists_and_keeps_the_first(store: Store) -> None:
    store.create_customer(customer())
    with pytest.raises(AlreadyExistsError):
        store.create_customer(customer(display_name="Someone else"))
    assert store.get_customer("c1").display_name == "Ana Silva"


def test_unknown_customer_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_customer("nobody")


@pytest.mark.parametrize(
    ("ids", "found"),
    [
        (["c3", "c404", "c1", "c3"], {"c1", "c3"}),
        ([], set()),
        (["c404", ""], set()),
    ],
)
def test_get_customers_returns_only_existing(store: Store, ids: list[str], found: set[str]) -> None:
    for customer_id in ("c1", "c2", "c3"):
        store.create_customer(Customer(customer_id, T0, T0, household_size=int(customer_id[1:])))
    customers = store.get_customers(ids)
    assert set(customers) == found
    assert all(customers[i] == store.get_customer(i) for i in found)


def test_put_customer_replaces_the_profile(store: Store) -> None:
    store.create_customer(customer())
    changed = customer(preferences=Preferences(budget_per_trip=None), household_size=5, updated_at=at(days=1))
    store.put_customer(changed)
    assert store.get_customer("c1") == changed


def test_put_unknown_customer_is_not_found_and_creates_nothing(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.put_customer(customer("ghost"))
    with pytest.raises(NotFoundError):
        store.get_customer("ghost")


def test_conditional_put_writes_only_over_the_profile_it_was_computed_from(store: Store) -> None:
    original = customer()
    store.create_customer(original)
    first = customer(household_size=4, updated_at=at(days=1))
    store.put_customer(first, replaces=original.updated_at)
    assert store.get_customer("c1") == first

    # A second writer that read `original` too has lost the race: refused, nothing written.
    stale = customer(household_size=9, updated_at=at(days=2))
    with pytest.raises(ConflictError) as raised:
        store.put_customer(stale, replaces=original.updated_at)
    assert "c1" in str(raised.value)
    assert store.get_customer("c1") == first


def test_conditional_put_of_unknown_customer_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.put_customer(customer("ghost"), replaces=at())
    with pytest.raises(NotFoundError):
        store.get_customer("ghost")


def test_naive_timestamps_are_rejected_naming_the_field(store: Store) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        store.create_customer(customer(created_at=datetime(2026, 1, 1)))
    assert raised.value.field == "created_at"
    with pytest.raises(NotFoundError):
        store.get_customer("c1")


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_list_customer_ids_walks_every_id_once_in_order(store: Store, page_size: int) -> None:
    ids = [f"c{n:02d}" for n in range(11)]
    for customer_id in reversed(ids):
        store.create_customer(customer(customer_id))
    assert walk(lambda token: store.list_customer_ids(page_size, token), page_size) == ids


def test_customers_without_personalization_are_the_ones_who_refused_it(store: Store) -> None:
    assert store.customers_without_personalization() == frozenset()
    store.create_customer(customer("yes", consent=Consent(personalization=True)))
    store.create_customer(customer("no", consent=Consent(personalization=False, marketing=True)))
    store.create_customer(customer("later"))
    assert store.customers_without_personalization() == {"no"}
    later = store.get_customer("later")
    store.put_customer(replace(later, consent=Consent(personalization=False)), replaces=later.updated_at)
    assert store.customers_without_personalization() == {"no", "later"}
    no = store.get_customer("no")
    store.put_customer(replace(no, consent=Consent(personalization=True)), replaces=no.updated_at)
    assert store.customers_without_personalization() == {"later"}
    store.delete_customer("later")
    assert store.customers_without_personalization() == frozenset()


def walk(list_page, page_size: int) -> list:
    """Every item of a paginated listing, checking page sizes and tokens on the way."""
    items: list = []
    token = ""
    while True:
        page = list_page(token)
        assert len(page.items) <= page_size
        items.extend(page.items)
        if not page.next_page_token:
            return items
        assert page.items, "a page with a next token must not be empty"
        token = page.next_page_token


# --- catalog ---------------------------------------------------------------------------------


def test_products_round_trip(catalog: Store) -> None:
    for expected in CATALOG:
        assert catalog.get_product(expected.product_id) == expected


def test_upsert_products_replaces_and_counts(catalog: Store) -> None:
    cheaper = replace(CATALOG[0], price=0.99, in_stock=False, dietary_tags=())
    assert catalog.upsert_products([cheaper, product("p8")]) == 2
    assert catalog.get_product("p1") == cheaper
    assert catalog.get_product("p8") == product("p8")


def test_unknown_product_is_not_found(catalog: Store) -> None:
    with pytest.raises(NotFoundError):
        catalog.get_product("p404")


@pytest.mark.parametrize(
    ("ids", "found"),
    [
        (["p3", "p404", "p1"], {"p1", "p3"}),
        ([], set()),
        (["p404"], set()),
    ],
)
def test_get_products_returns_only_existing(catalog: Store, ids: list[str], found: set[str]) -> None:
    products = catalog.get_products(ids)
    assert set(products) == found
    assert all(products[i] == catalog.get_product(i) for i in found)


@pytest.mark.parametrize(
    ("product_filter", "expected_ids"),
    [
        (ProductFilter(), ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]),
        (ProductFilter(departments=("produce",)), ["p3", "p4", "p7"]),
        (ProductFilter(departments=("produce", "bakery")), ["p3", "p4", "p5", "p7"]),
        (ProductFilter(aisles=("fruit", "cheese")), ["p3", "p6", "p7"]),
        (ProductFilter(brands=("Farm",)), ["p3", "p4"]),
        (ProductFilter(dietary_tags=("vegan",)), ["p1", "p3", "p4", "p7"]),
        (ProductFilter(dietary_tags=("vegan", "organic")), ["p1", "p4"]),
        (ProductFilter(dietary_tags=("halal",)), []),
        (ProductFilter(in_stock_only=True), ["p1", "p3", "p4", "p5", "p6"]),
        (ProductFilter(departments=("produce",), dietary_tags=("vegan",), in_stock_only=True), ["p3", "p4"]),
        (ProductFilter(brands=("Acme",), aisles=("fruit",)), ["p7"]),
        (ProductFilter(departments=("frozen",)), []),
    ],
)
def test_list_products_filters(catalog: Store, product_filter: ProductFilter, expected_ids: list[str]) -> None:
    page = catalog.list_products(product_filter, page_size=100)
    assert [p.product_id for p in page.items] == expected_ids
    assert page.next_page_token == ""


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_list_products_pages_through_a_filter(catalog: Store, page_size: int) -> None:
    vegan = ProductFilter(dietary_tags=("vegan",))
    products = walk(lambda token: catalog.list_products(vegan, page_size, token), page_size)
    assert [p.product_id for p in products] == ["p1", "p3", "p4", "p7"]


def test_iter_products_yields_the_whole_catalog_by_id(catalog: Store) -> None:
    assert list(catalog.iter_products()) == sorted(CATALOG, key=lambda p: p.product_id)


def test_catalog_version_changes_with_every_product_write_and_only_then(catalog: Store) -> None:
    seen = [catalog.catalog_version()]
    catalog.add_purchases([Purchase("c1", "o1", "p1", 1, 1.0, at())])
    catalog.save_model(ModelRecord("v1", at(), "file:///models/v1", {}, active=True))
    assert catalog.catalog_version() == seen[-1]
    catalog.upsert_products([replace(CATALOG[0], in_stock=False)])
    seen.append(catalog.catalog_version())
    with catalog.import_session() as session:
        session.add_products([product("p8")])
        session.commit()
    seen.append(catalog.catalog_version())
    assert len(set(seen)) == 3
    assert [m.version for m in catalog.list_models()] == ["v1"]  # the marker is no model


# --- purchases -------------------------------------------------------------------------------


def test_list_purchases_is_newest_first(history: Store) -> None:
    page = history.list_purchases("c1", page_size=100)
    assert list(page.items) == newest_first(history_of("c1"))
    assert page.next_page_token == ""


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_purchase_pages_walk_every_line_once(history: Store, page_size: int) -> None:
    lines = walk(lambda token: history.list_purchases("c1", page_size, token), page_size)
    assert lines == newest_first(history_of("c1"))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(-20), None),  # start is inclusive
        (None, at(-20)),  # end is exclusive
        (at(-20), at(-1)),
        (at(-25), at(-15)),
        (at(-100), at(100)),
        (at(-2), at(-1.5)),  # nothing in range
    ],
)
@pytest.mark.parametrize("page_size", [1, 2, 100])
def test_purchase_date_range(history: Store, start: datetime | None, end: datetime | None, page_size: int) -> None:
    lines = walk(lambda token: history.list_purchases("c1", page_size, token, start=start, end=end), page_size)
    expected = [
        p
        for p in newest_first(history_of("c1"))
        if (start is None or p.purchased_at >= start) and (end is None or p.purchased_at < end)
    ]
    assert lines == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(-100), at(100)),
        (at(-20), at(-5)),  # start included, end excluded
        (at(-30, microseconds=7), at(-30, microseconds=8)),
        (at(-2), at(-1.5)),  # nothing in range
    ],
)
def test_purchases_between_are_the_period(history: Store, catalog: Store, start: datetime, end: datetime) -> None:
    def order(p: Purchase) -> tuple[str, datetime, str, str]:
        return (p.customer_id, p.purchased_at, p.order_id, p.product_id)

    expected = sorted((p for p in HISTORY if start <= p.purchased_at < end), key=order)
    assert sorted(history.purchases_between(start, end), key=order) == expected


def test_purchases_of_an_unknown_customer_are_empty(history: Store) -> None:
    assert history.list_purchases("nobody", page_size=10).items == ()
    assert history.purchases_of("nobody") == []


def test_add_purchases_is_idempotent_and_overwrites_the_same_line(history: Store) -> None:
    assert history.add_purchases(HISTORY) == len(HISTORY)
    assert history.count_purchases() == len(HISTORY)
    corrected = replace(HISTORY[0], quantity=4, unit_price=1.99)
    history.add_purchases([corrected])
    assert history.count_purchases() == len(HISTORY)
    assert corrected in history.purchases_of("c1")


def test_add_purchases_is_all_or_nothing(store: Store) -> None:
    bad = replace(HISTORY[1], purchased_at=datetime(2026, 1, 1))  # naive: rejected
    with pytest.raises(InvalidArgumentError) as raised:
        store.add_purchases([HISTORY[0], bad, HISTORY[2]])
    assert raised.value.field == "purchased_at"
    assert store.count_purchases() == 0


def test_timestamps_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 3, 2, 10, 30, 15, 123456, tzinfo=paris)
    store.add_purchases([purchase("c1", "o1", "p1", when)])
    (stored,) = store.purchases_of("c1")
    assert stored.purchased_at == when
    assert stored.purchased_at.utcoffset() == timedelta(0)
    assert stored.purchased_at.microsecond == 123456


def test_purchases_of_is_oldest_first_and_before_is_exclusive(history: Store) -> None:
    everything = list(reversed(newest_first(history_of("c1"))))
    assert history.purchases_of("c1") == everything
    assert history.purchases_of("c1", before=at(-20)) == [p for p in everything if p.purchased_at < at(-20)]


def order_line_rows(lines: OrderLines) -> list[tuple[str, str, int, float, float]]:
    """The lines as sorted rows: `order_lines_of` promises no order."""
    columns = (lines.quantities.tolist(), lines.unit_prices.tolist(), lines.purchased_at_s.tolist())
    return sorted(zip(lines.order_ids, lines.product_ids, *columns))


@pytest.mark.parametrize(
    ("customer_id", "before"),
    [
        ("c1", None),  # five orders, several lines each, two placed at the same moment
        ("c2", None),
        ("c1", at(-20)),  # before is exclusive
        ("c1", at(-30, microseconds=7)),  # ... to the microsecond
        ("c1", at(-30, microseconds=8)),
        ("nobody", None),
    ],
)
def test_order_lines_are_the_purchases_as_columns(history: Store, customer_id: str, before: datetime | None) -> None:
    lines = history.order_lines_of(customer_id, before=before)
    purchases = history.purchases_of(customer_id, before=before)
    # Seconds exactly as datetime.timestamp() gives them, microseconds included.
    expected = [(p.order_id, p.product_id, p.quantity, p.unit_price, p.purchased_at.timestamp()) for p in purchases]
    assert order_line_rows(lines) == sorted(expected)
    assert len(lines) == len(purchases)
    assert (lines.quantities.dtype, lines.unit_prices.dtype, lines.purchased_at_s.dtype) == (
        np.int64,
        np.float64,
        np.float64,
    )


def test_order_lines_before_a_naive_moment_are_refused_naming_the_field(history: Store) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        history.order_lines_of("c1", before=datetime(2026, 1, 1))
    assert raised.value.field == "before"


@pytest.mark.parametrize("batch_rows", [1, 5, 500_000])
def test_scan_purchases_yields_every_line_by_customer_and_time(history: Store, batch_rows: int) -> None:
    batches = list(history.scan_purchases(batch_rows=batch_rows))
    assert all(0 < len(batch) <= batch_rows for batch in batches)
    rows = [
        row
        for b in batches
        for row in zip(b.customer_ids, b.order_ids, b.product_ids, b.quantities, b.unit_prices, b.purchased_at)
    ]
    expected = [
        (p.customer_id, p.order_id, p.product_id, p.quantity, p.unit_price, int(p.purchased_at.timestamp()))
        for p in HISTORY
    ]
    assert sorted(rows) == sorted(expected)
    assert [(r[0], r[5]) for r in rows] == sorted((r[0], r[5]) for r in rows)


def test_purchases_keep_their_store(store: Store) -> None:
    """A line's store survives every way in (one by one, bulk columns) and out (history, scan)."""
    t = datetime(2026, 3, 1, 9, tzinfo=UTC)
    store.add_purchases([Purchase("c1", "o1", "p1", 1, 1.0, t, store_id="s-7"), Purchase("c1", "o1", "p2", 2, 1.0, t)])
    with store.import_session() as session:
        session.add_purchase_columns(
            PurchaseColumns(
                ["c2", "c2"], ["o2", "o2"], ["p1", "p3"], [1, 1], [2.0, 2.0], [int(t.timestamp())] * 2, ["s-9", ""]
            )
        )
        session.commit()
    assert [(p.product_id, p.store_id) for p in store.purchases_of("c1")] == [("p1", "s-7"), ("p2", "")]
    assert [(p.product_id, p.store_id) for p in store.list_purchases("c2", 10).items] == [("p3", ""), ("p1", "s-9")]
    scanned = sorted(
        (c, product, s)
        for b in store.scan_purchases()
        for c, product, s in zip(b.customer_ids, b.product_ids, b.store_ids)
    )
    assert scanned == [("c1", "p1", "s-7"), ("c1", "p2", ""), ("c2", "p1", "s-9"), ("c2", "p3", "")]


def test_purchase_columns_with_a_short_store_column_are_refused(store: Store) -> None:
    columns = PurchaseColumns(["c1", "c1"], ["o1", "o1"], ["p1", "p2"], [1, 1], [1.0, 1.0], [1_700_000_000] * 2, ["s"])
    with pytest.raises(InvalidArgumentError) as raised, store.import_session() as session:
        session.add_purchase_columns(columns)
    assert raised.value.field == "columns"
    assert store.count_purchases() == 0


def test_scanning_an_empty_store_yields_nothing(store: Store) -> None:
    assert list(store.scan_purchases()) == []
    assert store.count_purchases() == 0


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MALFORMED_TOKENS = [
    "not a token!",
    "%%%",
    _token(b"\xff\xfe"),
    _token(b"{not json"),
    _token(b'{"a": 1}'),
    _token(b'["purchases"]'),
    _token(b'["purchases", "x", "o1", "p1"]'),
    _token(b'["customers", 1]'),
    _token(b'["customers", "c1", "extra"]'),
    _token(b'["products", 5]'),
]


@pytest.mark.parametrize("token", MALFORMED_TOKENS)
def test_malformed_page_tokens_are_invalid_arguments(history: Store, token: str) -> None:
    listings = [
        lambda: history.list_purchases("c1", 2, token),
        lambda: history.list_products(ProductFilter(), 2, token),
        lambda: history.list_customer_ids(2, token),
    ]
    for listing in listings:
        with pytest.raises(InvalidArgumentError) as raised:
            listing()
        assert raised.value.field == "page_token"


def test_a_token_from_one_listing_is_refused_by_another(history: Store) -> None:
    token = history.list_purchases("c1", 1).next_page_token
    with pytest.raises(InvalidArgumentError):
        history.list_customer_ids(1, token)


@pytest.mark.parametrize("page_size", [0, -1])
def test_page_sizes_and_limits_must_be_positive(history: Store, page_size: int) -> None:
    for listing in (
        lambda: history.list_purchases("c1", page_size),
        lambda: history.list_products(ProductFilter(), page_size),
        lambda: history.list_customer_ids(page_size),
    ):
        with pytest.raises(InvalidArgumentError) as raised:
            listing()
        assert raised.value.field == "page_size"
    for limited in (
        lambda: history.list_interactions("c1", limit=page_size),
        lambda: history.list_recommendations("c1", limit=page_size),
        lambda: history.list_documents("analysis", limit=page_size),
    ):
        with pytest.raises(InvalidArgumentError) as raised:
            limited()
        assert raised.value.field == "limit"


# --- behaviour -------------------------------------------------------------------------------


def interaction(customer_id: str, interaction_id: str, when: datetime, **changes: object) -> Interaction:
    return replace(
        Interaction(customer_id, interaction_id, InteractionKind.CART_ADD, when, product_id="p1", quantity=2),
        **changes,
    )


def test_interactions_newest_first_since_and_limit(store: Store) -> None:
    events = [
        interaction("c1", "i1", at(-3), kind=InteractionKind.VIEW, quantity=0),
        interaction("c1", "i2", at(-2), kind=InteractionKind.SEARCH, product_id="", query="oat milk", quantity=0),
        interaction("c1", "i3", at(-1)),
        interaction("c2", "i4", at(-1)),
    ]
    assert not store.has_interactions()
    for event in events:
        store.add_interaction(event)
    assert store.has_interactions()
    store.add_interaction(events[0])  # a retried write changes nothing
    assert store.list_interactions("c1") == [events[2], events[1], events[0]]
    assert store.list_interactions("c1", since=at(-2)) == [events[2], events[1]]
    assert store.list_interactions("c1", limit=1) == [events[2]]
    assert store.list_interactions("nobody") == []


# --- served recommendations and feedback ---------------------------------------------------------


def served(recommendation_id: str, customer_id: str, when: datetime) -> ServedRecommendation:
    return ServedRecommendation(
        recommendation_id=recommendation_id,
        customer_id=customer_id,
        generated_at=when,
        strategy="balanced",
        model_version="v1",
        items=(
            RecommendedItem("p1", 0.93, 0.8, ("you usually buy this every 9 days; last bought 10 days ago",)),
            RecommendedItem("p3", 0.5, 0.25, ()),
        ),
    )


def test_recommendation_round_trip_and_newest_first(store: Store) -> None:
    lists = [served("r1", "c1", at(-2)), served("r2", "c1", at(-1)), served("r3", "c2", at(-1))]
    for served_list in lists:
        store.save_recommendation(served_list)
    assert store.get_recommendation("r1") == lists[0]
    assert store.list_recommendations("c1") == [lists[1], lists[0]]
    assert store.list_recommendations("c1", limit=1) == [lists[1]]


def test_recommendations_saved_in_a_batch_and_again(store: Store) -> None:
    lists = [served(f"r{n}", f"c{n % 3}", at(-n)) for n in range(30)]  # more than one DynamoDB batch
    store.save_recommendations(lists)
    store.save_recommendations(lists[:5])  # a retried batch changes nothing
    store.save_recommendations([])
    assert [store.get_recommendation(f"r{n}") for n in range(30)] == lists
    assert store.list_recommendations("c0", limit=100) == [s for s in lists if s.customer_id == "c0"]


def test_recommendation_ids_are_unique_and_unknown_ones_not_found(store: Store) -> None:
    store.save_recommendation(served("r1", "c1", at()))
    with pytest.raises(AlreadyExistsError):
        store.save_recommendation(served("r1", "c2", at(1)))
    assert store.get_recommendation("r1").customer_id == "c1"
    with pytest.raises(NotFoundError):
        store.get_recommendation("r404")


def test_feedback_per_list_newest_first_and_idempotent(store: Store) -> None:
    events = [
        Feedback("r1", "c1", "p1", FeedbackEvent.SHOWN, at(0)),
        Feedback("r1", "c1", "p1", FeedbackEvent.CLICKED, at(minutes=1)),
        Feedback("r1", "c1", "p3", FeedbackEvent.DISMISSED, at(minutes=2)),
        Feedback("r2", "c2", "p1", FeedbackEvent.PURCHASED, at(minutes=3)),
    ]
    for event in events + events[:2]:
        store.add_feedback(event)
    assert store.list_feedback("r1") == [events[2], events[1], events[0]]
    assert store.list_feedback("r404") == []


# --- models ----------------------------------------------------------------------------------


def model(version: str, created: datetime, **changes: object) -> ModelRecord:
    return replace(
        ModelRecord(version, created, f"file:///models/{version}", {"recall@10": 0.31, "ndcg@10": 0.2}),
        **changes,
    )


def test_models_newest_first_and_none_active_at_first(store: Store) -> None:
    assert store.list_models() == []
    assert store.active_model() is None
    store.save_model(model("v1", at(-2), notes="first"))
    store.save_model(model("v2", at(-1)))
    assert store.list_models() == [model("v2", at(-1)), model("v1", at(-2), notes="first")]
    assert store.active_model() is None


def test_saving_a_taken_model_version_is_already_exists(store: Store) -> None:
    store.save_model(model("v1", at()))
    with pytest.raises(AlreadyExistsError):
        store.save_model(model("v1", at(1), artifact_uri="elsewhere"))
    assert store.list_models() == [model("v1", at())]


def test_activation_keeps_exactly_one_active_and_rolls_back(store: Store) -> None:
    for n in (1, 2, 3):
        store.save_model(model(f"v{n}", at(n)))
    assert store.activate_model("v2") == model("v2", at(2), active=True)
    assert store.activate_model("v3").version == "v3"
    assert store.activate_model("v2").version == "v2"  # roll back to the previous version
    assert store.activate_model("v2").version == "v2"  # activating the active one is harmless
    assert [m.version for m in store.list_models() if m.active] == ["v2"]
    assert store.active_model() == model("v2", at(2), active=True)


def test_activating_an_unknown_model_is_not_found_and_changes_nothing(store: Store) -> None:
    store.save_model(model("v1", at()))
    store.activate_model("v1")
    with pytest.raises(NotFoundError):
        store.activate_model("v404")
    assert store.active_model() == model("v1", at(), active=True)


def test_saving_an_active_model_deactivates_the_others(store: Store) -> None:
    store.save_model(model("v1", at(), active=True))
    store.save_model(model("v2", at(1), active=True))
    assert [m.version for m in store.list_models() if m.active] == ["v2"]


def test_deleting_a_model_forgets_an_inactive_version_only(store: Store) -> None:
    for n in (1, 2, 3):
        store.save_model(model(f"v{n}", at(n)))
    store.activate_model("v2")
    store.delete_model("v1")
    assert [m.version for m in store.list_models()] == ["v3", "v2"]
    with pytest.raises(FailedPreconditionError, match="v2 is active"):
        store.delete_model("v2")
    with pytest.raises(NotFoundError):
        store.delete_model("v1")
    with pytest.raises(NotFoundError):
        store.activate_model("v1")
    assert [(m.version, m.active) for m in store.list_models()] == [("v3", False), ("v2", True)]
    store.activate_model("v3")
    store.delete_model("v2")  # no longer active
    assert store.list_models() == [model("v3", at(3), active=True)]


# --- documents -------------------------------------------------------------------------------


def test_documents_latest_per_customer_and_newest_first_across_customers(store: Store) -> None:
    assert store.latest_document("analysis", "c1") is None
    store.put_document("analysis", "c1", at(-2), {"summary": "old", "cycles": [7, 14]})
    store.put_document("analysis", "c1", at(-1), {"summary": "new"})
    store.put_document("analysis", "c2", at(-1.5), {"summary": "c2"})
    store.put_document("predictions", "c1", at(0), {"next_visit_days": 3.5})
    store.put_document("analysis", "c1", at(-1), {"summary": "new, rewritten"})  # same key: replaced

    assert store.latest_document("analysis", "c1") == (at(-1), {"summary": "new, rewritten"})
    assert store.latest_document("predictions", "c2") is None
    assert store.list_documents("analysis") == [
        ("c1", at(-1), {"summary": "new, rewritten"}),
        ("c2", at(-1.5), {"summary": "c2"}),
        ("c1", at(-2), {"summary": "old", "cycles": [7, 14]}),
    ]
    assert [d[0] for d in store.list_documents("analysis", since=at(-1.5))] == ["c1", "c2"]
    assert len(store.list_documents("analysis", limit=2)) == 2
    assert store.customer_documents("c1") == [
        ("predictions", at(0), {"next_visit_days": 3.5}),
        ("analysis", at(-1), {"summary": "new, rewritten"}),
        ("analysis", at(-2), {"summary": "old", "cycles": [7, 14]}),
    ]


# --- bulk import -----------------------------------------------------------------------------


def as_columns(purchases: tuple[Purchase, ...] | list[Purchase]) -> PurchaseColumns:
    return PurchaseColumns(
        customer_ids=[p.customer_id for p in purchases],
        order_ids=[p.order_id for p in purchases],
        product_ids=[p.product_id for p in purchases],
        quantities=[p.quantity for p in purchases],
        unit_prices=[p.unit_price for p in purchases],
        purchased_at=[int(p.purchased_at.timestamp()) for p in purchases],
    )


def import_everything(store: Store) -> None:
    with store.import_session() as session:
        session.add_customers([customer("c1"), customer("c2")])
        session.add_products(CATALOG)
        session.add_purchases(HISTORY[:6])
        session.add_purchase_columns(as_columns(HISTORY[6:]))
        session.commit()


def snapshot(store: Store) -> tuple:
    """Everything an import can write, as seen through the public API."""
    return (
        store.list_customer_ids(100).items,
        tuple(store.iter_products()),
        tuple(store.purchases_of("c1")),
        tuple(store.purchases_of("c2")),
        store.count_purchases(),
    )


def test_import_session_commits_everything(store: Store) -> None:
    import_everything(store)
    assert store.list_customer_ids(100).items == ("c1", "c2")
    assert store.get_customer("c2") == customer("c2")
    assert list(store.iter_products()) == list(CATALOG)
    assert store.purchases_of("c1") == list(reversed(newest_first(history_of("c1"))))
    assert store.count_purchases() == len(HISTORY)


def test_importing_the_same_data_twice_changes_nothing(store: Store) -> None:
    import_everything(store)
    before = snapshot(store)
    import_everything(store)
    assert snapshot(store) == before


class ImportInterrupted(Exception):
    pass


@pytest.mark.parametrize("last_step", ["customers", "products", "purchases", "columns"])
def test_an_import_interrupted_by_an_error_leaves_nothing(store: Store, last_step: str) -> None:
    steps = {
        "customers": lambda s: s.add_customers([customer("c1")]),
        "products": lambda s: s.add_products(CATALOG),
        "purchases": lambda s: s.add_purchases(HISTORY[:3]),
        "columns": lambda s: s.add_purchase_columns(as_columns(HISTORY[3:])),
    }
    empty = snapshot(store)
    with pytest.raises(ImportInterrupted):
        with store.import_session() as session:
            for name, step in steps.items():
                step(session)
                if name == last_step:
                    raise ImportInterrupted
    assert snapshot(store) == empty


def test_an_import_left_without_commit_leaves_nothing(store: Store) -> None:
    with store.import_session() as session:
        session.add_customers([customer("c1")])
        session.add_purchase_columns(as_columns(HISTORY))
    assert snapshot(store) == (((), (), (), (), 0))


def test_a_rolled_back_import_leaves_earlier_data_untouched(history: Store) -> None:
    before = snapshot(history)
    with pytest.raises(ImportInterrupted):
        with history.import_session() as session:
            session.add_purchases([replace(p, quantity=9) for p in HISTORY])
            raise ImportInterrupted
    assert snapshot(history) == before


def test_purchase_columns_of_different_lengths_are_refused(store: Store) -> None:
    columns = replace(as_columns(HISTORY), quantities=[1])
    with store.import_session() as session:
        with pytest.raises(InvalidArgumentError) as raised:
            session.add_purchase_columns(columns)
        assert raised.value.field == "columns"


def test_a_committed_import_session_takes_no_more_rows(store: Store) -> None:
    with store.import_session() as session:
        session.add_customers([customer("c1")])
        session.commit()
        with pytest.raises(FailedPreconditionError):
            session.add_customers([customer("c2")])
    assert store.list_customer_ids(10).items == ("c1",)


# --- erasure ---------------------------------------------------------------------------------


def populate_customer(store: Store, customer_id: str) -> None:
    store.create_customer(customer(customer_id))
    store.add_purchases([replace(p, customer_id=customer_id) for p in HISTORY[:4]])
    store.add_interaction(interaction(customer_id, "i1", at()))
    store.save_recommendation(served(f"r-{customer_id}", customer_id, at()))
    store.add_feedback(Feedback(f"r-{customer_id}", customer_id, "p1", FeedbackEvent.CLICKED, at()))
    store.put_document("analysis", customer_id, at(), {"summary": customer_id})


def everything_held_about(store: Store, customer_id: str) -> dict[str, object]:
    try:
        profile: object = store.get_customer(customer_id)
    except NotFoundError:
        profile = None
    return {
        "profile": profile,
        "customer_ids": customer_id in store.list_customer_ids(100).items,
        "purchases": store.purchases_of(customer_id),
        "listed_purchases": store.list_purchases(customer_id, 10).items,
        "scanned_purchases": [c for b in store.scan_purchases() for c in b.customer_ids if c == customer_id],
        "interactions": store.list_interactions(customer_id),
        "recommendations": store.list_recommendations(customer_id),
        "feedback": store.list_feedback(f"r-{customer_id}"),
        "documents": store.customer_documents(customer_id),
        "listed_documents": [d for d in store.list_documents("analysis") if d[0] == customer_id],
        "latest_document": store.latest_document("analysis", customer_id),
    }


def test_erasure_removes_the_customer_from_every_table_and_only_them(store: Store) -> None:
    populate_customer(store, "c1")
    populate_customer(store, "c2")
    kept = everything_held_about(store, "c2")

    erasure = store.delete_customer("c1")

    assert erasure.counts == {
        "profile": 1,
        "purchases": 4,
        "interactions": 1,
        "recommendations": 1,
        "feedback": 1,
        "documents": 1,
    }
    assert not any(everything_held_about(store, "c1").values())
    with pytest.raises(NotFoundError):
        store.get_recommendation("r-c1")
    assert everything_held_about(store, "c2") == kept
    with pytest.raises(NotFoundError):
        store.delete_customer("c1")


def test_erasure_of_history_without_a_profile(history: Store) -> None:
    erasure = history.delete_customer("c2")
    assert erasure.counts["profile"] == 0
    assert erasure.counts["purchases"] == 2
    assert history.purchases_of("c2") == []


def test_erasing_an_unknown_customer_is_not_found(history: Store) -> None:
    with pytest.raises(NotFoundError):
        history.delete_customer("nobody")
    assert history.count_purchases() == len(HISTORY)


# --- concurrency -----------------------------------------------------------------------------


def test_threads_write_and_read_concurrently(store: Store) -> None:
    threads, orders_each, lines_per_order = 8, 10, 5
    start = threading.Barrier(threads)

    def shop(n: int) -> int:
        start.wait()
        customer_id = f"c{n}"
        store.create_customer(customer(customer_id))
        for order in range(orders_each):
            store.add_purchases(
                [purchase(customer_id, f"o{n}-{order}", f"p{line}", at(order)) for line in range(lines_per_order)]
            )
            store.add_interaction(interaction(customer_id, f"i{order}", at(order)))
            assert len(store.list_purchases(customer_id, 1000).items) == (order + 1) * lines_per_order
        return len(store.purchases_of(customer_id))

    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(shop, range(threads)))

    assert counts == [orders_each * lines_per_order] * threads
    assert store.count_purchases() == threads * orders_each * lines_per_order
    assert len(store.list_customer_ids(100).items) == threads


# --- leases ------------------------------------------------------------------------------------


def test_a_lease_is_held_by_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    assert store.acquire_lease("admin:retrain", "host-a", at(), at(seconds=60))
    assert not store.acquire_lease("admin:retrain", "host-b", at(seconds=59), at(seconds=119))
    assert store.acquire_lease("admin:batch-analyze", "host-b", at(), at(seconds=60))  # another lease
    assert store.acquire_lease("admin:retrain", "host-a", at(seconds=30), at(seconds=90))  # renewed
    assert not store.acquire_lease("admin:retrain", "host-b", at(seconds=60), at(seconds=120))
    # A crashed holder renews no more: once expired, another takes it, and the old holder's
    # late release leaves the new holder's lease alone.
    assert store.acquire_lease("admin:retrain", "host-b", at(seconds=90), at(seconds=150))
    store.release_lease("admin:retrain", "host-a")
    assert not store.acquire_lease("admin:retrain", "host-c", at(seconds=100), at(seconds=160))
    store.release_lease("admin:retrain", "host-b")
    assert store.acquire_lease("admin:retrain", "host-c", at(seconds=100), at(seconds=160))
    assert store.list_experiments() == []  # lease rows are no experiments


def test_one_of_many_concurrent_holders_gets_a_lease(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda n: store.acquire_lease("admin:retrain", f"h{n}", at(), at(seconds=60)), range(8)))
    assert taken.count(True) == 1
