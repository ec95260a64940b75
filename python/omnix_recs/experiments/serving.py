"""Serving an experiment: which recommender answers a customer, and how the answer is stamped.

Each arm (and the holdout) of a running experiment gets its own `Recommender`, sharing the
server's store, cache and catalog, whose served lists are stamped with the experiment and arm
(`ExperimentServedLists`). An arm that names a model version serves that version, loaded
once (memory-mapped); the others follow the active version. The recommenders are built when
this process first sees the experiment (`refresh`, off the event loop), so a request only
hashes the customer id and picks one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.engine.artifact_store import ArtifactReader
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.recommender import ModelSource, Recommender
from omnix_recs.engine.served_lists import ExperimentServedLists, ServedLists
from omnix_recs.errors import OmnixError
from omnix_recs.experiments.assignment import HOLDOUT_ARM, assign
from omnix_recs.experiments.registry import RunningExperiments
from omnix_recs.store.base import ExperimentArm, ExperimentRecord, Store

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


@dataclass(frozen=True, slots=True)
class Route:
    """How one customer's list is made under a running experiment."""

    experiment_id: str
    arm_id: str  # HOLDOUT_ARM for the holdout
    recommender: Recommender
    strategy: Strategy | None  # None: as the request asks

    @property
    def holdout(self) -> bool:
        return self.arm_id == HOLDOUT_ARM


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
        self._recommenders: dict[tuple[str, str], Recommender] = {}
        self.running = RunningExperiments(store, check_every_s=check_every_s, on_change=self._build)

    def refresh_due(self) -> bool:
        return self.running.refresh_due()

    def refresh(self) -> None:
        """Re-read the running experiments (blocking: call it from a thread)."""
        self.running.refresh()

    def route(self, surface: str, customer_id: str) -> Route | None:
        """The customer's arm of the experiment running on `surface`; None when none runs."""
        experiment = self.running.on(surface)
        if experiment is None or not customer_id:
            return None
        arm = assign(experiment, customer_id)
        arm_id = HOLDOUT_ARM if arm is None else arm.arm_id
        recommender = self._recommenders.get((experiment.experiment_id, arm_id))
        if recommender is None:  # its model could not be loaded: serve as if no experiment ran
            return None
        strategy = Strategy(arm.strategy) if arm is not None and arm.strategy else None
        return Route(experiment.experiment_id, arm_id, recommender, strategy)

    def _build(self, by_surface: dict[str, ExperimentRecord]) -> None:
        built: dict[tuple[str, str], Recommender] = {}
        for experiment in by_surface.values():
            arms: list[ExperimentArm | None] = [*experiment.arms, None]
            for arm in arms:
                arm_id = HOLDOUT_ARM if arm is None else arm.arm_id
                key = (experiment.experiment_id, arm_id)
                if key in self._recommenders:
                    built[key] = self._recommenders[key]
                    continue
                models = self._models
                if arm is not None and arm.model_version:
                    try:
                        record = next(m for m in self._store.list_models() if m.version == arm.model_version)
                        models = PinnedModel(self._artifacts.open(record.artifact_uri))
                    except (StopIteration, OmnixError) as err:
                        log.error(
                            "experiment %s arm %s: model %s cannot be served (%s); its customers get the usual lists",
                            experiment.experiment_id,
                            arm_id,
                            arm.model_version,
                            err or "not stored",
                        )
                        continue
                stamped = ExperimentServedLists(self._served_lists, experiment.experiment_id, arm_id)
                built[key] = self._make(models, stamped)
        self._recommenders = built
