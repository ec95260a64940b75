"""CustomerService end to end: real server, real SQLite store, generated stubs."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from e2e_support import NOW, bad_field, days_ago, purchase, rpc_error, ts
from google.protobuf import field_mask_pb2

from omnix_recs._proto.omnix.v1 import customer_pb2 as pb
from omnix_recs.domain.models import (
    CustomerChange,
    Feedback,
    FeedbackEvent,
    Product,
    RecommendedItem,
    ServedRecommendation,
)

Code = grpc.StatusCode


def register(customers, customer_id: str = "c1", **fields) -> pb.CustomerProfile:
    return customers.RegisterCustomer(pb.RegisterCustomerRequest(customer_id=customer_id, **fields))


def list_all(customers, customer_id: str, **kwargs) -> list:
    """Every page of ListPurchases, as (order_id, product_id) pairs."""
    pairs, token = [], ""
    while True:
        page = customers.ListPurchases(pb.ListPurchasesRequest(customer_id=customer_id, page_token=token, **kwargs))
        pairs += [(p.order_id, p.product_id) for p in page.purchases]
        token = page.next_page_token
        if not token:
            return pairs


# --- registration and profile -----------------------------------------------------------------


def test_register_then_duplicate_is_already_exists(customers):
    profile = register(customers, "c1", display_name="Ada")
    assert profile.customer_id == "c1" and profile.created_at.seconds > 0
    error = rpc_error(customers.RegisterCustomer, pb.RegisterCustomerRequest(customer_id="c1", display_name="Bob"))
    assert error.code() is Code.ALREADY_EXISTS and "c1" in error.details()
    assert customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id="c1")).display_name == "Ada"


def test_register_without_id_gets_one_assigned(customers):
    first, second = register(customers, ""), register(customers, "")
    assert len(first.customer_id) == 32 and first.customer_id != second.customer_id
    assert customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id=first.customer_id)) == first


@pytest.mark.parametrize("customer_id", ["", "x" * 129, "has space", "slash/es", "ünïcode"])
def test_bad_customer_ids_are_invalid_argument(customers, customer_id):
    error = rpc_error(customers.GetCustomerProfile, pb.GetCustomerProfileRequest(customer_id=customer_id))
    assert bad_field(error) == "customer_id"


@pytest.mark.parametrize("customer_id", ["x" * 129, "has space"])
def test_bad_id_at_registration_writes_nothing(server, customers, customer_id):
    error = rpc_error(customers.RegisterCustomer, pb.RegisterCustomerRequest(customer_id=customer_id))
    assert bad_field(error) == "customer_id"
    assert server.store.list_customer_ids(10).items == ()


def test_profile_round_trip(customers):
    sent = dict(
        display_name="Ada Lovelace",
        email="ada@example.org",
        age_band="35-44",
        household_size=3,
        postcode="SW1A 1AA",
        preferences=pb.Preferences(
            favorite_departments=["bakery", "produce"],
            favorite_brands=["Oatly"],
            disliked_products=["p9"],
            budget_per_trip=60.0,
            organic_preference=True,
        ),
        dietary_restrictions=["vegetarian"],
        allergens=["peanuts", "sesame"],
        consent=pb.Consent(personalization=True, marketing=True, analytics=False),
    )
    registered = register(customers, "c1", **sent)
    fetched = customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id="c1"))
    assert fetched == registered
    for name, value in sent.items():
        assert getattr(fetched, name) == value, name


def test_unknown_customer_profile_is_not_found(customers):
    assert rpc_error(customers.GetCustomerProfile, pb.GetCustomerProfileRequest(customer_id="ghost")).code() is (
        Code.NOT_FOUND
    )


# --- preferences and dietary restrictions -------------------------------------------------------


def update(customers, paths: list[str], **preferences) -> pb.CustomerProfile:
    return customers.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            customer_id="c1",
            preferences=pb.Preferences(**preferences),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
    )


def test_partial_preference_update_leaves_other_fields(customers):
    register(
        customers, preferences=pb.Preferences(favorite_brands=["Heinz"], budget_per_trip=50.0, organic_preference=True)
    )
    updated = update(customers, ["favorite_brands"], favorite_brands=["Oatly", "Alpro"], budget_per_trip=1.0)
    assert list(updated.preferences.favorite_brands) == ["Oatly", "Alpro"]
    assert updated.preferences.budget_per_trip == 50.0  # not in the mask: kept
    assert updated.preferences.organic_preference is True
    assert updated.updated_at.ToDatetime() >= updated.created_at.ToDatetime()

    cleared = update(customers, ["budget_per_trip"])  # named but unset: cleared
    assert not cleared.preferences.HasField("budget_per_trip")
    assert list(cleared.preferences.favorite_brands) == ["Oatly", "Alpro"]

    replaced = update(customers, [], favorite_departments=["frozen"])  # empty mask: whole replacement
    assert replaced.preferences == pb.Preferences(favorite_departments=["frozen"])


def test_preference_update_rejections_change_nothing(customers):
    before = register(customers, preferences=pb.Preferences(favorite_brands=["Heinz"]))
    assert bad_field(rpc_error(update, customers, ["favourite_brands"])) == "update_mask.paths[0]"
    error = rpc_error(update, customers, ["budget_per_trip"], budget_per_trip=-3.0)
    assert bad_field(error) == "preferences.budget_per_trip"
    assert customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id="c1")) == before


def test_preference_update_of_unknown_customer_is_not_found(customers):
    assert rpc_error(update, customers, ["favorite_brands"]).code() is Code.NOT_FOUND


def test_dietary_restrictions(customers):
    register(customers)
    profile = customers.SetDietaryRestrictions(
        pb.SetDietaryRestrictionsRequest(customer_id="c1", restrictions=["vegan", "gluten_free"], allergens=["soy"])
    )
    assert (list(profile.dietary_restrictions), list(profile.allergens)) == (["vegan", "gluten_free"], ["soy"])

    error = rpc_error(
        customers.SetDietaryRestrictions,
        pb.SetDietaryRestrictionsRequest(customer_id="c1", restrictions=["vegan", "keto"]),
    )
    assert bad_field(error) == "restrictions[1]" and "keto" in error.details()
    error = rpc_error(
        customers.SetDietaryRestrictions, pb.SetDietaryRestrictionsRequest(customer_id="c1", allergens=["pollen"])
    )
    assert bad_field(error) == "allergens[0]"
    unchanged = customers.GetCustomerProfile(pb.GetCustomerProfileRequest(customer_id="c1"))
    assert list(unchanged.dietary_restrictions) == ["vegan", "gluten_free"]


# --- purchases ----------------------------------------------------------------------------------


def test_purchases_are_listed_newest_first_in_pages(customers):
    register(customers)
    for day in range(5):  # o0 is the newest
        customers.RecordPurchase(
            pb.RecordPurchaseRequest(customer_id="c1", purchase=purchase(f"o{day}", at=days_ago(day + 1)))
        )
    first = customers.ListPurchases(pb.ListPurchasesRequest(customer_id="c1", page_size=2))
    assert [p.order_id for p in first.purchases] == ["o0", "o1"] and first.next_page_token
    assert list_all(customers, "c1", page_size=2) == [(f"o{d}", "p1") for d in range(5)]


def test_purchases_in_a_date_range(customers):
    register(customers)
    for day in (1, 3, 5, 7):
        customers.RecordPurchase(
            pb.RecordPurchaseRequest(customer_id="c1", purchase=purchase(f"o{day}", at=days_ago(day)))
        )
    in_range = list_all(customers, "c1", start_time=ts(days_ago(5)), end_time=ts(days_ago(1)))
    assert in_range == [("o3", "p1"), ("o5", "p1")]  # start inclusive, end exclusive
    assert list_all(customers, "c1", start_time=ts(days_ago(2))) == [("o1", "p1")]
    error = rpc_error(
        customers.ListPurchases,
        pb.ListPurchasesRequest(customer_id="c1", start_time=ts(days_ago(1)), end_time=ts(days_ago(2))),
    )
    assert bad_field(error) == "end_time"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [({"page_size": -1}, "page_size"), ({"page_size": 1001}, "page_size"), ({"page_token": "garbage!"}, "page_token")],
)
def test_list_purchases_rejections(customers, request_fields, field):
    error = rpc_error(customers.ListPurchases, pb.ListPurchasesRequest(customer_id="c1", **request_fields))
    assert bad_field(error) == field


def test_recorded_purchase_takes_catalog_price_when_unpriced(server, customers):
    server.store.upsert_products([Product("p1", "Milk", "dairy eggs", "milk", price=0.89)])
    register(customers)
    stored = customers.RecordPurchase(
        pb.RecordPurchaseRequest(customer_id="c1", purchase=purchase(product_id="p1", unit_price=0))
    ).purchase
    assert stored.unit_price == pytest.approx(0.89)
    assert customers.ListPurchases(pb.ListPurchasesRequest(customer_id="c1")).purchases[0] == stored


def test_recording_a_purchase_twice_changes_nothing(customers):
    register(customers)
    request = pb.RecordPurchaseRequest(customer_id="c1", purchase=purchase())
    customers.RecordPurchase(request)
    customers.RecordPurchase(request)
    assert list_all(customers, "c1") == [("o1", "p1")]


def without(field: str):
    line = purchase()
    line.ClearField(field)
    return line


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (purchase(quantity=-1), "purchase.quantity"),
        (purchase(quantity=0), "purchase.quantity"),
        (purchase(unit_price=-2.0), "purchase.unit_price"),
        (without("purchased_at"), "purchase.purchased_at"),
        (purchase(at=NOW + timedelta(days=3)), "purchase.purchased_at"),
        (without("order_id"), "purchase.order_id"),
        (purchase(product_id="p" * 129), "purchase.product_id"),
        (None, "purchase"),
    ],
)
def test_bad_purchase_is_rejected_and_nothing_written(server, customers, line, field):
    register(customers)
    error = rpc_error(customers.RecordPurchase, pb.RecordPurchaseRequest(customer_id="c1", purchase=line))
    assert bad_field(error) == field
    assert server.store.count_purchases() == 0


def test_purchase_of_unregistered_customer_is_not_found(server, customers):
    error = rpc_error(customers.RecordPurchase, pb.RecordPurchaseRequest(customer_id="ghost", purchase=purchase()))
    assert error.code() is Code.NOT_FOUND
    assert server.store.count_purchases() == 0


def test_basket_is_recorded_whole_or_not_at_all(server, customers):
    register(customers)
    good = [purchase("o1", f"p{i}") for i in range(3)]
    error = rpc_error(
        customers.RecordPurchases,
        pb.RecordPurchasesRequest(customer_id="c1", purchases=[*good[:2], purchase("o1", "p9", quantity=0), good[2]]),
    )
    assert bad_field(error) == "purchases[2].quantity"
    assert server.store.count_purchases() == 0
    stored = customers.RecordPurchases(pb.RecordPurchasesRequest(customer_id="c1", purchases=good)).purchases
    assert [p.product_id for p in stored] == ["p0", "p1", "p2"]
    assert server.store.count_purchases() == 3


def test_recording_notifies_activity_listeners_of_what_changed(server, customers):
    seen: list[tuple[str, CustomerChange]] = []
    server.app.subscribe_customer_activity(lambda customer_id, change: seen.append((customer_id, change)))
    register(customers)
    customers.RecordPurchase(pb.RecordPurchaseRequest(customer_id="c1", purchase=purchase()))
    for kind, quantity in (
        (pb.INTERACTION_KIND_VIEW, 0),
        (pb.INTERACTION_KIND_CART_ADD, 1),
        (pb.INTERACTION_KIND_CART_REMOVE, 1),
    ):
        interaction = pb.Interaction(kind=kind, product_id="p1", quantity=quantity)
        customers.RecordInteraction(pb.RecordInteractionRequest(customer_id="c1", interaction=interaction))
    assert seen == [
        ("c1", CustomerChange.DATA),
        ("c1", CustomerChange.BROWSING),
        ("c1", CustomerChange.CART),
        ("c1", CustomerChange.CART),
    ]


# --- interactions -------------------------------------------------------------------------------


def test_interactions_are_recorded(server, customers):
    register(customers)
    sent = [
        pb.Interaction(kind=pb.INTERACTION_KIND_VIEW, product_id="p1", occurred_at=ts(days_ago(3))),
        pb.Interaction(kind=pb.INTERACTION_KIND_CART_ADD, product_id="p1", quantity=2, occurred_at=ts(days_ago(2))),
        pb.Interaction(kind=pb.INTERACTION_KIND_CART_REMOVE, product_id="p1", quantity=1, occurred_at=ts(days_ago(1))),
        pb.Interaction(kind=pb.INTERACTION_KIND_SEARCH, query="oat milk"),
        pb.Interaction(kind=pb.INTERACTION_KIND_WISHLIST, product_id="p2"),
    ]
    recorded = [customers.RecordInteraction(pb.RecordInteractionRequest(customer_id="c1", interaction=i)) for i in sent]
    assert len({r.interaction_id for r in recorded}) == 5
    assert recorded[3].occurred_at.seconds > 0  # unset = now
    kinds = [i.kind.value for i in server.store.list_interactions("c1")]
    assert sorted(kinds) == sorted(["view", "cart_add", "cart_remove", "search", "wishlist"])


@pytest.mark.parametrize(
    ("interaction", "field"),
    [
        (pb.Interaction(product_id="p1"), "interaction.kind"),
        (pb.Interaction(kind=17, product_id="p1"), "interaction.kind"),
        (pb.Interaction(kind=pb.INTERACTION_KIND_VIEW), "interaction.product_id"),
        (pb.Interaction(kind=pb.INTERACTION_KIND_CART_ADD, product_id="p1", quantity=-1), "interaction.quantity"),
        (pb.Interaction(kind=pb.INTERACTION_KIND_SEARCH), "interaction.query"),
        (None, "interaction"),
    ],
)
def test_bad_interaction_is_rejected_and_nothing_written(server, customers, interaction, field):
    register(customers)
    error = rpc_error(
        customers.RecordInteraction, pb.RecordInteractionRequest(customer_id="c1", interaction=interaction)
    )
    assert bad_field(error) == field
    assert server.store.list_interactions("c1") == []


# --- bulk import --------------------------------------------------------------------------------


def rows(*lines: tuple[str, object]):
    return [pb.ImportPurchasesRow(customer_id=customer_id, purchase=line) for customer_id, line in lines]


def test_import_is_counted_and_idempotent(customers):
    register(customers, "c1")
    register(customers, "c2")
    batch = rows(
        ("c1", purchase("o1", "p1", at=days_ago(3))),
        ("c1", purchase("o1", "p2", at=days_ago(3))),
        ("c2", purchase("o2", "p1", at=days_ago(1))),
    )
    report = customers.ImportPurchases(iter(batch))
    assert (report.rows_received, report.customers, report.rows_written) == (3, 2, 3)
    customers.ImportPurchases(iter(batch))  # again: nothing changes
    assert list_all(customers, "c1") == [("o1", "p2"), ("o1", "p1")]
    assert list_all(customers, "c2") == [("o2", "p1")]


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        (("c1", purchase(quantity=-5)), "rows[2].purchase.quantity"),
        (("c1", without("purchased_at")), "rows[2].purchase.purchased_at"),
        (("", purchase()), "rows[2].customer_id"),
        (("ghost", purchase()), "rows[2].customer_id"),
        (("c1", None), "rows[2].purchase"),
    ],
)
def test_one_bad_row_imports_nothing(server, customers, bad_row, field):
    register(customers)
    batch = rows(("c1", purchase("o1")), ("c1", purchase("o2")), bad_row, ("c1", purchase("o4")))
    error = rpc_error(customers.ImportPurchases, iter(batch))
    assert bad_field(error) == field
    assert "nothing was imported" in error.details()
    assert server.store.count_purchases() == 0


def test_empty_import_is_invalid(customers):
    assert bad_field(rpc_error(customers.ImportPurchases, iter([]))) == "rows"


# --- export and erasure -------------------------------------------------------------------------


def fill_everything(server, customers) -> None:
    """One of each kind of data the service keeps about c1 (and a bystander, c2)."""
    register(customers, "c1", display_name="Ada", allergens=["milk"])
    register(customers, "c2")
    customers.RecordPurchases(
        pb.RecordPurchasesRequest(
            customer_id="c1", purchases=[purchase("o1", "p1", at=days_ago(9)), purchase("o2", "p2", at=days_ago(2))]
        )
    )
    customers.RecordPurchase(pb.RecordPurchaseRequest(customer_id="c2", purchase=purchase("o3")))
    customers.RecordInteraction(
        pb.RecordInteractionRequest(
            customer_id="c1", interaction=pb.Interaction(kind=pb.INTERACTION_KIND_SEARCH, query="bread")
        )
    )
    served = ServedRecommendation(
        "r1", "c1", days_ago(1), "balanced", "v1", (RecommendedItem("p3", 0.8, 0.6, ("trending in Dairy",)),)
    )
    server.store.save_recommendation(served)
    server.store.add_feedback(Feedback("r1", "c1", "p3", FeedbackEvent.CLICKED, days_ago(0.5)))
    server.store.put_document("consumption_predictions", "c1", days_ago(1), {"next_visit_in_days": 3.5})


def test_export_contains_everything(server, customers):
    fill_everything(server, customers)
    export = customers.ExportCustomerData(pb.ExportCustomerDataRequest(customer_id="c1"))
    assert export.format_version == 1 and export.exported_at.seconds > 0
    assert (export.profile.customer_id, export.profile.display_name, list(export.profile.allergens)) == (
        "c1",
        "Ada",
        ["milk"],
    )
    assert [(p.order_id, p.product_id) for p in export.purchases] == [("o2", "p2"), ("o1", "p1")]
    assert [(i.kind, i.query) for i in export.interactions] == [(pb.INTERACTION_KIND_SEARCH, "bread")]
    [served] = export.recommendations
    assert (served.recommendation_id, served.items[0].product_id, list(served.items[0].reasons)) == (
        "r1",
        "p3",
        ["trending in Dairy"],
    )
    assert [(f.recommendation_id, f.product_id, f.event) for f in export.feedback] == [("r1", "p3", "clicked")]
    [document] = export.documents
    assert (document.kind, document.body["next_visit_in_days"]) == ("consumption_predictions", 3.5)


def test_delete_leaves_nothing(server, customers):
    fill_everything(server, customers)
    erased = customers.DeleteCustomer(pb.DeleteCustomerRequest(customer_id="c1")).erased
    assert erased["profile"] == 1 and erased["purchases"] == 2 and erased["interactions"] == 1
    assert erased["recommendations"] == 1 and erased["feedback"] == 1 and erased["documents"] == 1

    assert (
        rpc_error(customers.ExportCustomerData, pb.ExportCustomerDataRequest(customer_id="c1")).code() is Code.NOT_FOUND
    )
    assert (
        rpc_error(customers.GetCustomerProfile, pb.GetCustomerProfileRequest(customer_id="c1")).code() is Code.NOT_FOUND
    )
    # Like every other read: an erased customer is unknown, not a customer without purchases.
    assert rpc_error(customers.ListPurchases, pb.ListPurchasesRequest(customer_id="c1")).code() is Code.NOT_FOUND
    store = server.store
    assert store.purchases_of("c1") == [] and store.list_interactions("c1") == []
    assert store.list_recommendations("c1") == [] and store.list_feedback("r1") == []
    assert store.customer_documents("c1") == []
    assert rpc_error(customers.DeleteCustomer, pb.DeleteCustomerRequest(customer_id="c1")).code() is Code.NOT_FOUND
    # The bystander is untouched.
    assert list_all(customers, "c2") == [("o3", "p1")]


def test_erasure_notifies_activity_listeners(server, customers):
    register(customers)
    seen = threading.Event()
    server.app.subscribe_customer_activity(
        lambda customer_id, change: seen.set() if (customer_id, change) == ("c1", CustomerChange.DATA) else None
    )
    customers.DeleteCustomer(pb.DeleteCustomerRequest(customer_id="c1"))
    assert seen.is_set()
