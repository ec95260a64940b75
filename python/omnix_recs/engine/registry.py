"""Model versions: list, activate, roll back, and hold the active one in a server process.

The store's models table is the source of truth for which version is active (one row at a
time); artifacts live in a directory or in S3 (`engine.artifact_store`; `settings` names the
host's cache directory for S3). Every server process keeps a `ModelHolder`, which notices a
newly activated version on its own and swaps it in without a restart: activate once, and all
processes follow within `check_every_s`.

Activation is also where quality is enforced: a version `omnix train` validated must beat
"buy what you bought most" on its own held-out baskets, and must not fall clearly behind the
version it replaces, unless the operator forces it (`activation_refusal`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.engine.artifact_store import ORPHAN_GRACE_S, ArtifactReader, ModelDestination
from omnix_recs.engine.blends import Blend, blends_from_json
from omnix_recs.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    ModelFormatError,
    NotFoundError,
    OmnixError,
    UnavailableError,
)
from omnix_recs.store.base import ModelRecord, Store

log = logging.getLogger(__name__)

# The validation figure activation judges a version by, and the baseline it must reach.
GATE_METRIC = "validation_replenish_recall@10"
GATE_BASELINE = "validation_replenish_top_frequency_recall@10"
# How far (relative) a version may fall below the active one before activation refuses it: two
# versions are validated on different baskets, and differences this small are noise.
ACTIVE_TOLERANCE = 0.05


class ActivationRefusedError(FailedPreconditionError):
    """A version's validation says it should not serve; `record` is that version (saved, inactive)."""

    def __init__(self, record: ModelRecord, reason: str) -> None:
        self.record = record
        super().__init__(reason)


def list_versions(store: Store) -> list[ModelRecord]:
    """Every version, newest first."""
    return store.list_models()


def activate(store: Store, version: str, *, settings: Settings | None = None, force: bool = False) -> ModelRecord:
    """Make `version` the active model, after checking its validation (`activation_refusal`,
    skipped when `force`) and that its artifact opens (for S3: that every object is in the
    bucket, and that it opens here).

    `NotFoundError` for an unknown version; `ActivationRefusedError` when its validation
    falls short; `FailedPreconditionError` when its artifact is missing or corrupt;
    `UnavailableError` when S3 cannot be reached to check it. The active version is then left
    as it was."""
    record = next((r for r in store.list_models() if r.version == version), None)
    if record is None:
        raise NotFoundError("model", version)
    if not force:
        reason = activation_refusal(record, store.active_model())
        if reason is not None:
            raise ActivationRefusedError(record, f"model {version} was not activated: {reason} (force to activate it)")
    try:
        ArtifactReader.from_settings(settings).verify(record.artifact_uri)
    except ModelFormatError as err:
        raise FailedPreconditionError(f"model {version} cannot be activated: {err}") from None
    return store.activate_model(version)


def activation_refusal(candidate: ModelRecord, active: ModelRecord | None) -> str | None:
    """Why `candidate` should not replace `active`, or None when it may: its validation REPLENISH
    recall@10 is below personal top frequency's on the same baskets, or more than
    `ACTIVE_TOLERANCE` below the active version's. A version without validation metrics (trained
    untuned, or before training validated) is not judged, nor compared with."""
    recall = candidate.metrics.get(GATE_METRIC)
    if recall is None:
        return None
    baseline = candidate.metrics.get(GATE_BASELINE)
    if baseline is not None and recall < baseline:
        return (
            f"its validation REPLENISH recall@10 {recall:.4f} is below personal top frequency's {baseline:.4f} "
            "on the same held-out baskets"
        )
    if active is None or active.version == candidate.version:
        return None
    current = active.metrics.get(GATE_METRIC)
    if current is not None and recall < (1.0 - ACTIVE_TOLERANCE) * current:
        return (
            f"its validation REPLENISH recall@10 {recall:.4f} is more than {ACTIVE_TOLERANCE:.0%} below "
            f"the active model {active.version}'s {current:.4f}"
        )
    return None


def record_notes(blends: dict[str, Blend] | None, tuning: str, *, refused: str | None = None) -> str:
    """A model record's notes: the blends the version serves, how they were chosen and, when
    training refused to activate it, why; as JSON, so that listing versions reads no artifact
    (`tuned_settings` reads them back)."""
    tuned = {str(s): b.to_json(trees=False) for s, b in blends.items()} if blends else {}
    notes: dict[str, object] = {"tuning": tuning, "blends": tuned}
    if refused is not None:
        notes["refused"] = refused
    return json.dumps(notes, sort_keys=True)


def _notes(record: ModelRecord) -> dict[str, Any]:
    try:
        notes = json.loads(record.notes) if record.notes else {}
    except ValueError:
        return {}
    return notes if isinstance(notes, dict) else {}


def tuned_settings(record: ModelRecord) -> tuple[str, dict[str, Blend]]:
    """(how the blends were chosen, the blends by strategy) from a record's notes; ("", {}) for
    a version trained before versions carried them."""
    notes = _notes(record)
    try:
        return str(notes.get("tuning", "")), blends_from_json(notes.get("blends") or {})
    except ValueError:
        return "", {}


def rollback(store: Store, *, settings: Settings | None = None) -> ModelRecord:
    """Activate the newest version built before the active one that may have served: versions
    training refused to activate, or that validated below personal top frequency, are passed
    over. Not compared with the active version: going back is the operator's undo, usually
    because the active one is wrong."""
    records = store.list_models()
    active = next((r for r in records if r.active), None)
    if active is None:
        raise FailedPreconditionError("no model is active, so there is nothing to roll back from")
    older = [r for r in records if (r.created_at, r.version) < (active.created_at, active.version)]
    if not older:
        raise FailedPreconditionError(f"model {active.version} is the oldest version; there is nothing to roll back to")
    target = rollback_target(records)
    if target is None:
        raise FailedPreconditionError(
            f"every version older than {active.version} failed its validation; "
            "activate one by name, with force, to serve it anyway"
        )
    return activate(store, target.version, settings=settings, force=True)


def rollback_target(records: list[ModelRecord]) -> ModelRecord | None:
    """The version `rollback` would activate: the newest one built before the active one that
    may have served; None when there is none (or nothing is active)."""
    active = next((r for r in records if r.active), None)
    if active is None:
        return None
    fit = [
        r
        for r in records
        if (r.created_at, r.version) < (active.created_at, active.version)
        and "refused" not in _notes(r)
        and activation_refusal(r, None) is None
    ]
    return max(fit, key=lambda r: (r.created_at, r.version), default=None)


@dataclass(frozen=True)
class Pruned:
    """What `prune_versions` did: versions kept (newest first) and why, versions deleted, and
    versions whose deletion failed (with the error), to try again at the next prune."""

    kept: dict[str, str]
    deleted: list[str]
    failed: dict[str, str]


def prune_versions(store: Store, settings: Settings, *, keep: int | None = None) -> Pruned:
    """Delete every version but the newest `keep` (default `settings.model_keep`), the active
    one, the one a rollback would activate, and those a running experiment serves.

    Each version's record is deleted first, then its artifact (directory, or S3 objects and this
    host's cached copy): the registry never names a version whose files are gone, whatever fails
    midway. An artifact whose deletion failed is left without a record and deleted by a later
    prune, with any other artifact in the model directory no record names that is older than
    `ORPHAN_GRACE_S` (younger ones may belong to a training that has not saved its record yet).
    A version activated meanwhile is refused by the store and kept."""
    keep = settings.model_keep if keep is None else keep
    if keep < 1:
        raise InvalidArgumentError("keep", f"must be at least 1 (the newest version is always kept), got {keep}")
    records = store.list_models()
    kept = _versions_kept(store, records, keep)
    destination = ModelDestination(settings)
    deleted: list[str] = []
    failed: dict[str, str] = {}
    for record in reversed(records):  # oldest first: a prune cut short leaves the newer ones
        if record.version in kept:
            continue
        try:
            store.delete_model(record.version)
        except FailedPreconditionError as err:  # activated since we listed: it stays
            kept[record.version] = "active"
            log.info("model %s was kept: %s", record.version, err)
            continue
        except NotFoundError:
            pass  # deleted by a concurrent prune: its artifact may still be there
        try:
            destination.delete(record.artifact_uri)
        except (OSError, OmnixError) as err:
            failed[record.version] = str(err)
            log.warning("model %s: record deleted, artifact left for the next prune: %s", record.version, err)
            continue
        deleted.append(record.version)
    recorded = {r.version for r in records} - set(deleted)  # a failed one is tried again next time
    for version, artifact in destination.unrecorded(recorded, older_than_s=ORPHAN_GRACE_S):
        try:
            destination.delete(artifact)
        except (OSError, OmnixError) as err:
            failed[version] = str(err)
            log.warning("model %s has no record; its artifact could not be deleted: %s", version, err)
            continue
        deleted.append(version)
    if deleted or failed:
        log.info(
            "pruned model versions: deleted %s; kept %s%s",
            ", ".join(deleted) or "none",
            ", ".join(f"{v} ({why})" for v, why in kept.items()),
            f"; failed {', '.join(failed)}" if failed else "",
        )
    return Pruned(kept, deleted, failed)


def prune_after_training(store: Store, settings: Settings) -> Pruned | None:
    """`prune_versions` once a training succeeded: a prune that fails is logged, never raised,
    since the new version is saved and serving either way."""
    try:
        return prune_versions(store, settings)
    except (OSError, OmnixError) as err:
        log.warning("model versions were not pruned after training (the next training tries again): %s", err)
        return None


def _versions_kept(store: Store, records: list[ModelRecord], keep: int) -> dict[str, str]:
    """version -> why it stays, for `prune_versions`."""
    kept: dict[str, str] = {}

    def add(version: str, reason: str) -> None:
        kept[version] = f"{kept[version]}, {reason}" if version in kept else reason

    for record in records[:keep]:
        add(record.version, "newest")
    for record in records:
        if record.active:
            add(record.version, "active")
    target = rollback_target(records)
    if target is not None:
        add(target.version, "rollback target")
    for experiment in store.list_experiments():
        if experiment.running:
            for arm in experiment.arms:
                if arm.model_version:
                    add(arm.model_version, f"experiment {experiment.experiment_id}")
    return {r.version: kept[r.version] for r in records if r.version in kept}


class ModelHolder:
    """The active model of one server process.

    `model` is the LoadedModel being served (None before any model was trained). Request
    handlers call `reload_if_changed()`: at most every `check_every_s` seconds it asks the
    store which version is active and, if that changed, loads it (memory-mapped, so quickly;
    a version in S3 is first downloaded, once per host) and swaps the reference, which is
    atomic: a request uses the model it started with. A version whose artifact fails to load is
    logged once and skipped, and the model being served stays; so does a store, or an S3
    bucket, that cannot be reached (tried again at the next check). `settings` gives the cache
    directory for models stored in S3.
    """

    def __init__(
        self,
        store: Store,
        *,
        settings: Settings | None = None,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._artifacts = ArtifactReader.from_settings(settings)
        self._check_every_s = check_every_s
        self._clock = clock
        self._model: LoadedModel | None = None
        self._version: str | None = None  # the store's name for the version held
        self._broken_version: str | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def require(self) -> LoadedModel:
        """The model being served; `FailedPreconditionError` when there is none yet."""
        model = self._model
        if model is None:
            raise FailedPreconditionError("no trained model is active yet: run `omnix train`")
        return model

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Swap in the store's active version if it differs from the one held; True if swapped.
        Cheap when called on every request: between checks it only reads the clock."""
        now = self._clock()
        if not force and now - self._checked_at < self._check_every_s:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # another thread is checking right now
        try:
            try:
                record = self._store.active_model()
            except OmnixError as err:
                self._checked_at = now
                log.warning("could not ask the store for the active model (keeping %s): %s", self._version, err)
                return False
            # Set after the read: a call that may not block (blocking.py) leaves the check due.
            self._checked_at = now
            if record is None or record.version in (self._version, self._broken_version):
                return False
            try:
                model = self._artifacts.open(record.artifact_uri)
            except ModelFormatError as err:
                self._broken_version = record.version
                log.error(
                    "model %s is active but cannot be loaded (keeping %s): %s", record.version, self._version, err
                )
                return False
            except UnavailableError as err:
                log.warning(
                    "model %s is active but cannot be fetched now (keeping %s): %s", record.version, self._version, err
                )
                return False
            self._model, self._version = model, record.version
            log.info("serving model %s", record.version)
            return True
        finally:
            self._lock.release()
