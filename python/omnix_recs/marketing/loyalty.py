"""Loyalty: points and tier earned from purchases, and the VIP stage that loyalty campaigns target.

Derived from the order lines whenever asked, never stored, so a recorded purchase counts at
once and an erased customer leaves no balance behind. One point per whole unit of currency
spent, for life; the tier follows the spend of the last 365 days, so it can go down as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omnix_recs.domain.purchases import OrderLines
from omnix_recs.marketing import audiences

SECONDS_PER_DAY = 86_400.0
TIER_WINDOW_DAYS = 365.0
# (tier, spend over the last 365 days needed), lowest first.
TIERS: tuple[tuple[str, float], ...] = (("bronze", 0.0), ("silver", 250.0), ("gold", 1_000.0), ("platinum", 2_500.0))
REWARD_TIERS = frozenset({"gold", "platinum"})


@dataclass(frozen=True, slots=True)
class LoyaltyStatus:
    points: int
    tier: str
    spend_last_year: float
    next_tier: str  # "" at the top
    spend_to_next_tier: float
    trips_last_90_days: int
    vip: bool

    @property
    def rewarded(self) -> bool:
        """Selected by loyalty campaigns: a VIP by trips, or a top tier by spend."""
        return self.vip or self.tier in REWARD_TIERS


def loyalty_status(lines: OrderLines, as_of_s: float) -> LoyaltyStatus:
    """From the lines bought before `as_of_s` (later ones are ignored)."""
    before = lines.purchased_at_s < as_of_s
    spend = lines.quantities[before] * lines.unit_prices[before]
    recent = before & (lines.purchased_at_s >= as_of_s - TIER_WINDOW_DAYS * SECONDS_PER_DAY)
    spend_last_year = float(np.sum(lines.quantities[recent] * lines.unit_prices[recent]))
    tier_index = max(i for i, (_, needed) in enumerate(TIERS) if spend_last_year >= needed)
    next_tier, to_next = "", 0.0
    if tier_index + 1 < len(TIERS):
        next_tier, needed = TIERS[tier_index + 1]
        to_next = round(needed - spend_last_year, 2)
    rhythm = audiences.rhythm(lines.purchased_at_s, as_of_s)
    return LoyaltyStatus(
        points=int(math.floor(float(np.sum(spend)) + 1e-9)),
        tier=TIERS[tier_index][0],
        spend_last_year=round(spend_last_year, 2),
        next_tier=next_tier,
        spend_to_next_tier=to_next,
        trips_last_90_days=rhythm.trips_last_90_days,
        vip=audiences.vip(rhythm),
    )
