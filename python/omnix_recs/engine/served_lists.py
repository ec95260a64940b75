"""Served lists: the answer as served, how it travels through the cache, how it is stored.

Every answer is kept twice. In the cache, briefly, so an identical request (a refresh, a
retry) gets the same list and id back for nothing (and, for a while longer, the same ranking
under a new id: `LIST_REUSE_S`). In the store, so feedback can refer to it:
`ServedListWriter` writes behind the answer, in batches from a background thread, because one
write transaction per call would be the store's largest cost under load. Reads look in its queue
before the store, so feedback on a list served a moment ago works.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from omnix_recs.domain.models import RecommendedItem, ServedRecommendation
from omnix_recs.store.base import Store
from omnix_recs.store.cache import Codec

log = logging.getLogger(__name__)

# Lists waiting to be written, at most. At 2,000 lists/s that is 5 s of serving: enough to
# ride out a slow store, small enough (a few MB) to lose little if the process dies.
MAX_PENDING = 10_000
BATCH_SIZE = 500
FLUSH_EVERY_S = 0.5

# An identical GetRecommendations request (same shopper, nothing changed since) within this
# many seconds gets the same list back, id included: refreshes and retries cost nothing.
SERVED_LIST_TTL_S = 5.0
# Later, and up to this many seconds after it was ranked, an identical request gets the same
# items under a new id (a new served list): ranking is most of a call's cost, and nothing it
# reads has changed (a purchase or cart event, the catalog and the model each start a new list).
# As long as the cache keeps what a ranking reads (the shopper's snapshot and cart, for the
# cache's TTL, 300 s by default, and never longer): ranking again sooner would read the same
# cached inputs and differ only by the clock, which moves the time-decayed scores by a 288th of
# a day in five minutes. Each worker ranks each of its shoppers once per window, so a shorter
# one costs CPU at every rate (README, Throughput, eighth round); `Recommender.recommend` applies both.
LIST_REUSE_S = 300.0
# Each ranking is reused for its own share of that, between 75% and all of it (from the cache
# key: `Cache.fetch`'s `expiry_spread`), so the rankings made together (every shopper's, in the
# minutes after a start) are not all made again together, on the calls' way, a window later.
LIST_REUSE_SPREAD = 0.25


@dataclass(frozen=True, slots=True)
class Recommendations:
    """One answer of the recommender, as served."""

    recommendation_id: str
    model_version: str
    strategy: str
    items: tuple[RecommendedItem, ...]
    lifecycle: str = ""
    # The id the ranking was first served under, kept by every later serving of it
    # (`LIST_REUSE_S`): what derives from the items alone can be kept per ranking.
    ranking_id: str = ""


def new_recommendation_id() -> str:
    """32 hex digits: the time in nanoseconds, then 64 random bits (unique like a UUID4's 122).

    Time first, like a UUIDv7, so ids sort by when the list was served and each new stored list
    lands at the end of the store's id index instead of on a random page of it, which is
    cheaper to write."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


class RankedItems:
    """The items of the rankings served lately, by ranking id, with their encoded form.

    A ranking is served again and again for `LIST_REUSE_S`, each time read
    from the cache as bytes: without this, every read decodes the same ten items into new objects
    and every re-serving encodes them again, the largest part of a call answered from the cache.
    A ranking's items never change (its id is new with every ranking), so they are shared. Kept
    for `keep_s`, as long as a ranking may be served (so an erased shopper's lists leave memory
    within `keep_s` of any traffic), and at most `max_rankings`: the objects held (some twenty per
    ranking) lengthen the garbage collector's rare full collections a little (README, Throughput).
    Thread-safe: lists are decoded on the event loop and in worker threads."""

    def __init__(self, *, keep_s: float, max_rankings: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_s = keep_s
        self.max_rankings = max_rankings
        self._clock = clock
        # ranking id → (items, their JSON, when to drop them), oldest first
        self._kept: dict[str, tuple[tuple[RecommendedItem, ...], bytes, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, ranking_id: str) -> tuple[tuple[RecommendedItem, ...], bytes] | None:
        with self._lock:
            kept = self._kept.get(ranking_id)
        if kept is None or kept[2] <= self._clock():
            return None
        return kept[0], kept[1]

    def put(self, ranking_id: str, items: tuple[RecommendedItem, ...], encoded: bytes) -> None:
        now = self._clock()
        with self._lock:
            self._kept.pop(ranking_id, None)  # re-inserted at the end, with its new lifetime
            self._kept[ranking_id] = (items, encoded, now + self.keep_s)
            while self._kept:
                oldest = next(iter(self._kept))
                if self._kept[oldest][2] > now and len(self._kept) <= self.max_rankings:
                    break
                del self._kept[oldest]

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


# As long as a ranking may be served, and a little longer.
KEEP_RANKED_ITEMS_S = LIST_REUSE_S + SERVED_LIST_TTL_S + 5.0
# Rankings whose items are kept (about 5 KB each with ten items): every shopper of a session of
# 10,000, each of whom has one ranking at a time. More shoppers within `KEEP_RANKED_ITEMS_S`
# push the oldest out, and a re-serving of theirs decodes its items again (some 50 us).
MAX_RANKED_ITEMS = 12_000
RANKED_ITEMS = RankedItems(keep_s=KEEP_RANKED_ITEMS_S, max_rankings=MAX_RANKED_ITEMS)


def _encode_recommendations(answer: Recommendations) -> bytes:
    """A header (ids, version, strategy, lifecycle) and the items, on two lines: a read decodes
    the header, and the items only when it has not decoded that ranking's lately."""
    header = [answer.recommendation_id, answer.model_version, answer.strategy, answer.lifecycle, answer.ranking_id]
    kept = RANKED_ITEMS.get(answer.ranking_id) if answer.ranking_id else None
    if kept is not None and kept[0] is answer.items:
        encoded = kept[1]
    else:
        encoded = orjson.dumps([[i.product_id, i.score, i.confidence, i.reasons] for i in answer.items])
        if answer.ranking_id:
            RANKED_ITEMS.put(answer.ranking_id, answer.items, encoded)
    # orjson writes no newline outside strings, and escapes those inside them.
    return b"%b\n%b" % (orjson.dumps(header), encoded)


def _decode_items(encoded: bytes) -> tuple[RecommendedItem, ...]:
    return tuple(
        RecommendedItem(p, score, confidence, tuple(reasons)) for p, score, confidence, reasons in orjson.loads(encoded)
    )


def _decode_recommendations(raw: bytes) -> Recommendations:
    header, newline, encoded = raw.partition(b"\n")
    if not newline:  # one JSON array: written by an earlier version
        return _decode_one_array(raw)
    recommendation_id, model_version, strategy, lifecycle, ranking_id = orjson.loads(header)
    kept = RANKED_ITEMS.get(ranking_id) if ranking_id else None  # no ranking id: a list of its own
    if kept is not None:
        items = kept[0]
    else:
        items = _decode_items(encoded)
        if ranking_id:
            RANKED_ITEMS.put(ranking_id, items, encoded)
    return Recommendations(recommendation_id, model_version, strategy, items, lifecycle, ranking_id)


def _decode_one_array(raw: bytes) -> Recommendations:
    recommendation_id, model_version, strategy, lifecycle, items, *ranking = orjson.loads(raw)
    return Recommendations(
        recommendation_id,
        model_version,
        strategy,
        tuple(RecommendedItem(p, score, confidence, tuple(reasons)) for p, score, confidence, reasons in items),
        lifecycle,
        ranking[0] if ranking else recommendation_id,  # an entry written before rankings had ids
    )


# Encoded in-process too: a list is some sixty objects (its items are shared: `RankedItems`).
RECOMMENDATIONS_CODEC: Codec[Recommendations] = Codec(
    _encode_recommendations, _decode_recommendations, encoded_in_process=True
)


class ServedLists(Protocol):
    """Where the `Recommender` keeps served lists: a `Store`, or a `ServedListWriter` before one."""

    def save_recommendation(self, served: ServedRecommendation) -> None: ...
    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation: ...


class ServedListWriter:
    """A bounded queue of served lists before the store: a background thread writes what has
    gathered as one `Store.save_recommendations` batch every `flush_every_s`, or sooner when
    `batch_size` lists wait; `close()` (graceful shutdown) writes what is left. It offers the
    store's own two served-list methods, so the `Recommender` takes either."""

    def __init__(
        self,
        store: Store,
        *,
        max_pending: int = MAX_PENDING,
        batch_size: int = BATCH_SIZE,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self._store = store
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._flush_every_s = flush_every_s
        self._pending: OrderedDict[str, ServedRecommendation] = OrderedDict()  # oldest first
        self._writing: dict[str, ServedRecommendation] = {}  # the batch being written now
        self._lock = threading.Lock()
        self._batch_ready = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one batch at a time, in order
        self._closed = False
        self._stop = threading.Event()  # set by `close()`; also ends the pause after a failure
        self._writer: threading.Thread | None = None
        self.dropped = 0  # lists never written because the queue was full
        self.queued = 0  # lists ever queued (for the metrics)

    def save_recommendation(self, served: ServedRecommendation) -> None:
        """Queue a served list for writing; never waits for the store."""
        with self._lock:
            if len(self._pending) >= self._max_pending:
                # Served-list storage is for feedback and analytics, not for the correctness
                # of an answer: when the store falls behind, lose the oldest list rather than
                # make shoppers wait.
                self._pending.popitem(last=False)
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("served-list queue full (%d): dropped %d lists so far", self._max_pending, self.dropped)
            self._pending[served.recommendation_id] = served
            self.queued += 1
            if len(self._pending) >= self._batch_size:
                self._batch_ready.notify()

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        with self._lock:
            served = self._pending.get(recommendation_id) or self._writing.get(recommendation_id)
        return served or self._store.get_recommendation(recommendation_id)

    def flush(self) -> None:
        """Write every queued list now (on the calling thread)."""
        while self._write_batch():
            pass

    def start(self) -> None:
        """Write batches on a background thread until `close()`."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_until_closed, name="omnix-served-lists", daemon=True)
            self._writer.start()

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        with self._lock:
            self._closed = True
            self._stop.set()
            self._batch_ready.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        try:
            self.flush()
        except Exception:
            log.error("could not write %d served lists at shutdown; they are lost", len(self._pending), exc_info=True)

    def _write_until_closed(self) -> None:
        while True:
            with self._lock:
                if not self._closed and len(self._pending) < self._batch_size:
                    self._batch_ready.wait(self._flush_every_s)
                if self._closed:
                    return  # `close()` writes the rest
            try:
                self.flush()
            except Exception:  # the store is unavailable: the lists stay queued; pause, then retry
                log.warning("writing served lists failed; %d queued, will retry", len(self._pending), exc_info=True)
                self._stop.wait(self._flush_every_s)

    def _write_batch(self) -> bool:
        """Write the oldest queued lists (one batch); False when nothing was queued."""
        with self._write_lock:
            with self._lock:
                ids = list(self._pending)[: self._batch_size]
                self._writing = {i: self._pending.pop(i) for i in ids}
            if not self._writing:
                return False
            try:
                self._store.save_recommendations(list(self._writing.values()))
            except BaseException:
                self._requeue(list(self._writing.values()))
                raise
            finally:
                with self._lock:
                    self._writing = {}
            return True

    def _requeue(self, batch: Sequence[ServedRecommendation]) -> None:
        """Put a batch that failed back in front of the queue (it is the oldest)."""
        with self._lock:
            queued = [*batch, *self._pending.values()]
            self.dropped += max(0, len(queued) - self._max_pending)
            self._pending = OrderedDict((s.recommendation_id, s) for s in queued[-self._max_pending :])
