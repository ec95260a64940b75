"""The write-behind queue of served lists (engine/served_lists.py) over a real SQLite store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs.domain.models import RecommendedItem, ServedRecommendation
from omnix_recs.engine.served_lists import (
    KEEP_RANKED_ITEMS_S,
    LIST_REUSE_S,
    RANKED_ITEMS,
    RECOMMENDATIONS_CODEC,
    SERVED_LIST_TTL_S,
    RankedItems,
    Recommendations,
    ServedListWriter,
)
from omnix_recs.errors import NotFoundError

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def served(n: int) -> ServedRecommendation:
    return ServedRecommendation(
        f"r{n}",
        "alice",
        NOW + timedelta(seconds=n),
        "balanced",
        "v1",
        (RecommendedItem("milk", 0.9, 0.5, ("you usually buy this",)),),
    )


def test_a_queued_list_is_readable_before_it_is_written_and_flush_writes_it(store):
    writer = ServedListWriter(store)
    writer.save_recommendation(served(1))
    with pytest.raises(NotFoundError):
        store.get_recommendation("r1")
    assert writer.get_recommendation("r1") == served(1)
    writer.flush()
    assert store.get_recommendation("r1") == served(1) == writer.get_recommendation("r1")
    with pytest.raises(NotFoundError):
        writer.get_recommendation("r404")


@pytest.mark.parametrize(("max_pending", "saved", "kept", "dropped"), [(3, 2, [0, 1], 0), (3, 5, [2, 3, 4], 2)])
def test_a_full_queue_drops_the_oldest_and_counts_them(store, max_pending, saved, kept, dropped):
    writer = ServedListWriter(store, max_pending=max_pending, batch_size=2)
    for n in range(saved):
        writer.save_recommendation(served(n))
    writer.flush()
    assert writer.dropped == dropped
    assert [s.recommendation_id for s in store.list_recommendations("alice", limit=10)] == [
        f"r{n}" for n in reversed(kept)
    ]


def test_the_background_thread_writes_batches_and_close_writes_the_rest(store):
    writer = ServedListWriter(store, batch_size=2, flush_every_s=60.0)
    writer.start()
    try:
        writer.save_recommendation(served(1))
        writer.save_recommendation(served(2))  # a full batch: written without waiting for the interval
        deadline = time.monotonic() + 5.0
        while len(store.list_recommendations("alice")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(store.list_recommendations("alice")) == 2
        writer.save_recommendation(served(3))
    finally:
        writer.close()
    assert store.get_recommendation("r3") == served(3)


# --- how served lists travel through the cache ---------------------------------------------------

ITEMS = (
    RecommendedItem("milk", 0.9, 0.5, ("you usually buy this",)),
    RecommendedItem("oats", 0.4, 0.25, ()),
)


def listed(recommendation_id: str, ranking_id: str, items: tuple[RecommendedItem, ...] = ITEMS) -> Recommendations:
    return Recommendations(recommendation_id, "v7", "personalized:vip", items, "vip", ranking_id)


@pytest.fixture(autouse=True)
def no_kept_rankings():
    RANKED_ITEMS.clear()
    yield
    RANKED_ITEMS.clear()


def test_a_list_decodes_to_what_was_encoded():
    answer = listed("r2", "r1")
    assert RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(answer)) == answer
    RANKED_ITEMS.clear()  # decoded from the bytes alone, as by another process
    assert RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(answer)) == answer


def test_a_ranking_served_again_shares_its_items_and_their_encoding():
    first = RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(listed("r1", "r1")))
    again = RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(listed("r2", "r1", first.items)))
    assert again.items is first.items
    assert (again.recommendation_id, again.ranking_id) == ("r2", "r1")


def test_items_kept_under_a_ranking_id_never_stand_in_for_other_items():
    RECOMMENDATIONS_CODEC.encode(listed("r1", "r1"))
    other = (RecommendedItem("bread", 0.7, 0.4, ("new",)),)
    raw = RECOMMENDATIONS_CODEC.encode(listed("r9", "r1", other))  # not the kept tuple: encoded anew
    RANKED_ITEMS.clear()
    assert RECOMMENDATIONS_CODEC.decode(raw).items == other


def test_lists_without_a_ranking_id_share_nothing():
    other = (RecommendedItem("bread", 0.7, 0.4, ("new",)),)
    first = RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(listed("r1", "")))
    second = RECOMMENDATIONS_CODEC.decode(RECOMMENDATIONS_CODEC.encode(listed("r2", "", other)))
    assert (first.items, second.items) == (ITEMS, other)
    assert len(RANKED_ITEMS) == 0


@pytest.mark.parametrize(
    ("raw", "ranking_id"),
    [
        (b'["r1","v7","balanced","",[["milk",0.9,0.5,["you usually buy this"]],["oats",0.4,0.25,[]]],"r0"]', "r0"),
        (b'["r1","v7","balanced","",[["milk",0.9,0.5,["you usually buy this"]],["oats",0.4,0.25,[]]]]', "r1"),
    ],
    ids=["one array", "before ranking ids"],
)
def test_an_entry_in_an_earlier_format_still_decodes(raw, ranking_id):
    decoded = RECOMMENDATIONS_CODEC.decode(raw)
    assert decoded == Recommendations("r1", "v7", "balanced", ITEMS, "", ranking_id)


def test_kept_rankings_are_dropped_when_their_time_is_up_or_room_runs_out():
    now = [0.0]
    kept = RankedItems(keep_s=10.0, max_rankings=2, clock=lambda: now[0])
    kept.put("a", ITEMS, b"[]")
    now[0] = 5.0
    kept.put("b", ITEMS, b"[]")
    assert kept.get("a") == (ITEMS, b"[]")
    now[0] = 10.0
    assert kept.get("a") is None  # expired: never answered, dropped at the next put
    kept.put("c", ITEMS, b"[]")
    assert len(kept) == 2 and kept.get("b") is not None
    kept.put("d", ITEMS, b"[]")  # full: the oldest goes
    assert kept.get("b") is None and len(kept) == 2


def test_rankings_are_kept_as_long_as_they_may_be_served():
    assert KEEP_RANKED_ITEMS_S >= LIST_REUSE_S + SERVED_LIST_TTL_S
