"""What only the DynamoDB store has: tables and indexes, its URL, retries, batches, page tokens.

The behaviour every store shares is in test_store_contract.py (which runs here too, as
`[dynamodb]`). Everything runs against moto's server over HTTP (tests/store/moto_server.py).
Faults DynamoDB produces under load — throttling, UnprocessedItems, UnprocessedKeys — cannot
be provoked on a local server, so `Faults` answers chosen calls itself at the client boundary
(a botocore `before-call` hook), before the request leaves the process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto_server import LocalDynamoDB

from omnix_recs.cli import main
from omnix_recs.domain.models import Consent, Customer, Product, ProductFilter, Purchase
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError
from omnix_recs.store import open_store
from omnix_recs.store.dynamodb import TABLES, DynamoStore, RetryPolicy, table_name
from omnix_recs.store.dynamodb.codec import REFUSALS_INDEXED_ROW, REFUSED_ATTRIBUTE, customer_item, wire_string

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.004)
THROTTLING_CODES = ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]

Answer = Callable[[dict[str, Any]], "tuple[int, dict[str, Any]] | None"]


class Faults:
    """Answers chosen DynamoDB calls in place of the server, counting every call it sees.

    `answer(request)` gets the call's parameters (DynamoDB JSON) and returns (HTTP status,
    response body) to answer, or None to let the call through to the server.
    """

    def __init__(self, store: DynamoStore) -> None:
        self._events = store.db.client.meta.events
        self.calls: dict[str, int] = {}

    def on(self, operation: str, answer: Answer) -> None:
        def before_call(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            answered = answer(json.loads(params["body"]))
            if answered is None:
                return None
            status, body = answered
            body["ResponseMetadata"] = {"HTTPStatusCode": status}
            return AWSResponse("http://fault", status, {}, None), body

        self._events.register(f"before-call.dynamodb.{operation}", before_call)


def failing(code: str, times: int | None = None, status: int = 400) -> Answer:
    """Fail with `code` the first `times` calls (every call when None)."""
    seen = 0

    def answer(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        nonlocal seen
        seen += 1
        if times is not None and seen > times:
            return None
        return status, {"Error": {"Code": code, "Message": "injected"}}

    return answer


def product(product_id: str, **changes: object) -> Product:
    return replace(Product(product_id, f"Product {product_id}", "dairy", "milk", price=1.25, updated_at=T0), **changes)


def lines(count: int, customer_id: str = "c1") -> list[Purchase]:
    return [Purchase(customer_id, f"o{n // 5}", f"p{n % 5}", 1, 2.5, T0 + timedelta(days=n // 5)) for n in range(count)]


@pytest.fixture
def fast_store(local_dynamodb: LocalDynamoDB) -> Iterator[DynamoStore]:
    """A store with empty tables of its own that retries quickly (tests of the retry bounds)."""
    store = DynamoStore.from_url(local_dynamodb.url(), session=local_dynamodb.session, retry=FAST_RETRIES)
    store.create_tables()
    yield store
    store.close()


# --- tables, URL -----------------------------------------------------------------------------


def test_create_tables_creates_every_table_and_index_once(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store(create_tables=False)
    names = [table_name(spec, store.env) for spec in TABLES]

    assert store.create_tables() == names
    assert store.create_tables() == []  # idempotent: everything exists

    for spec, name in zip(TABLES, names):
        table = store.db.call("describe_table", TableName=name)["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {i.name for i in spec.indexes}
    store.close()


def test_create_tables_adds_an_index_missing_from_an_existing_table(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store()
    purchases = store.table_names["purchase-history"]
    store.db.call(
        "update_table",
        TableName=purchases,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "listing-customerId-index"}}],
    )
    assert store.create_tables() == [f"{purchases}/listing-customerId-index"]
    store.close()


def test_create_tables_refuses_a_table_with_another_key(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store(create_tables=False)
    store.db.call(
        "create_table",
        TableName=store.table_names["customer-profiles"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(FailedPreconditionError, match="another key schema"):
        store.create_tables()
    store.close()


def test_table_names_come_from_the_env_parameter(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store("staging")
    assert store.table_names["customer-profiles"] == "omnix-ai-customer-profiles-staging"
    assert store.table_names["purchase-history"] == "omnix-ai-purchase-history-staging"
    pages = store.db.client.get_paginator("list_tables").paginate()  # 100 names a page
    listed = {name for page in pages for name in page["TableNames"]}
    assert set(store.table_names.values()) <= listed
    store.close()


def test_a_missing_table_says_to_run_init_tables(local_dynamodb: LocalDynamoDB) -> None:
    store = local_dynamodb.open_store(create_tables=False)
    with pytest.raises(FailedPreconditionError, match="omnix init-tables"):
        store.get_product("p1")
    store.close()


def test_open_store_dispatches_dynamodb_urls(local_dynamodb: LocalDynamoDB) -> None:
    store = open_store(local_dynamodb.url("dispatch"))
    assert isinstance(store, DynamoStore)
    assert store.env == "dispatch"
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "dynamodb://localhost?region=us-east-1",
        "dynamodb://?region=us-east-1&table=x",
        "dynamodb://?region=us-east-1&region=eu-west-1",
        "dynamodb://?region=us-east-1&env=dev/../prod",
        "dynamodb://?region=us-east-1&endpoint=not a url",
    ],
)
def test_malformed_urls_name_omnix_store(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        DynamoStore.from_url(url)
    assert raised.value.field == "OMNIX_STORE"


# --- the refusals' index ---------------------------------------------------------------------


def profile(customer_id: str, *, personalization: bool) -> Customer:
    return Customer(customer_id, T0, T0, consent=Consent(personalization=personalization))


def indexed_refusers(store: DynamoStore) -> set[str]:
    """The ids the refusals' index holds, read from the index itself."""
    items = store.db.items(
        "query",
        TableName=store.table_names["customer-profiles"],
        IndexName="refusals-customerId-index",
        KeyConditionExpression="#refused = :refused",
        ExpressionAttributeNames={"#refused": REFUSED_ATTRIBUTE},
        ExpressionAttributeValues={":refused": wire_string("refused")},
    )
    return {item["customerId"]["S"] for item in items}


def counting(store: DynamoStore, *operations: str) -> dict[str, int]:
    """How many calls of each of `operations` `store` makes from now on (filled in as it runs)."""
    faults = Faults(store)
    for operation in operations:
        faults.on(operation, lambda request: None)
    return faults.calls


def tables_from_before_the_index(store: DynamoStore) -> None:
    """Make `store`'s tables look made by a version without the refusals' index: no marker."""
    store.db.call(
        "delete_item", TableName=store.table_names["models"], Key={"version": wire_string(REFUSALS_INDEXED_ROW)}
    )


def written_by_an_older_version(store: DynamoStore, customer: Customer) -> None:
    item = customer_item(customer)
    item.pop(REFUSED_ATTRIBUTE, None)
    store.db.call("put_item", TableName=store.table_names["customer-profiles"], Item=item)


def test_new_tables_index_refusers_and_training_reads_them_without_a_scan(fast_store: DynamoStore) -> None:
    assert fast_store.refusals_indexed()
    fast_store.create_customer(profile("no", personalization=False))
    fast_store.create_customer(profile("yes", personalization=True))
    assert indexed_refusers(fast_store) == {"no"}

    # Consent given again takes the profile out of the index; refused again puts it back.
    for personalization, expected in ((True, set()), (False, {"no"})):
        stored = fast_store.get_customer("no")
        changed = replace(stored, consent=Consent(personalization=personalization), updated_at=T0 + timedelta(1))
        fast_store.put_customer(changed, replaces=stored.updated_at)
        assert indexed_refusers(fast_store) == expected

    calls = counting(fast_store, "Scan", "Query")
    assert fast_store.customers_without_personalization() == {"no"}
    assert calls == {"Query": 1}


def test_profiles_from_before_the_index_are_scanned_until_index_refusals_marks_them(fast_store: DynamoStore) -> None:
    tables_from_before_the_index(fast_store)
    written_by_an_older_version(fast_store, profile("old-no", personalization=False))
    written_by_an_older_version(fast_store, profile("old-yes", personalization=True))
    fast_store.create_customer(profile("new-no", personalization=False))
    assert not fast_store.refusals_indexed()
    assert indexed_refusers(fast_store) == {"new-no"}  # the index misses "old-no": not trusted
    assert fast_store.customers_without_personalization() == {"old-no", "new-no"}  # by a Scan

    assert fast_store.index_refusals() == 1
    assert fast_store.refusals_indexed()
    assert indexed_refusers(fast_store) == {"old-no", "new-no"}
    assert fast_store.get_customer("old-no") == profile("old-no", personalization=False)  # nothing else changed
    calls = counting(fast_store, "Scan", "Query")
    assert fast_store.customers_without_personalization() == {"old-no", "new-no"}
    assert calls == {"Query": 1}
    assert fast_store.index_refusals() == 0  # idempotent


def test_index_refusals_leaves_profiles_that_consent_or_are_erased_while_it_runs(
    local_dynamodb: LocalDynamoDB, fast_store: DynamoStore
) -> None:
    tables_from_before_the_index(fast_store)
    for customer_id in ("consents", "erased", "refuses"):
        written_by_an_older_version(fast_store, profile(customer_id, personalization=False))
    # Another process changes two of them after the Scan found them, before they are marked.
    other = DynamoStore.from_url(fast_store.url, session=local_dynamodb.session)
    changed = False

    def change_them_first(request: dict[str, Any]) -> None:
        nonlocal changed
        if not changed:
            changed = True
            stored = other.get_customer("consents")
            other.put_customer(replace(stored, consent=Consent(personalization=True)), replaces=stored.updated_at)
            other.delete_customer("erased")

    Faults(fast_store).on("UpdateItem", change_them_first)
    assert fast_store.index_refusals() == 1
    assert indexed_refusers(fast_store) == {"refuses"}
    assert fast_store.customers_without_personalization() == {"refuses"}
    with pytest.raises(NotFoundError):  # the condition did not bring the erased profile back
        fast_store.get_customer("erased")
    other.close()


def test_adding_the_refusals_index_to_older_tables_does_not_trust_it(fast_store: DynamoStore) -> None:
    profiles = fast_store.table_names["customer-profiles"]
    fast_store.db.call(
        "update_table",
        TableName=profiles,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "refusals-customerId-index"}}],
    )
    tables_from_before_the_index(fast_store)
    with pytest.raises(FailedPreconditionError, match="omnix init-tables"):
        fast_store.index_refusals()  # would mark an index that is not there
    assert not fast_store.refusals_indexed()
    assert fast_store.create_tables() == [f"{profiles}/refusals-customerId-index"]
    assert not fast_store.refusals_indexed()  # DynamoDB indexed what it found; older writers wrote no key
    assert fast_store.index_refusals() == 0 and fast_store.refusals_indexed()


def test_omnix_index_refusals_marks_older_profiles_and_refuses_sqlite(
    fast_store: DynamoStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tables_from_before_the_index(fast_store)
    written_by_an_older_version(fast_store, profile("old-no", personalization=False))
    assert main(["index-refusals", "--store", fast_store.url]) == 0
    assert json.loads(capsys.readouterr().out) == {"profiles_marked": 1, "refusals_indexed": True}
    assert fast_store.refusals_indexed() and indexed_refusers(fast_store) == {"old-no"}

    assert main(["index-refusals", "--store", f"sqlite:///{tmp_path / 'omnix.db'}"]) == 2
    refused = capsys.readouterr().err
    assert "--store" in refused and "DynamoDB" in refused and "Traceback" not in refused


# --- values and keys -------------------------------------------------------------------------


@pytest.mark.parametrize("price", [0.1 + 0.2, 1e-5, 2.49, 123456789.125, 0.0, 1e-200])
def test_floats_round_trip_as_decimals(fast_store: DynamoStore, price: float) -> None:
    fast_store.upsert_products([product("p1", price=price)])
    stored = fast_store.get_product("p1").price
    assert stored == (price if price >= 1e-130 else 0.0)  # DynamoDB numbers stop at 1e-130


def test_non_finite_numbers_are_refused_naming_the_field(fast_store: DynamoStore) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        fast_store.upsert_products([product("p1"), product("p2", price=float("nan"))])
    assert raised.value.field == "price"
    assert fast_store.get_products(["p1", "p2"]) == {}


def test_ids_with_separators_never_share_a_key(fast_store: DynamoStore) -> None:
    ambiguous = [
        Purchase("c1", "a#b", "c", 1, 1.0, T0),
        Purchase("c1", "a", "b#c", 1, 1.0, T0),
        Purchase("c1", "a%23b", "c", 1, 1.0, T0),
    ]
    assert fast_store.add_purchases(ambiguous) == 3
    assert sorted((p.order_id, p.product_id) for p in fast_store.purchases_of("c1")) == sorted(
        (p.order_id, p.product_id) for p in ambiguous
    )


def test_page_tokens_are_urlsafe_and_scoped_to_their_listing(fast_store: DynamoStore) -> None:
    fast_store.add_purchases(lines(6, "c1") + lines(6, "c2"))
    token = fast_store.list_purchases("c1", 2).next_page_token
    assert token and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    with pytest.raises(InvalidArgumentError) as raised:
        fast_store.list_purchases("c2", 2, token)  # another customer's listing
    assert raised.value.field == "page_token"
    produce = ProductFilter(departments=("produce",))
    fast_store.upsert_products([product("p1", department="produce"), product("p2", department="produce")])
    department_token = fast_store.list_products(produce, 1).next_page_token
    with pytest.raises(InvalidArgumentError):
        fast_store.list_products(ProductFilter(departments=("dairy",)), 1, department_token)


def test_a_forged_token_cannot_reach_another_customer(fast_store: DynamoStore) -> None:
    fast_store.add_purchases(lines(3, "c2"))
    forged = base64.urlsafe_b64encode(json.dumps({"customerId": "c2", "sk": "0"}).encode()).decode()
    with pytest.raises(InvalidArgumentError):
        fast_store.list_purchases("c1", 2, forged)


# --- retries ---------------------------------------------------------------------------------


def test_unprocessed_items_are_sent_again(fast_store: DynamoStore) -> None:
    faults = Faults(fast_store)
    first_time = True

    def nothing_processed_the_first_time(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        nonlocal first_time
        if not first_time:
            return None
        first_time = False
        return 200, {"UnprocessedItems": request["RequestItems"]}

    faults.on("BatchWriteItem", nothing_processed_the_first_time)
    history = lines(40)  # more than one transaction holds: batch writes
    assert fast_store.add_purchases(history) == 40
    assert fast_store.purchases_of("c1") == history
    # 41 rows (40 lines and the customer's history row): 2 batches, one of them sent twice.
    assert faults.calls["BatchWriteItem"] == 3


def test_unprocessed_keys_are_asked_again(fast_store: DynamoStore) -> None:
    fast_store.upsert_products([product("p1"), product("p2")])
    faults = Faults(fast_store)
    first_time = True

    def nothing_read_the_first_time(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        nonlocal first_time
        if not first_time:
            return None
        first_time = False
        return 200, {"Responses": {}, "UnprocessedKeys": request["RequestItems"]}

    faults.on("BatchGetItem", nothing_read_the_first_time)
    assert set(fast_store.get_products(["p1", "p2", "p404"])) == {"p1", "p2"}
    assert faults.calls["BatchGetItem"] == 2


def test_items_never_processed_become_unavailable_and_the_import_is_undone(fast_store: DynamoStore) -> None:
    fast_store.upsert_products([product("p1", price=1.0)])
    faults = Faults(fast_store)

    def never_the_poisoned_product(request: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        writes = [w for ws in request["RequestItems"].values() for w in ws]
        if any(w.get("PutRequest", {}).get("Item", {}).get("productId") == {"S": "p-poison"} for w in writes):
            return 200, {"UnprocessedItems": request["RequestItems"]}
        return None  # other writes, and the undo's deletes, go through

    faults.on("BatchWriteItem", never_the_poisoned_product)
    catalog = [product("p1", price=9.0)] + [product(f"p{n:03d}") for n in range(150)] + [product("p-poison")]
    with pytest.raises(UnavailableError, match="unprocessed"):
        with fast_store.import_session() as session:
            session.add_products(catalog)
            session.commit()
    assert [p.product_id for p in fast_store.iter_products()] == ["p1"]
    assert fast_store.get_product("p1").price == 1.0  # the overwritten row has its old value back


@pytest.mark.parametrize("code", THROTTLING_CODES + ["InternalServerError"])
def test_throttling_is_retried_with_backoff(fast_store: DynamoStore, code: str) -> None:
    faults = Faults(fast_store)
    faults.on("PutItem", failing(code, times=FAST_RETRIES.max_attempts - 1, status=500 if "Internal" in code else 400))
    fast_store.put_document("analysis", "c1", T0, {"summary": "ok"})
    assert fast_store.latest_document("analysis", "c1") == (T0, {"summary": "ok"})
    assert faults.calls["PutItem"] == FAST_RETRIES.max_attempts


@pytest.mark.parametrize("code", THROTTLING_CODES)
def test_throttling_beyond_the_bound_is_unavailable_and_changes_nothing(fast_store: DynamoStore, code: str) -> None:
    faults = Faults(fast_store)
    faults.on("TransactWriteItems", failing(code))
    with pytest.raises(UnavailableError, match=code):
        fast_store.add_purchases(lines(3))
    assert faults.calls["TransactWriteItems"] == FAST_RETRIES.max_attempts
    assert fast_store.count_purchases() == 0


def test_an_unreachable_server_is_unavailable(local_dynamodb: LocalDynamoDB) -> None:
    url = "dynamodb://?region=us-east-1&endpoint=http://127.0.0.1:9&env=nowhere"  # discard port: refused
    store = DynamoStore.from_url(url, session=local_dynamodb.session, retry=FAST_RETRIES)
    with pytest.raises(UnavailableError, match="EndpointConnectionError"):
        store.get_customer("c1")
    store.close()


def test_non_retryable_errors_are_not_retried(fast_store: DynamoStore) -> None:
    faults = Faults(fast_store)
    faults.on("GetItem", failing("AccessDeniedException"))
    with pytest.raises(ClientError, match="AccessDenied"):
        fast_store.get_product("p1")
    assert faults.calls["GetItem"] == 1


# --- imports and reads -----------------------------------------------------------------------


def test_the_same_key_twice_in_one_import_keeps_the_last_and_undo_restores_the_first(fast_store: DynamoStore) -> None:
    fast_store.upsert_products([product("p1", price=1.0)])
    with fast_store.import_session() as session:  # separate calls: separate, concurrent chunks
        session.add_products([product("p1", price=2.0)])
        session.add_products([product("p1", price=3.0)])
        session.commit()
    assert fast_store.get_product("p1").price == 3.0

    with fast_store.import_session() as session:
        for price in (4.0, 5.0, 6.0):
            session.add_products([product("p1", price=price)])
        # left without commit: undone
    assert fast_store.get_product("p1").price == 3.0


def test_a_bad_row_in_an_import_names_its_position(fast_store: DynamoStore) -> None:
    rows = lines(3)
    rows[2] = replace(rows[2], quantity=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as raised:
        with fast_store.import_session() as session:
            session.add_purchases(rows)
    assert raised.value.field == "purchases[2].quantity"
    assert fast_store.count_purchases() == 0


def test_scan_purchases_can_be_abandoned_midway(fast_store: DynamoStore) -> None:
    fast_store.add_purchases(lines(2, "c1") + lines(2, "c2") + lines(2, "c3"))
    batches = fast_store.scan_purchases(batch_rows=1)
    assert next(batches).customer_ids == ["c1"]
    batches.close()  # read-ahead threads stop; the store stays usable
    assert fast_store.count_purchases() == 6


def test_an_import_session_works_only_inside_with(fast_store: DynamoStore) -> None:
    session = fast_store.import_session()
    with pytest.raises(FailedPreconditionError, match="with store.import_session"):
        session.add_products([product("p1")])
    assert fast_store.get_products(["p1"]) == {}
