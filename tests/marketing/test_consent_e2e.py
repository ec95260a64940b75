"""CustomerService.UpdateConsent and UpdateDemographics over real gRPC, and what consent changes
in the lists a shopper gets."""

from __future__ import annotations

import grpc
import pytest

from omnix_recs._proto.omnix.v1 import (
    customer_pb2,
    marketing_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from omnix_recs._proto.omnix.v1 import marketing_pb2 as mpb


def profile(customers, customer_id: str) -> customer_pb2.CustomerProfile:
    return customers.GetCustomerProfile(customer_pb2.GetCustomerProfileRequest(customer_id=customer_id))


def consent(customers, customer_id: str, **flags: bool) -> customer_pb2.CustomerProfile:
    return customers.UpdateConsent(
        customer_pb2.UpdateConsentRequest(customer_id=customer_id, consent=customer_pb2.Consent(**flags))
    )


def test_consent_is_replaced_whole_and_kept(customers):
    updated = consent(customers, "regular", personalization=False, marketing=False, analytics=True)
    assert (updated.consent.personalization, updated.consent.marketing, updated.consent.analytics) == (
        False,
        False,
        True,
    )
    assert profile(customers, "regular").consent == updated.consent
    assert updated.updated_at.ToDatetime() > updated.created_at.ToDatetime()


def test_withdrawing_personalisation_gives_lists_without_history_at_once(server, customers):
    """The list was cached under the old consent; the change reaches the very next request."""
    stub = server.stub(recommendation_pb2_grpc.RecommendationServiceStub)
    request = recommendation_pb2.GetRecommendationsRequest(
        customer_id="regular", limit=5, strategy=recommendation_pb2.STRATEGY_REPLENISH
    )
    before = [r for item in stub.GetRecommendations(request).items for r in item.reasons]
    assert any("you usually buy" in r or "last bought" in r for r in before)

    consent(customers, "regular", personalization=False, marketing=True, analytics=True)
    after = stub.GetRecommendations(request)
    reasons = [r for item in after.items for r in item.reasons]
    assert after.items and not any("you usually buy" in r or "last bought" in r or "your trips" in r for r in reasons)
    personal = stub.GetPersonalizedRecommendations(
        recommendation_pb2.GetPersonalizedRecommendationsRequest(customer_id="regular", limit=5)
    )
    assert not any("you usually buy" in r or "last bought" in r for item in personal.items for r in item.reasons)

    consent(customers, "regular", personalization=True, marketing=True, analytics=True)
    again = [r for item in stub.GetRecommendations(request).items for r in item.reasons]
    assert any("you usually buy" in r or "last bought" in r for r in again)


def test_granting_marketing_consent_brings_a_customer_into_campaigns(server, customers):
    marketing = server.stub(marketing_pb2_grpc.MarketingServiceStub)
    request = mpb.CreateCampaignRequest(
        name="win back",
        kind=mpb.CAMPAIGN_KIND_WIN_BACK,
        dry_run=True,
        holdout_percent=0,
        quiet_hours=mpb.QuietHours(),
    )
    assert [m.customer_id for m in marketing.CreateCampaign(request).preview] == ["weekly"]
    consent(customers, "quiet", personalization=True, marketing=True, analytics=True)
    assert [m.customer_id for m in marketing.CreateCampaign(request).preview] == ["quiet", "weekly"]


def test_demographics_change_only_the_named_fields(customers):
    updated = customers.UpdateDemographics(
        customer_pb2.UpdateDemographicsRequest(
            customer_id="weekly",
            age_band="35-44",
            household_size=3,
            postcode="AB1 2CD",
            display_name="ignored, not in the mask",
            update_mask={"paths": ["age_band", "household_size", "postcode"]},
        )
    )
    assert (updated.age_band, updated.household_size, updated.postcode) == ("35-44", 3, "AB1 2CD")
    assert updated.display_name == "Wendy Weekly"
    cleared = customers.UpdateDemographics(
        customer_pb2.UpdateDemographicsRequest(customer_id="weekly", update_mask={"paths": ["postcode"]})
    )
    assert cleared.postcode == "" and cleared.age_band == "35-44"


@pytest.mark.parametrize(
    ("call", "request_message", "code", "field"),
    [
        ("UpdateConsent", customer_pb2.UpdateConsentRequest(customer_id="weekly"), "INVALID_ARGUMENT", "consent"),
        (
            "UpdateConsent",
            customer_pb2.UpdateConsentRequest(customer_id="ghost", consent=customer_pb2.Consent()),
            "NOT_FOUND",
            "",
        ),
        (
            "UpdateConsent",
            customer_pb2.UpdateConsentRequest(customer_id="bad id", consent=customer_pb2.Consent()),
            "INVALID_ARGUMENT",
            "customer_id",
        ),
        (
            "UpdateDemographics",
            customer_pb2.UpdateDemographicsRequest(customer_id="weekly", age_band="old"),
            "INVALID_ARGUMENT",
            "update_mask",
        ),
        (
            "UpdateDemographics",
            customer_pb2.UpdateDemographicsRequest(
                customer_id="weekly", age_band="old", update_mask={"paths": ["age_band"]}
            ),
            "INVALID_ARGUMENT",
            "age_band",
        ),
        (
            "UpdateDemographics",
            customer_pb2.UpdateDemographicsRequest(customer_id="weekly", update_mask={"paths": ["consent"]}),
            "INVALID_ARGUMENT",
            "update_mask.paths[0]",
        ),
        (
            "UpdateDemographics",
            customer_pb2.UpdateDemographicsRequest(
                customer_id="weekly", email="not-an-email", update_mask={"paths": ["email"]}
            ),
            "INVALID_ARGUMENT",
            "email",
        ),
    ],
)
def test_bad_updates_name_the_field_and_change_nothing(customers, call, request_message, code, field):
    before = profile(customers, "weekly")
    with pytest.raises(grpc.RpcError) as error:
        getattr(customers, call)(request_message)
    assert error.value.code() == getattr(grpc.StatusCode, code)
    if field:
        assert error.value.details().startswith(f"{field}:")
    assert profile(customers, "weekly") == before
