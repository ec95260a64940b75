"""Model versions: list, activate, roll back, and hold the active one in a server process.

The store's models table is the source of truth for which version is active (one row at a
time); artifacts live in a directory or in S3 (`engine.artifact_store`; `settings` names the
host's cache directory for S3). Every server process keeps a `ModelHolder`, which notices a
newly activated version on its own and swaps it in without a restart: activate once, and all
processes follow within `check_every_s`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import LoadedModel
from omnix_recs.engine.artifact_store import ArtifactReader
from omnix_recs.errors import FailedPreconditionError, ModelFormatError, NotFoundError, OmnixError, UnavailableError
from omnix_recs.store.base import ModelRecord, Store

log = logging.getLogger(__name__)


def list_versions(store: Store) -> list[ModelRecord]:
    """Every version, newest first."""
    return store.list_models()


def activate(store: Store, version: str, *, settings: Settings | None = None) -> ModelRecord:
    """Make `version` the active model, after checking its artifact opens (for S3: that every
    object is in the bucket, and that it opens here).

    `NotFoundError` for an unknown version; `FailedPreconditionError` when its artifact is
    missing or corrupt; `UnavailableError` when S3 cannot be reached to check it. The active
    version is then left as it was."""
    record = next((r for r in store.list_models() if r.version == version), None)
    if record is None:
        raise NotFoundError("model", version)
    try:
        ArtifactReader.from_settings(settings).verify(record.artifact_uri)
    except ModelFormatError as err:
        raise FailedPreconditionError(f"model {version} cannot be activated: {err}") from None
    return store.activate_model(version)


def rollback(store: Store, *, settings: Settings | None = None) -> ModelRecord:
    """Activate the version built just before the active one."""
    records = store.list_models()
    active = next((r for r in records if r.active), None)
    if active is None:
        raise FailedPreconditionError("no model is active, so there is nothing to roll back from")
    older = [r for r in records if (r.created_at, r.version) < (active.created_at, active.version)]
    if not older:
        raise FailedPreconditionError(f"model {active.version} is the oldest version; there is nothing to roll back to")
    return activate(store, max(older, key=lambda r: (r.created_at, r.version)).version, settings=settings)


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
