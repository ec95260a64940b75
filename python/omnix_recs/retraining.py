"""Retraining on a schedule: `omnix serve --retrain-every 24h`.

The schedule is kept by the store, not by a clock in one process: a build starts when the
newest stored version (active or refused) is older than the interval. So a server restart does
not retrain at once, several hosts sharing a store retrain about once per interval between them,
and a refused build waits a whole interval before the next try instead of retrying in a loop.
One process per host runs the schedule (the supervising parent under `--workers N`, the
serving process otherwise); the serving processes follow an activation as they follow any
(engine/registry.py). Each build goes through the training pipeline's quality gate: a build
that fails or validates worse leaves the active version serving, and is logged as an error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from omnix_recs.config import Settings
from omnix_recs.errors import OmnixError
from omnix_recs.periodic import PeriodicJob
from omnix_recs.store.base import ModelRecord, Store

log = logging.getLogger("omnix.retraining")

MAX_CHECK_EVERY_S = 60.0
# After a build that failed outright (nothing saved), wait this long (at most the interval).
RETRY_FAILED_AFTER = timedelta(hours=1)


def due(store: Store, every: timedelta, now: datetime) -> bool:
    """Whether the newest stored version is older than `every` (or there is none)."""
    newest = max((m.created_at for m in store.list_models()), default=None)
    return newest is None or now - newest >= every


Trainer = Callable[[Store, Settings], ModelRecord]


class RetrainingSchedule(PeriodicJob):
    """A daemon thread that checks every minute (or sooner for short intervals) whether a build is due."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        every_s: float,
        *,
        train: Trainer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(store, interval_s=min(MAX_CHECK_EVERY_S, every_s / 10), thread_name="omnix-retraining")
        self._settings = settings
        self._every = timedelta(seconds=every_s)
        self._train = train or _train
        self._clock = clock
        self._retry_at: datetime | None = None
        self.builds: list[str] = []  # what each build ended as: "activated", "refused" or "failed"

    def start(self) -> None:
        log.info("retraining every %s when the newest model is older than that", self._every)
        super().start()

    def run_once(self) -> str | None:
        """Build if due; what the build ended as, or None when none was due (or the store is down)."""
        now = self._clock()
        if self._retry_at is not None and now < self._retry_at:
            return None
        try:
            if not due(self._store, self._every, now):
                return None
        except OmnixError as err:
            log.warning("cannot read the model versions to decide on retraining: %s", err)
            return None
        from omnix_recs.engine.registry import ActivationRefusedError

        started = time.perf_counter()
        try:
            record = self._train(self._store, self._settings)
        except ActivationRefusedError as refused:
            outcome = "refused"
            log.error(
                "scheduled retraining: version %s was not activated, the active version keeps serving: %s",
                refused.record.version,
                refused,
            )
        except Exception as err:  # a failed build must never stop the server; it is tried again later
            outcome = "failed"
            self._retry_at = now + min(self._every, RETRY_FAILED_AFTER)
            # A reason the operator can act on (no data, store down) in one line; a bug with its traceback.
            log.error(
                "scheduled retraining failed; the active version keeps serving: %s",
                err,
                exc_info=not isinstance(err, OmnixError),
            )
        else:
            outcome = "activated"
            log.info("scheduled retraining: activated %s in %.1f s", record.version, time.perf_counter() - started)
        self.builds.append(outcome)
        return outcome


def _train(store: Store, settings: Settings) -> ModelRecord:
    from omnix_recs.engine import registry
    from omnix_recs.engine.train import train_model

    record = train_model(store, settings)
    # Only after a version was activated: a refused build raises above and prunes nothing.
    registry.prune_after_training(store, settings)
    return record


@contextlib.contextmanager
def scheduled(settings: Settings) -> Iterator[RetrainingSchedule | None]:
    """Run the schedule (over its own store connection) for the block; nothing when
    `settings.retrain_every_s` is 0."""
    if not settings.retrain_every_s:
        yield None
        return
    from omnix_recs.store import open_store

    schedule = RetrainingSchedule(open_store(settings.store_url), settings, settings.retrain_every_s)
    schedule.start()
    try:
        yield schedule
    finally:
        schedule.close()
