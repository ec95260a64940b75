"""Experiments: defining one (the checks), stopping it, and each process's view of those running.

At most one experiment runs per surface (a kind of list) unless they are declared independent:
two experiments changing the same list would each judge the other's effect as noise. Independent
experiments run side by side, each splitting customers with its own salt (so the split of one is
independent of the other's), and must change different levers (model version, strategy,
holdout). The check here names the running one; the store enforces the rules atomically as well
(a unique index and a check in one transaction, conditional lock rows), so two operators
creating experiments for one surface at the same instant cannot both succeed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, OmnixError
from omnix_recs.experiments.assignment import HOLDOUT_ARM
from omnix_recs.experiments.results import METRICS
from omnix_recs.store.base import ExperimentArm, ExperimentRecord, Store

log = logging.getLogger(__name__)

# The lists an experiment can change: one per list RPC of RecommendationService.
SURFACES = ("recommendations", "personalized", "similar", "frequently_bought_together", "trending", "seasonal")
# Surfaces whose lists are personalised, so a holdout (the shop-wide list) means something.
HOLDOUT_SURFACES = ("recommendations", "personalized")
STRATEGIES = ("", "balanced", "replenish", "discover")
MAX_ARMS = 10
MAX_HOLDOUT_PERCENT = 50
MAX_ATTRIBUTION_DAYS = 30
DEFAULT_ATTRIBUTION_DAYS = 7


@dataclass(frozen=True, slots=True)
class ExperimentDraft:
    """What CreateExperiment asks for, before the checks."""

    experiment_id: str
    surface: str
    arms: Sequence[ExperimentArm]
    description: str = ""
    primary_metric: str = "click_through_rate"
    holdout_percent: int = 0
    attribution_window_days: int = 0  # 0 = the default
    independent: bool = False


def new_experiment_id() -> str:
    return f"exp-{time.strftime('%Y%m%d', time.gmtime())}-{os.urandom(4).hex()}"


def create_experiment(store: Store, draft: ExperimentDraft, now: datetime) -> ExperimentRecord:
    """Check the draft, then store it running from `now`. INVALID_ARGUMENT naming the field,
    NOT_FOUND for an unknown model version, FAILED_PRECONDITION when the surface is taken."""
    if draft.surface not in SURFACES:
        raise InvalidArgumentError("surface", f"must be one of {', '.join(SURFACES)}, got {draft.surface!r}")
    if draft.primary_metric not in METRICS:
        raise InvalidArgumentError("primary_metric", f"must be one of {', '.join(METRICS)}")
    if not 2 <= len(draft.arms) <= MAX_ARMS:
        raise InvalidArgumentError(
            "arms", f"must have 2 to {MAX_ARMS} arms (the first is the control), got {len(draft.arms)}"
        )
    seen: set[str] = set()
    for i, arm in enumerate(draft.arms):
        if arm.arm_id == HOLDOUT_ARM:
            raise InvalidArgumentError(f"arms[{i}].arm_id", f"{HOLDOUT_ARM!r} names the holdout; choose another")
        if arm.arm_id in seen:
            raise InvalidArgumentError(f"arms[{i}].arm_id", f"{arm.arm_id!r} is used by an earlier arm")
        seen.add(arm.arm_id)
        if not 1 <= arm.traffic_percent <= 99:
            raise InvalidArgumentError(f"arms[{i}].traffic_percent", f"must be 1..99, got {arm.traffic_percent}")
        if arm.strategy not in STRATEGIES:
            raise InvalidArgumentError(f"arms[{i}].strategy", f"unknown strategy {arm.strategy!r}")
        if arm.strategy and draft.surface == "personalized":
            raise InvalidArgumentError(
                f"arms[{i}].strategy", "the personalized list chooses its own strategy: leave it unspecified"
            )
        if arm.strategy and draft.surface not in ("recommendations", "personalized"):
            raise InvalidArgumentError(
                f"arms[{i}].strategy", f"the {draft.surface} list has no strategies: leave it unspecified"
            )
    total = sum(a.traffic_percent for a in draft.arms)
    if total != 100:
        raise InvalidArgumentError("arms", f"traffic_percent must sum to 100, got {total}")
    if not 0 <= draft.holdout_percent <= MAX_HOLDOUT_PERCENT:
        raise InvalidArgumentError("holdout_percent", f"must be 0..{MAX_HOLDOUT_PERCENT}, got {draft.holdout_percent}")
    if draft.holdout_percent and draft.surface not in HOLDOUT_SURFACES:
        raise InvalidArgumentError(
            "holdout_percent", f"the {draft.surface} list is not personalised: a holdout needs 0 there"
        )
    window = draft.attribution_window_days or DEFAULT_ATTRIBUTION_DAYS
    if not 1 <= window <= MAX_ATTRIBUTION_DAYS:
        raise InvalidArgumentError(
            "attribution_window_days",
            f"must be 1..{MAX_ATTRIBUTION_DAYS} (0 = {DEFAULT_ATTRIBUTION_DAYS}), got {window}",
        )
    versions = {m.version for m in store.list_models()}
    for arm in draft.arms:
        if arm.model_version and arm.model_version not in versions:
            raise NotFoundError("model", arm.model_version)
    experiment_id = draft.experiment_id or new_experiment_id()
    record = ExperimentRecord(
        experiment_id=experiment_id,
        surface=draft.surface,
        arms=tuple(draft.arms),
        salt=f"{experiment_id}:{os.urandom(8).hex()}",
        created_at=now,
        description=draft.description,
        primary_metric=draft.primary_metric,
        holdout_percent=draft.holdout_percent,
        attribution_window_days=window,
        independent=draft.independent,
    )
    conflict = record.conflict_with(store.list_experiments())
    if conflict is not None:  # the store checks again, atomically; this names the field first
        raise FailedPreconditionError(conflict)
    store.create_experiment(record)
    return record


class RunningExperiments:
    """The experiments running now, by surface, as this process last read them: per surface,
    the primary one first (the one not declared independent, else the oldest), then the
    independent ones oldest first.

    `refresh_due()` is cheap (the clock); `refresh()` reads the store, at most every
    `check_every_s`, so an experiment created or stopped in another process takes effect here
    within seconds. A store that cannot be read keeps the last view (logged)."""

    def __init__(
        self,
        store: Store,
        *,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[dict[str, tuple[ExperimentRecord, ...]]], None] | None = None,
    ) -> None:
        self._store = store
        self._check_every_s = check_every_s
        self._clock = clock
        self._on_change = on_change
        self._by_surface: dict[str, tuple[ExperimentRecord, ...]] = {}
        self._checked_at = -float("inf")
        self._lock = threading.Lock()

    def on(self, surface: str) -> tuple[ExperimentRecord, ...]:
        return self._by_surface.get(surface, ())

    def refresh_due(self) -> bool:
        return self._clock() - self._checked_at >= self._check_every_s

    def refresh(self) -> None:
        with self._lock:
            try:
                running = [e for e in self._store.list_experiments() if e.running]
            except OmnixError as err:
                log.warning("could not read the running experiments (keeping the last view): %s", err)
                self._checked_at = self._clock()
                return
            by_surface = running_by_surface(running)
            if self._on_change is not None and by_surface != self._by_surface:
                self._on_change(by_surface)
            self._by_surface = by_surface
            self._checked_at = self._clock()


def running_by_surface(running: Sequence[ExperimentRecord]) -> dict[str, tuple[ExperimentRecord, ...]]:
    """The running experiments by surface, each surface's primary first (see `RunningExperiments`).

    Should two ever share a surface against the rules (created by an older version), the
    oldest of those not independent is kept and the other dropped, and so is an independent
    experiment that shares a lever with one kept before it."""
    by_surface: dict[str, list[ExperimentRecord]] = {}
    order = sorted((e for e in running if e.running), key=lambda e: (e.independent, e.created_at, e.experiment_id))
    for experiment in order:
        kept = by_surface.setdefault(experiment.surface, [])
        if experiment.conflict_with(kept) is None:
            kept.append(experiment)
    return {surface: tuple(experiments) for surface, experiments in by_surface.items()}
