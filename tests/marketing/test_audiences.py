"""The audience rules, send times, holdout draws and the message writer, without a server."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from omnix_recs.domain.models import Interaction, InteractionKind
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.marketing import audiences
from omnix_recs.marketing.campaigns import in_holdout, send_time
from omnix_recs.marketing.export import write_messages
from omnix_recs.marketing.messages import write_message
from omnix_recs.marketing.records import CampaignKind, CampaignMessage, MessageItem, QuietHours

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = 86_400.0


def trips(last_days_ago: float, gap_days: float, count: int) -> np.ndarray:
    return np.array([AS_OF.timestamp() - (last_days_ago + n * gap_days) * DAY for n in range(count)])


@pytest.mark.parametrize(
    ("last", "gap", "count", "after_cycles", "lapsed"),
    [
        (21, 7, 10, 2.5, True),  # a weekly shopper gone three weeks
        (21, 30, 6, 2.5, False),  # a monthly shopper gone three weeks
        (80, 30, 6, 2.5, True),  # ... gone nearly three months
        (16, 7, 10, 2.5, False),  # weekly, gone a little over two weeks
        (21, 7, 10, 4.0, False),  # a stricter rule
        (5, 1, 30, 2.5, False),  # a daily shopper on a five-day break: under the one-week floor
        (400, 7, 10, 2.5, False),  # gone over a year: not a win-back any more
        (21, 7, 2, 2.5, False),  # two trips: no rhythm to be late against
    ],
)
def test_lapsed_is_measured_against_the_customers_own_rhythm(last, gap, count, after_cycles, lapsed):
    rhythm = audiences.rhythm(trips(last, gap, count), AS_OF.timestamp())
    assert audiences.lapsed(rhythm, AS_OF.timestamp(), after_cycles) is lapsed


def test_rhythm_groups_lines_of_one_trip_and_ignores_the_future():
    times = np.concatenate([trips(10, 7, 4), trips(10, 7, 4) + 600, trips(-3, 7, 1)])
    rhythm = audiences.rhythm(times, AS_OF.timestamp())
    assert (rhythm.trips, rhythm.usual_gap_days, rhythm.trips_last_90_days) == (4, 7.0, 4)
    assert rhythm.days_away(AS_OF.timestamp()) == pytest.approx(10.0)


def cart(kind: InteractionKind, product_id: str, hours_ago: float) -> Interaction:
    return Interaction("c", f"{kind}-{product_id}-{hours_ago}", kind, AS_OF - timedelta(hours=hours_ago), product_id)


@pytest.mark.parametrize(
    ("events", "bought", "expected"),
    [
        ([cart(InteractionKind.CART_ADD, "tea", 6)], [], ["tea"]),
        ([cart(InteractionKind.CART_ADD, "tea", 2)], [], []),  # within the delay
        ([cart(InteractionKind.CART_ADD, "tea", 6), cart(InteractionKind.CART_REMOVE, "tea", 5)], [], []),
        ([cart(InteractionKind.CART_ADD, "tea", 6)], [("tea", 3)], []),  # bought after adding it
        ([cart(InteractionKind.CART_ADD, "tea", 6)], [("tea", 30)], ["tea"]),  # bought before, not since
        ([cart(InteractionKind.CART_ADD, "tea", 24 * 8)], [], []),  # older than the look-back
        (
            [cart(InteractionKind.CART_ADD, "tea", 30), cart(InteractionKind.CART_ADD, "jam", 6)],
            [],
            ["jam", "tea"],
        ),
    ],
)
def test_abandoned_cart(events, bought, expected):
    product_ids = [p for p, _ in bought]
    at = np.array([AS_OF.timestamp() - hours * 3600 for _, hours in bought])
    left = audiences.abandoned_cart(events, product_ids, at, AS_OF, timedelta(hours=4))
    assert [item.product_id for item in left] == expected


@pytest.mark.parametrize(
    ("requested", "quiet", "expected"),
    [
        (datetime(2026, 6, 1, 22, 30, tzinfo=UTC), QuietHours(21, 8), datetime(2026, 6, 2, 8, tzinfo=UTC)),
        (datetime(2026, 6, 1, 3, 0, tzinfo=UTC), QuietHours(21, 8), datetime(2026, 6, 1, 8, tzinfo=UTC)),
        (datetime(2026, 6, 1, 12, 5, tzinfo=UTC), QuietHours(21, 8), datetime(2026, 6, 1, 12, 5, tzinfo=UTC)),
        (datetime(2026, 6, 1, 13, 0, tzinfo=UTC), QuietHours(12, 14), datetime(2026, 6, 1, 14, tzinfo=UTC)),
        (datetime(2026, 6, 1, 23, 0, tzinfo=UTC), QuietHours(0, 0), datetime(2026, 6, 1, 23, tzinfo=UTC)),
    ],
)
def test_send_time_leaves_the_quiet_hours(requested, quiet, expected):
    assert send_time(requested, quiet) == expected


def test_holdout_draw_is_stable_and_near_its_share():
    ids = [f"c{i}" for i in range(5000)]
    share = sum(in_holdout("salt", c, 10) for c in ids) / len(ids)
    assert 0.08 < share < 0.12
    assert [in_holdout("salt", c, 10) for c in ids[:50]] == [in_holdout("salt", c, 10) for c in ids[:50]]
    assert not any(in_holdout("salt", c, 0) for c in ids)


ITEMS = (MessageItem("tea", "Green Tea", 3.5, ("you usually buy this every 7 days",)), MessageItem("jam", "Jam", 0.0))


@pytest.mark.parametrize("kind", list(CampaignKind))
def test_every_kind_writes_a_subject_and_a_body_from_its_items(kind):
    subject, body = write_message(kind, "Ada Lovelace", ITEMS, "10% off")
    assert subject.startswith("Ada, ") and len(subject) <= 120
    assert "Green Tea (3.50): you usually buy this every 7 days" in body and "- Jam" in body
    assert "Your offer: 10% off" in body and "Unsubscribe" in body
    anonymous, _ = write_message(kind, "", ITEMS, "")
    assert anonymous[0].isupper()


def test_export_writes_jsonl_and_csv():
    message = CampaignMessage("c1", "ada", "Hi", "Body,\nwith a comma", ITEMS, "", AS_OF)
    out = io.StringIO()
    assert write_messages([message, message], out, "jsonl") == 2
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["customer_id"] == "ada" and [i["product_id"] for i in first["items"]] == ["tea", "jam"]
    out = io.StringIO()
    write_messages([message], out, "csv")
    assert out.getvalue().startswith("campaign_id,customer_id,send_at") and '"Body,\nwith a comma"' in out.getvalue()
    with pytest.raises(InvalidArgumentError, match="format"):
        write_messages([message], io.StringIO(), "xml")
