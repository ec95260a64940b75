"""Campaigns keep everything in the store's documents: the same run on SQLite and DynamoDB.

An abandoned-cart campaign needs no model, so it runs the whole cycle (build, store, page,
events, performance, erasure) against each store directly.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from marketing_shop import NOW, seed

from omnix_recs.customers import CustomerService
from omnix_recs.domain.models import Purchase
from omnix_recs.engine.recommender import NoActiveModel, Recommender
from omnix_recs.marketing.campaigns import CampaignService, DiscardServedLists
from omnix_recs.marketing.performance import CampaignEvents
from omnix_recs.marketing.records import CampaignEvent, CampaignKind, CampaignSpec, QuietHours
from omnix_recs.store.base import Store
from omnix_recs.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from moto_server import local_dynamodb  # noqa: E402, F401  (a session fixture)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened: Store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'omnix.db'}")
    else:
        opened = request.getfixturevalue("local_dynamodb").open_store()
    try:
        seed(opened)
        yield opened
    finally:
        opened.close()


def test_a_campaign_lives_in_documents_on_every_store(store):
    recommender = Recommender(store, NoActiveModel(), served_lists=DiscardServedLists())
    campaigns = CampaignService(store, recommender, population=lambda: pytest.fail("not needed"))
    spec = CampaignSpec(
        name="cart", kind=CampaignKind.ABANDONED_CART, as_of=NOW, holdout_percent=0, quiet_hours=QuietHours(0, 0)
    )
    campaign = campaigns.create(spec)
    assert campaigns.get(campaign.campaign_id).audience_size == campaign.audience_size == 1
    (message,) = campaigns.messages(campaign.campaign_id, 10).items
    assert message.customer_id == "carter" and [i.product_id for i in message.items] == ["coffee"]

    customers = CustomerService(store, publish=lambda *_: None)
    events = CampaignEvents(store, campaigns, customers)
    events.record(campaign.campaign_id, "carter", CampaignEvent.CLICK, "coffee", NOW + timedelta(minutes=1))
    customers.record_purchases("carter", [Purchase("carter", "o-back", "coffee", 1, 0.0, NOW + timedelta(hours=1))])
    performance = events.performance(campaign.campaign_id)
    assert (performance.sent, performance.opened, performance.clicked) == (1, 1, 1)
    assert performance.recipients.converted == 1 and performance.recipients.revenue == 6.0

    # A second campaign within the week is capped at one message per customer.
    capped = campaigns.create(dataclasses.replace(spec, max_messages_per_week=1))
    assert capped.capped == 1 and capped.audience_size == 0

    customers.erase("carter")
    assert campaigns.all_messages(campaign.campaign_id) == []
