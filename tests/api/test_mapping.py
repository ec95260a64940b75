from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs._proto.omnix.v1 import common_pb2, customer_pb2
from omnix_recs.api import mapping
from omnix_recs.api.validation import Validator
from omnix_recs.domain.models import (
    Consent,
    Customer,
    Feedback,
    FeedbackEvent,
    Interaction,
    InteractionKind,
    Preferences,
    Product,
    Purchase,
    RecommendedItem,
    ServedRecommendation,
)
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import Limits

V = Validator(Limits())
NOW = datetime(2026, 11, 25, 12, 30, 15, 250_000, tzinfo=UTC)


def ts(moment: datetime):
    return mapping.timestamp_to_proto(moment)


def field_of_error(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgumentError) as info:
        call(*args, **kwargs)
    return info.value.field


# --- round trips: domain → proto → domain is the identity ----------------------------------------


def test_purchase_round_trip():
    purchase = Purchase("c1", "o1", "p1", 3, 2.49, NOW - timedelta(days=2))
    msg = mapping.purchase_to_proto(purchase)
    assert mapping.purchase_from_proto(V, "purchase", "c1", msg, now=NOW) == purchase
    in_a_store = Purchase("c1", "o1", "p1", 3, 2.49, NOW - timedelta(days=2), store_id="store-7")
    msg = mapping.purchase_to_proto(in_a_store)
    assert msg.store_id == "store-7"
    assert mapping.purchase_from_proto(V, "purchase", "c1", msg, now=NOW) == in_a_store


def test_product_round_trip():
    product = Product(
        product_id="p1",
        name="Oat milk",
        department="dairy eggs",
        aisle="milk",
        brand="Oatly",
        price=1.99,
        pack_size="1 L",
        dietary_tags=("vegan", "lactose_free"),
        allergens=("gluten",),
        in_stock=True,
        updated_at=NOW,
    )
    msg = mapping.product_to_proto(product)
    assert msg.updated_at.ToDatetime(tzinfo=UTC) == NOW
    assert mapping.product_from_proto(V, "products[0]", msg, now=NOW) == product


def test_product_from_proto_ignores_callers_updated_at():
    msg = common_pb2.Product(
        product_id="p", name="n", department="d", aisle="a", updated_at=ts(NOW - timedelta(days=9))
    )
    assert mapping.product_from_proto(V, "", msg, now=NOW).updated_at == NOW


def test_customer_round_trip_through_registration():
    customer = Customer(
        customer_id="c1",
        created_at=NOW,
        updated_at=NOW,
        display_name="Ada",
        email="ada@example.org",
        age_band="35-44",
        household_size=4,
        postcode="SW1A 1AA",
        preferences=Preferences(("bakery",), ("Warburtons",), ("p9",), 80.0, True),
        dietary_restrictions=("vegetarian",),
        allergens=("peanuts",),
        consent=Consent(personalization=True, marketing=True, analytics=False),
    )
    profile = mapping.customer_to_proto(customer)
    request = customer_pb2.RegisterCustomerRequest(
        customer_id=profile.customer_id,
        display_name=profile.display_name,
        email=profile.email,
        age_band=profile.age_band,
        household_size=profile.household_size,
        postcode=profile.postcode,
        preferences=profile.preferences,
        dietary_restrictions=profile.dietary_restrictions,
        allergens=profile.allergens,
        consent=profile.consent,
    )
    assert mapping.customer_from_register(V, request, customer_id="c1", now=NOW) == customer


def test_registration_defaults():
    customer = mapping.customer_from_register(V, customer_pb2.RegisterCustomerRequest(), customer_id="c", now=NOW)
    assert customer.consent == Consent()  # personalization and analytics on, marketing off
    assert customer.preferences == Preferences()
    assert customer.preferences.budget_per_trip is None


def test_unset_budget_stays_unset():
    msg = mapping.preferences_to_proto(Preferences())
    assert not msg.HasField("budget_per_trip")
    assert mapping.preferences_from_proto(V, "preferences", msg).budget_per_trip is None


@pytest.mark.parametrize(
    "interaction",
    [
        Interaction("c1", "i1", InteractionKind.VIEW, NOW, product_id="p1"),
        Interaction("c1", "i2", InteractionKind.CART_ADD, NOW, product_id="p1", quantity=2),
        Interaction("c1", "i3", InteractionKind.CART_REMOVE, NOW, product_id="p1", quantity=1),
        Interaction("c1", "i4", InteractionKind.SEARCH, NOW, query="gluten free bread"),
        Interaction("c1", "i5", InteractionKind.WISHLIST, NOW, product_id="p2"),
    ],
)
def test_interaction_round_trip(interaction):
    msg = mapping.interaction_to_proto(interaction)
    parsed = mapping.interaction_from_proto(
        V, "interaction", "c1", msg, interaction_id=interaction.interaction_id, now=NOW
    )
    assert parsed == interaction


def test_interaction_without_time_happens_now():
    msg = customer_pb2.Interaction(kind=customer_pb2.INTERACTION_KIND_VIEW, product_id="p1")
    assert mapping.interaction_from_proto(V, "interaction", "c", msg, interaction_id="i", now=NOW).occurred_at == NOW


def test_export_pieces():
    served = ServedRecommendation(
        "r1", "c1", NOW, "balanced", "v1", (RecommendedItem("p1", 0.9, 0.7, ("often bought with Pasta",)),)
    )
    msg = mapping.recommendation_to_proto(served)
    assert (msg.recommendation_id, msg.items[0].reasons[0], msg.items[0].score) == (
        "r1",
        "often bought with Pasta",
        0.9,
    )
    feedback = mapping.feedback_to_proto(Feedback("r1", "c1", "p1", FeedbackEvent.CLICKED, NOW))
    assert feedback.event == "clicked"
    document = mapping.document_to_proto("predictions", NOW, {"items": [{"product_id": "p1", "days": 3}], "ok": True})
    assert document.body["items"][0]["days"] == 3 and document.body["ok"] is True


# --- rejections name the field ------------------------------------------------------------------


def valid_purchase(**changes) -> common_pb2.Purchase:
    msg = common_pb2.Purchase(order_id="o1", product_id="p1", quantity=1, unit_price=1.0, purchased_at=ts(NOW))
    for name, value in changes.items():
        if value is None:
            msg.ClearField(name)
        else:
            setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_id": ""}, "rows[3].purchase.order_id"),
        ({"product_id": "x" * 129}, "rows[3].purchase.product_id"),
        ({"product_id": "bad id"}, "rows[3].purchase.product_id"),
        ({"quantity": -2}, "rows[3].purchase.quantity"),
        ({"quantity": 0}, "rows[3].purchase.quantity"),
        ({"quantity": 10_001}, "rows[3].purchase.quantity"),
        ({"unit_price": -0.5}, "rows[3].purchase.unit_price"),
        ({"unit_price": float("nan")}, "rows[3].purchase.unit_price"),
        ({"purchased_at": None}, "rows[3].purchase.purchased_at"),
        ({"store_id": "store 7"}, "rows[3].purchase.store_id"),
    ],
)
def test_purchase_rejections(changes, field):
    msg = valid_purchase(**changes)
    assert field_of_error(mapping.purchase_from_proto, V, "rows[3].purchase", "c1", msg, now=NOW) == field


def test_purchase_far_in_the_future_rejected():
    msg = valid_purchase()
    msg.purchased_at.CopyFrom(ts(NOW + timedelta(days=2)))
    assert field_of_error(mapping.purchase_from_proto, V, "purchase", "c1", msg, now=NOW) == "purchase.purchased_at"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "products[1].name"),
        ({"department": " "}, "products[1].department"),
        ({"aisle": "a" * 101}, "products[1].aisle"),
        ({"price": -1.0}, "products[1].price"),
        ({"pack_size": "x" * 51}, "products[1].pack_size"),
    ],
)
def test_product_rejections(changes, field):
    msg = common_pb2.Product(**{"product_id": "p", "name": "n", "department": "d", "aisle": "a", **changes})
    assert field_of_error(mapping.product_from_proto, V, "products[1]", msg, now=NOW) == field


@pytest.mark.parametrize(
    ("tags", "allergens", "field"),
    [(["vegan", "paleo"], [], "products[0].dietary_tags[1]"), ([], ["nuts"], "products[0].allergens[0]")],
)
def test_product_vocabulary(tags, allergens, field):
    msg = common_pb2.Product(
        product_id="p", name="n", department="d", aisle="a", dietary_tags=tags, allergens=allergens
    )
    assert field_of_error(mapping.product_from_proto, V, "products[0]", msg, now=NOW) == field


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"age_band": "old"}, "age_band"),
        ({"age_band": "44-35"}, "age_band"),
        ({"household_size": 21}, "household_size"),
        ({"household_size": -1}, "household_size"),
        ({"postcode": "SW1A;1AA"}, "postcode"),
        ({"dietary_restrictions": ["keto"]}, "dietary_restrictions[0]"),
        ({"allergens": ["milk", "dust"]}, "allergens[1]"),
        ({"preferences": customer_pb2.Preferences(budget_per_trip=-5)}, "preferences.budget_per_trip"),
        ({"preferences": customer_pb2.Preferences(favorite_brands=["ok", ""])}, "preferences.favorite_brands[1]"),
        ({"preferences": customer_pb2.Preferences(disliked_products=["p 1"])}, "preferences.disliked_products[0]"),
    ],
)
def test_registration_rejections(request_fields, field):
    request = customer_pb2.RegisterCustomerRequest(**request_fields)
    assert field_of_error(mapping.customer_from_register, V, request, customer_id="c", now=NOW) == field


@pytest.mark.parametrize("age_band", ["", "18-24", "65+"])
def test_age_bands_accepted(age_band):
    request = customer_pb2.RegisterCustomerRequest(age_band=age_band)
    assert mapping.customer_from_register(V, request, customer_id="c", now=NOW).age_band == age_band


K = customer_pb2


@pytest.mark.parametrize(
    ("interaction", "field"),
    [
        (K.Interaction(product_id="p"), "interaction.kind"),
        (K.Interaction(kind=42, product_id="p"), "interaction.kind"),
        (K.Interaction(kind=K.INTERACTION_KIND_VIEW), "interaction.product_id"),
        (K.Interaction(kind=K.INTERACTION_KIND_VIEW, product_id="p", query="q"), "interaction.query"),
        (K.Interaction(kind=K.INTERACTION_KIND_VIEW, product_id="p", quantity=1), "interaction.quantity"),
        (K.Interaction(kind=K.INTERACTION_KIND_CART_ADD, product_id="p"), "interaction.quantity"),
        (K.Interaction(kind=K.INTERACTION_KIND_CART_REMOVE, product_id="p", quantity=-1), "interaction.quantity"),
        (K.Interaction(kind=K.INTERACTION_KIND_SEARCH), "interaction.query"),
        (K.Interaction(kind=K.INTERACTION_KIND_SEARCH, query="milk", product_id="p"), "interaction.product_id"),
        (
            K.Interaction(kind=K.INTERACTION_KIND_WISHLIST, product_id="p", occurred_at=ts(NOW + timedelta(days=3))),
            "interaction.occurred_at",
        ),
    ],
)
def test_interaction_rejections(interaction, field):
    assert (
        field_of_error(mapping.interaction_from_proto, V, "interaction", "c", interaction, interaction_id="i", now=NOW)
        == field
    )
