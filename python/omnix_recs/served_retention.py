"""Retention of served lists: `OMNIX_SERVED_LIST_RETENTION_DAYS` (default 90; 0 = kept forever).

Every recorded GetRecommendations answer is a row of the recommendations table, so without
this the table grows for as long as the service runs. A store opened with the retention never
returns older lists (`Store.served_list_retention`); this module deletes them from SQLite:
`Store.prune_served_lists` in batches of `BATCH_ROWS`, each its own short transaction read
through the time index, with a pause after each batch at least as long as the batch took, so
the prune holds the write lock at most half the time and serving's own writes (recorded
purchases, the served lists' write-behind flush) wait at most one batch, never the whole
prune. DynamoDB needs none of it: TTL deletes its items (`prune_served_lists` returns 0 at
once).

The server runs it (`serve`, in the supervising process like the retraining schedule) at
start-up and then every `PRUNE_EVERY_S`; `omnix prune-served-lists` runs it once. Several
processes or hosts sharing a store take turns through a lease; a prune cut short (a crash, a
lapsed lease) leaves whole batches deleted and is finished by the next run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from omnix_recs.config import Settings
from omnix_recs.errors import OmnixError
from omnix_recs.leases import LEASE_TTL_S, new_holder
from omnix_recs.periodic import PeriodicJob
from omnix_recs.store.base import Store

log = logging.getLogger("omnix.retention")

PRUNE_LEASE = "admin:prune-served-lists"
PRUNE_EVERY_S = 3_600.0
# Lists per transaction: tens of milliseconds of write lock each (README "Served-list retention").
BATCH_ROWS = 500
# Between batches, at least: room for the writes serving makes meanwhile.
PAUSE_BETWEEN_BATCHES_S = 0.02


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    deleted: int
    batches: int
    seconds: float
    finished: bool  # False when it stopped early (asked to stop, or the lease was lost)


def prune_served_lists(
    store: Store,
    retention: timedelta,
    *,
    now: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    pause_s: float = PAUSE_BETWEEN_BATCHES_S,
    keep_going: Callable[[], bool] = lambda: True,
) -> PruneOutcome:
    """Delete every list served more than `retention` before `now`, batch by batch, while
    `keep_going()` (asked before each batch after the first) says so. After each batch it
    pauses `pause_s`, or as long as the batch took if longer."""
    before = (now or datetime.now(UTC)) - retention
    started = time.perf_counter()
    deleted = batches = 0
    while True:
        batch_started = time.perf_counter()
        n = store.prune_served_lists(before, batch_rows)
        batch_s = time.perf_counter() - batch_started
        deleted += n
        batches += 1
        if n < batch_rows:
            return PruneOutcome(deleted, batches, time.perf_counter() - started, True)
        if not keep_going():
            return PruneOutcome(deleted, batches, time.perf_counter() - started, False)
        time.sleep(max(pause_s, batch_s))


class ServedListPruning(PeriodicJob):
    """A daemon thread pruning at start and then every `every_s`, one process at a time."""

    def __init__(
        self,
        store: Store,
        retention: timedelta,
        *,
        every_s: float = PRUNE_EVERY_S,
        batch_rows: int = BATCH_ROWS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(store, interval_s=every_s, thread_name="omnix-served-list-pruning")
        self._retention = retention
        self._batch_rows = batch_rows
        self._clock = clock
        self.runs: list[PruneOutcome | None] = []  # None: skipped (another process held the lease, or an error)

    def start(self) -> None:
        log.info(
            "served lists are kept %d days; pruning older ones every %.0f s", self._retention.days, self._interval_s
        )
        super().start()

    def run_once(self) -> PruneOutcome | None:
        """Prune now unless another process holds the lease; never raises (the server goes on)."""
        holder = new_holder()
        ttl = timedelta(seconds=LEASE_TTL_S)
        outcome: PruneOutcome | None = None
        try:
            now = self._clock()
            if not self._store.acquire_lease(PRUNE_LEASE, holder, now, now + ttl):
                log.info("another process is pruning served lists; skipping this run")
            else:
                try:
                    outcome = prune_served_lists(
                        self._store,
                        self._retention,
                        now=now,
                        batch_rows=self._batch_rows,
                        # Renewed between batches; a lease another holder took stops this run.
                        keep_going=lambda: not self._stop.is_set() and self._renew(holder, ttl),
                    )
                finally:
                    self._store.release_lease(PRUNE_LEASE, holder)
        except OmnixError as err:  # the store is down or busy: the next run tries again
            log.warning("could not prune served lists: %s", err)
        except Exception:  # a bug must not stop the server: logged with its traceback
            log.exception("pruning served lists failed")
        if outcome is not None and outcome.deleted:
            log.info(
                "pruned %d served lists older than %d days in %d batches, %.1f s",
                outcome.deleted,
                self._retention.days,
                outcome.batches,
                outcome.seconds,
            )
        self.runs.append(outcome)
        return outcome

    def _renew(self, holder: str, ttl: timedelta) -> bool:
        now = self._clock()
        if self._store.acquire_lease(PRUNE_LEASE, holder, now, now + ttl):
            return True
        log.error("the served-list pruning lease lapsed and another process took it; stopping this run")
        return False


@contextlib.contextmanager
def scheduled(settings: Settings, *, every_s: float = PRUNE_EVERY_S) -> Iterator[ServedListPruning | None]:
    """Prune on schedule (over its own store connection) for the block; nothing when served
    lists are kept forever."""
    retention = settings.served_list_retention
    if retention is None:
        yield None
        return
    from omnix_recs.store import open_store

    pruning = ServedListPruning(
        open_store(settings.store_url, served_list_retention=retention), retention, every_s=every_s
    )
    pruning.start()
    try:
        yield pruning
    finally:
        pruning.close()
