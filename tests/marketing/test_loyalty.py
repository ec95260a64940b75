"""Loyalty points and tiers from purchases, on the profile over real gRPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from google.protobuf import timestamp_pb2

from omnix_recs._proto.omnix.v1 import common_pb2, customer_pb2
from omnix_recs.domain.purchases import OrderLines
from omnix_recs.marketing.loyalty import loyalty_status

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def lines(*spends: tuple[float, float]) -> OrderLines:
    """(amount, days ago) per line."""
    return OrderLines(
        order_ids=[f"o{i}" for i in range(len(spends))],
        product_ids=["p"] * len(spends),
        quantities=np.ones(len(spends), dtype=np.int64),
        unit_prices=np.array([amount for amount, _ in spends], dtype=np.float64),
        purchased_at_s=np.array([(AS_OF - timedelta(days=days)).timestamp() for _, days in spends]),
    )


@pytest.mark.parametrize(
    ("spends", "points", "tier", "next_tier", "to_next"),
    [
        ((), 0, "bronze", "silver", 250.0),
        (((99.99, 10), (100.5, 20)), 200, "bronze", "silver", 49.51),
        (((300.0, 10),), 300, "silver", "gold", 700.0),
        (((1200.0, 400), (300.0, 10)), 1500, "silver", "gold", 700.0),  # the tier counts the last year only
        (((2600.0, 30),), 2600, "platinum", "", 0.0),
        (((50.0, -1),), 0, "bronze", "silver", 250.0),  # bought after as_of: not yet
    ],
)
def test_points_are_for_life_and_the_tier_for_the_last_year(spends, points, tier, next_tier, to_next):
    status = loyalty_status(lines(*spends), AS_OF.timestamp())
    assert (status.points, status.tier, status.next_tier, status.spend_to_next_tier) == (
        points,
        tier,
        next_tier,
        to_next,
    )


def test_vip_by_trips_and_rewarded_by_tier():
    weekly = lines(*[(1.0, 6.5 * n) for n in range(14)])
    assert loyalty_status(weekly, AS_OF.timestamp()).vip
    big_spender = loyalty_status(lines((1500.0, 3)), AS_OF.timestamp())
    assert not big_spender.vip and big_spender.rewarded


def test_profile_shows_loyalty_and_a_purchase_counts_at_once(customers):
    before = customers.GetCustomerProfile(customer_pb2.GetCustomerProfileRequest(customer_id="vip")).loyalty
    assert before.vip and before.trips_last_90_days == 15 and before.tier == "bronze"
    at = timestamp_pb2.Timestamp()
    at.GetCurrentTime()
    customers.RecordPurchase(
        customer_pb2.RecordPurchaseRequest(
            customer_id="vip",
            purchase=common_pb2.Purchase(order_id="big", product_id="coffee", quantity=50, purchased_at=at),
        )
    )
    after = customers.GetCustomerProfile(customer_pb2.GetCustomerProfileRequest(customer_id="vip")).loyalty
    assert after.points == before.points + 300 and after.tier == "silver" and after.next_tier == "gold"
