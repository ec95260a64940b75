from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs._proto.omnix.v1 import customer_pb2
from omnix_recs.api import validation as check
from omnix_recs.api.validation import Validator
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import Limits

V = Validator(Limits(max_id_length=10, max_page_size=50, default_page_size=20, max_batch_items=3))


def error_of(call, *args, **kwargs) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("value", ["a", "C-17", "x.y:z@w_", "0123456789"])
def test_require_id_accepts(value):
    assert V.require_id("customer_id", value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is required"),
        ("01234567890", "at most 10 characters, got 11"),
        ("a b", "may only contain"),
        ("é", "may only contain"),
        ("a/b", "may only contain"),
    ],
)
def test_require_id_rejects_naming_the_field(value, message):
    error = error_of(V.require_id, "rows[2].customer_id", value)
    assert error.field == "rows[2].customer_id"
    assert message in error.message


def test_optional_id_allows_empty():
    assert V.optional_id("customer_id", "") == ""


@pytest.mark.parametrize(("value", "expected"), [(0, 20), (1, 1), (50, 50)])
def test_page_size(value, expected):
    assert V.page_size("page_size", value) == expected


@pytest.mark.parametrize("value", [-1, 51])
def test_page_size_out_of_range(value):
    assert error_of(V.page_size, "page_size", value).field == "page_size"


def test_page_token_too_long():
    assert error_of(V.page_token, "page_token", "x" * 2000).field == "page_token"


@pytest.mark.parametrize(("items", "message"), [([], "is required"), ([1, 2, 3, 4], "at most 3 entries, got 4")])
def test_batch(items, message):
    error = error_of(V.batch, "products", items)
    assert (error.field, message in error.message) == ("products", True)


def test_batch_explicit_maximum():
    V.batch("purchases", [1, 2, 3, 4, 5], maximum=5)


def test_id_list_dedupes_and_names_entry():
    assert V.id_list("disliked_products", ["a", "b", "a"], max_items=5) == ("a", "b")
    assert error_of(V.id_list, "disliked_products", ["a", "b c"], max_items=5).field == "disliked_products[1]"


@pytest.mark.parametrize(
    ("values", "expected_field"),
    [(["vegan", "keto"], "restrictions[1]"), (["vegan"] * 101, "restrictions")],
)
def test_vocabulary_rejects(values, expected_field):
    error = error_of(check.vocabulary, "restrictions", values, ("vegan", "halal"))
    assert error.field == expected_field


def test_vocabulary_dedupes_in_order():
    assert check.vocabulary("allergens", ["milk", "eggs", "milk"], ("eggs", "milk")) == ("milk", "eggs")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.01, 100.5])
def test_number_rejects(value):
    assert error_of(check.number, "unit_price", value, minimum=0.0, maximum=100.0).field == "unit_price"


@pytest.mark.parametrize(("value", "ok"), [(0, False), (1, True), (10_000, True), (10_001, False), (-3, False)])
def test_integer(value, ok):
    if ok:
        assert check.integer("quantity", value, minimum=1, maximum=10_000) == value
    else:
        assert error_of(check.integer, "quantity", value, minimum=1, maximum=10_000).field == "quantity"


def test_text_strips_and_limits():
    assert check.text("name", "  Milk ", max_length=4) == "Milk"
    assert error_of(check.text, "name", "   ", max_length=4, required=True).message == "is required"
    assert error_of(check.text, "name", "Oat milk", max_length=4).field == "name"


@pytest.mark.parametrize(("value", "message"), [(0, "is required"), (99, "unknown value 99")])
def test_enum_value_rejects(value, message):
    error = error_of(check.enum_value, "interaction.kind", value, customer_pb2.InteractionKind)
    assert error.field == "interaction.kind"
    assert message in error.message
    assert "INTERACTION_KIND_VIEW" in error.message


def test_enum_value_accepts_defined():
    assert check.enum_value("kind", customer_pb2.INTERACTION_KIND_SEARCH, customer_pb2.InteractionKind) == 4


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def interaction_at(seconds: int | None, nanos: int = 0) -> customer_pb2.Interaction:
    msg = customer_pb2.Interaction()
    if seconds is not None:
        msg.occurred_at.seconds = seconds
        msg.occurred_at.nanos = nanos
    return msg


def test_timestamp_round_trip():
    moment = check.timestamp("occurred_at", interaction_at(int(NOW.timestamp())), "occurred_at", required=True)
    assert moment == NOW and moment.tzinfo is UTC


def test_timestamp_unset():
    assert check.timestamp("occurred_at", interaction_at(None), "occurred_at", required=False) is None
    assert error_of(check.timestamp, "x.occurred_at", interaction_at(None), "occurred_at", required=True).field == (
        "x.occurred_at"
    )


@pytest.mark.parametrize(("seconds", "nanos"), [(-1, 0), (253_402_300_800, 0), (10, 1_000_000_000), (10, -1)])
def test_timestamp_out_of_range(seconds, nanos):
    error = error_of(check.timestamp, "occurred_at", interaction_at(seconds, nanos), "occurred_at", required=True)
    assert error.field == "occurred_at"


def test_timestamp_not_after():
    later = int((NOW + timedelta(hours=1)).timestamp())
    error = error_of(check.timestamp, "occurred_at", interaction_at(later), "occurred_at", required=True, not_after=NOW)
    assert "must not be after" in error.message


def test_time_range():
    check.time_range("start_time", NOW, "end_time", NOW + timedelta(seconds=1))
    check.time_range("start_time", None, "end_time", NOW)
    assert error_of(check.time_range, "start_time", NOW, "end_time", NOW).field == "end_time"
