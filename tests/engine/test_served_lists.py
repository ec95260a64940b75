"""The write-behind queue of served lists (engine/served_lists.py) over a real SQLite store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs.domain.models import RecommendedItem, ServedRecommendation
from omnix_recs.engine.served_lists import ServedListWriter
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
