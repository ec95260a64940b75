"""Serving experiments: which recommender answers a customer, and how the answer is stamped.

Every experiment running on a surface applies to each customer: the primary one and those
declared independent (which set different levers: model version, strategy, holdout). A
customer's route combines their arm of each: the model version one arm names, the strategy
another names, the holdout when they are held out of one. Its `Recommender` shares the
server's store, cache and catalog, and stamps the lists it serves with every (experiment, arm)
(`AssignedServedLists`). Pinned model versions are loaded once (memory-mapped) when this process
first sees the experiment (`refresh`, off the event loop); the recommender of each combination
of arms is made on first use (no I/O), so a request only hashes the customer id and picks one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from omnix_recs.config import Settings
from omnix_recs.domain.models import ServedRecommendation
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.engine.artifact_store import ArtifactReader
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.recommender import ModelSource, Recommender
from omnix_recs.engine.served_lists import ServedLists
from omnix_recs.errors import OmnixError
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign
from omnix_recs.experiments.registry import RunningExperiments
from omnix_recs.store.base import ExperimentRecord, Store

log = logging.getLogger(__name__)

# Builds a recommender over the server's shared parts for a model source and served-list sink.
RecommenderFactory = Callable[[ModelSource, ServedLists], Recommender]


class PinnedModel:
    """A model source that always serves one stored version (an arm's `model_version`)."""

    def __init__(self, model: LoadedModel) -> None:
        self._model = model

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def reload_if_changed(self, *, force: bool = False) -> bool:
        return False


class AssignedServedLists:
    """Served lists stamped with the experiments and arms that shaped them, on their way to
    `inner` (the store or the write-behind queue): the primary one in `experiment_id`/`arm_id`,
    the others in `other_assignments`, so each experiment's results find the list."""

    def __init__(self, inner: ServedLists, assignments: tuple[tuple[str, str], ...]) -> None:
        self._inner = inner
        self.assignments = assignments

    def save_recommendation(self, served: ServedRecommendation) -> None:
        (experiment_id, arm_id), *others = self.assignments
        stamped = replace(served, experiment_id=experiment_id, arm_id=arm_id, other_assignments=tuple(others))
        self._inner.save_recommendation(stamped)

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        return self._inner.get_recommendation(recommendation_id)


@dataclass(frozen=True, slots=True)
class Route:
    """How one customer's list is made under the experiments running on its surface."""

    assignments: tuple[tuple[str, str], ...]  # (experiment, arm), the primary first; never empty
    recommender: Recommender
    strategy: Strategy | None  # None: as the request asks
    holdout: bool  # held out of one of them: the shop-wide list

    @property
    def experiment_id(self) -> str:
        return self.assignments[0][0]

    @property
    def arm_id(self) -> str:
        return self.assignments[0][1]


class ExperimentRouter:
    def __init__(
        self,
        store: Store,
        models: ModelSource,
        served_lists: ServedLists,
        make_recommender: RecommenderFactory,
        *,
        settings: Settings | None = None,
        check_every_s: float = 5.0,
    ) -> None:
        self._store = store
        self._models = models
        self._served_lists = served_lists
        self._make = make_recommender
        self._artifacts = ArtifactReader.from_settings(settings)
        self._pinned: dict[str, PinnedModel | None] = {}  # None: the version could not be loaded
        self._recommenders: dict[tuple[str, tuple[tuple[str, str], ...]], Recommender] = {}
        self.running = RunningExperiments(store, check_every_s=check_every_s, on_change=self._build)

    def refresh_due(self) -> bool:
        return self.running.refresh_due()

    def refresh(self) -> None:
        """Re-read the running experiments (blocking: call it from a thread)."""
        self.running.refresh()

    def route(self, surface: str, customer_id: str) -> Route | None:
        """The customer's arms of the experiments running on `surface`; None when none runs."""
        if not customer_id:
            return None
        assignments: list[tuple[str, str]] = []
        version, strategy, holdout = "", None, False
        for experiment in self.running.on(surface):
            arm = assign(experiment, customer_id)
            if arm is not None and arm.model_version and self._pinned.get(arm.model_version) is None:
                continue  # its model could not be loaded: serve as if this experiment did not run
            assignments.append((experiment.experiment_id, HOLDOUT_ARM if arm is None else arm.arm_id))
            holdout = holdout or arm is None
            if arm is not None:
                version = arm.model_version or version
                strategy = Strategy(arm.strategy) if arm.strategy else strategy
        if not assignments:
            return None
        key = (version, tuple(assignments))
        recommender = self._recommenders.get(key)
        if recommender is None:
            pinned = self._pinned.get(version) if version else None
            models: ModelSource = pinned if pinned is not None else self._models
            recommender = self._make(models, AssignedServedLists(self._served_lists, key[1]))
            self._recommenders[key] = recommender
        return Route(key[1], recommender, strategy, holdout)

    def _build(self, by_surface: dict[str, tuple[ExperimentRecord, ...]]) -> None:
        pinned: dict[str, PinnedModel | None] = {}
        versions = {arm.model_version for es in by_surface.values() for e in es for arm in e.arms if arm.model_version}
        for version in sorted(versions):
            if self._pinned.get(version) is not None:
                pinned[version] = self._pinned[version]
                continue
            try:
                record = next(m for m in self._store.list_models() if m.version == version)
                pinned[version] = PinnedModel(self._artifacts.open(record.artifact_uri))
            except (StopIteration, OmnixError) as err:
                log.error(
                    "experiments on model %s: it cannot be served (%s); its arms' customers get the usual lists",
                    version,
                    err or "not stored",
                )
                pinned[version] = None
        self._pinned = pinned
        # Made again on first use: a stopped experiment's combinations must not linger.
        self._recommenders = {}
