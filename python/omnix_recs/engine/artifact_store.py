"""Where model artifacts live: a local directory (the default) or S3, through a cache per host.

`Settings.model_dir` names a directory, which every server process must see, or an `s3://`
prefix, for servers on several hosts. An S3 version is read through a cache on each host
(`Settings.model_cache_dir`), checked file by file before it is renamed into place, so a
host's server processes share one copy's pages and a rollback needs no download; the cache
keeps the versions used last (`CACHED_VERSIONS_KEPT`) and removes older ones. A downloaded copy
records the `contents.json` it matches (`.contents.json`, hidden among its files), so that a copy
whose version an erasure rewrote in S3 is found and brought up to date (engine/model_erasure.py).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import LoadedModel, fsync_directory, load_model, write_model
from omnix_recs.engine.blends import Blend
from omnix_recs.engine.build import BuiltModel
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, ModelFormatError, UnavailableError

if TYPE_CHECKING:  # s3_artifacts imports boto3, which only S3 users should pay for
    from omnix_recs.engine.s3_artifacts import FileEntry
    from omnix_recs.s3 import S3Location

log = logging.getLogger(__name__)

# Versions a host's cache keeps: the active one, the one before it (a rollback needs no
# download) and one more. A process still serving a removed version keeps its mapped files.
CACHED_VERSIONS_KEPT = 3
# An artifact no record names is deleted by a prune only once it is this old: a training writes
# (and uploads) its artifact before it saves the record.
ORPHAN_GRACE_S = 6 * 3600.0
# Leftovers of a crashed write or a deletion cut short: `.<version>.<random>` beside the versions.
_LEFTOVER = re.compile(r"\.(?P<version>[A-Za-z0-9][A-Za-z0-9._-]*?)\.(?:evicted-)?[A-Za-z0-9_]+")


def is_s3(location: str) -> bool:
    """True for `s3://...` (and for malformed `s3:` spellings, which parsing then refuses)."""
    return location.startswith("s3:")


@dataclass(frozen=True)
class SavedModel:
    """A version written (and uploaded) by `ModelDestination.save`."""

    version: str
    created_at: datetime
    artifact_uri: str  # what the model's record points at
    local_path: Path  # the artifact on this host (for S3: the cached copy)


class ModelDestination:
    """Where `omnix train` writes new versions (`settings.model_dir`). Constructing it checks an
    S3 URL, so a typo fails before a long build rather than after it."""

    def __init__(self, settings: Settings) -> None:
        self._model_dir = Path(settings.model_dir)
        self._cache_dir = Path(settings.model_cache_dir)
        self._bucket: S3Location | None = None
        if is_s3(settings.model_dir):
            from omnix_recs.s3 import S3Location

            try:
                self._bucket = S3Location.parse(settings.model_dir)
            except ValueError as err:
                raise InvalidArgumentError("OMNIX_MODEL_DIR", str(err)) from None

    def save(
        self,
        built: BuiltModel,
        metrics: dict[str, float],
        *,
        blends: dict[str, Blend] | None = None,
        habit_decay: float | None = None,
        validation: dict[str, Any] | None = None,
    ) -> SavedModel:
        """Write `built` as a new version (with the blends and habit decay tuned for it, see `write_model`),
        check it reads back, and upload it for S3. On failure nothing is left behind (locally,
        and in the bucket as far as S3 allows)."""
        directory = self._cache_dir if self._bucket else self._model_dir
        version, path = write_model(
            built, directory, metrics=metrics, blends=blends, habit_decay=habit_decay, validation=validation
        )
        try:
            model = load_model(path)  # proves the artifact reads back before anything points at it
            artifact_uri = str(path.resolve())
            if self._bucket is not None:
                from omnix_recs.engine import s3_artifacts

                location = self._bucket.child(version)
                s3_artifacts.upload(path, location)
                artifact_uri = str(location)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        if self._bucket is not None:
            prune_cache(self._cache_dir)
        return SavedModel(version, datetime.fromisoformat(model.manifest["created_at"]), artifact_uri, path)

    def delete(self, artifact_uri: str) -> None:
        """Delete a version's artifact for good: its directory, or its S3 objects and this host's
        cached copy. Deleting what is already gone does nothing; a directory that does not hold
        a model, or an artifact outside this model directory (`settings.model_dir`), is refused
        (`FailedPreconditionError`), never deleted: a copy of a store, trained with a model
        directory of its own, names the original's artifacts in its records. `OSError` or
        `UnavailableError` when deletion fails; whatever was deleted stays deleted."""
        if is_s3(artifact_uri):
            from omnix_recs.engine import s3_artifacts

            location = ArtifactReader._location(artifact_uri)
            if not self._holds_s3(location):
                raise FailedPreconditionError(f"{location.display} is outside OMNIX_MODEL_DIR: left alone")
            s3_artifacts.delete_version(location)
            cached = self._cache_dir / location.name
            if cached.is_dir():
                _evict(cached)
            return
        path = Path(artifact_uri)
        if self._bucket is not None or not path.resolve().is_relative_to(self._model_dir.resolve()):
            raise FailedPreconditionError(f"{path} is outside OMNIX_MODEL_DIR: left alone")
        if not path.exists():
            return
        if not (path / "manifest.json").is_file() and not _LEFTOVER.fullmatch(path.name):
            raise FailedPreconditionError(f"{path} does not hold a model artifact (no manifest.json): left alone")
        _remove_dir(path)

    def _holds_s3(self, location: S3Location) -> bool:
        """Whether `location` is under this model directory's bucket and prefix."""
        bucket = self._bucket
        if bucket is None or location.bucket != bucket.bucket:
            return False
        return not bucket.prefix or location.prefix.startswith(f"{bucket.prefix}/")

    def unrecorded(self, recorded: set[str], *, older_than_s: float) -> list[tuple[str, str]]:
        """(version, artifact) for each artifact in the model directory (or S3 prefix) that no
        version in `recorded` names and that was last written more than `older_than_s` ago,
        with leftovers of crashed writes and cut-short deletions. Listing failures are logged
        and give nothing: they are no reason to fail a prune."""
        cutoff = time.time() - older_than_s
        if self._bucket is not None:
            from omnix_recs.engine import s3_artifacts

            try:
                written = s3_artifacts.versions_written(self._bucket)
            except UnavailableError as err:
                log.warning("could not list %s for unrecorded versions: %s", self._bucket.display, err)
                return []
            return [
                (version, str(self._bucket.child(version)))
                for version, last_written in sorted(written.items())
                if version not in recorded and last_written < cutoff
            ]
        found: list[tuple[str, str]] = []
        try:
            for entry in sorted(self._model_dir.iterdir()) if self._model_dir.is_dir() else []:
                leftover = _LEFTOVER.fullmatch(entry.name)
                if leftover is not None:
                    version = leftover["version"]
                elif (entry / "manifest.json").is_file():
                    version = entry.name
                else:
                    continue
                if entry.is_dir() and version not in recorded and entry.stat().st_mtime < cutoff:
                    found.append((version, str(entry)))
        except OSError as err:
            log.warning("could not list %s for unrecorded versions: %s", self._model_dir, err)
        return found

    def discard(self, saved: SavedModel) -> None:
        """Undo `save` (best effort) when the version could not be recorded."""
        if self._bucket is not None:
            from omnix_recs.engine import s3_artifacts

            s3_artifacts.remove(self._bucket.child(saved.version), [p.name for p in saved.local_path.iterdir()])
        shutil.rmtree(saved.local_path, ignore_errors=True)


class ArtifactReader:
    """Opens the artifact a model record points at: a local path, or an `s3://` version through
    this host's cache (`cache_dir`)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self._cache_dir = Path(cache_dir)

    @classmethod
    def from_settings(cls, settings: Settings | None) -> ArtifactReader:
        """None: the default settings (all a local artifact needs)."""
        return cls((settings or Settings()).model_cache_dir)

    def open(self, artifact_uri: str) -> LoadedModel:
        """The model at `artifact_uri`, memory-mapped. `ModelFormatError` when it cannot be
        served; `UnavailableError` when S3 or the cache cannot be reached now (try later)."""
        if not is_s3(artifact_uri):
            return load_model(artifact_uri)
        location = self._location(artifact_uri)
        cached = self._cache_dir / location.name
        if cached.is_dir():
            _mark_used(cached)
            try:
                return load_model(cached)
            except ModelFormatError as err:  # damaged on this host's disk: fetch it again
                log.warning("the cached copy of model %s does not load, downloading it again: %s", location.name, err)
                _evict(cached)
        path = self._download(location)
        try:
            return load_model(path)
        except ModelFormatError:
            _evict(path)  # complete as uploaded, yet unreadable: keep no copy that can never serve
            raise

    def verify(self, artifact_uri: str) -> None:
        """What activation requires: the artifact opens here and, for S3, every object is in the
        bucket with its uploaded size, so that every host can load it (a copy cached on this
        host does not prove that)."""
        if is_s3(artifact_uri):
            from omnix_recs.engine import s3_artifacts

            s3_artifacts.check(self._location(artifact_uri))
        self.open(artifact_uri)

    @staticmethod
    def _location(artifact_uri: str) -> S3Location:
        from omnix_recs.engine.s3_artifacts import FILE_NAME
        from omnix_recs.s3 import S3Location

        try:
            location = S3Location.parse(artifact_uri)
        except ValueError as err:
            raise ModelFormatError(f"artifact_uri: {err}") from None
        if not FILE_NAME.fullmatch(location.name):
            raise ModelFormatError(f"artifact_uri {location.display}: does not end in a version name")
        return location

    def _download(self, location: S3Location) -> Path:
        """`<cache>/<version>/`, downloaded and checked in a staging directory, renamed into place."""
        from omnix_recs.engine import s3_artifacts

        final = self._cache_dir / location.name
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{location.name}.", dir=self._cache_dir))
        except OSError as err:
            raise UnavailableError(f"model cache {self._cache_dir}: {err}") from None
        try:
            record_contents(staging, s3_artifacts.download(location, staging))
            staging.chmod(0o755)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # another process of this host was quicker
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise UnavailableError(f"model cache {self._cache_dir}: {err}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_directory(self._cache_dir)
        log.info("downloaded model %s from %s into %s", location.name, location.display, final)
        _mark_used(final)
        prune_cache(self._cache_dir)
        return final


def prune_cache(cache_dir: Path, keep: int = CACHED_VERSIONS_KEPT) -> list[str]:
    """Remove all but the `keep` most recently used versions from a host's model cache; returns
    the names removed. Only complete versions (a directory with a manifest) are considered:
    staging and evicted directories are hidden, and anything else there is left alone."""
    try:
        versions = [
            entry
            for entry in cache_dir.iterdir()
            if not entry.name.startswith(".") and (entry / "manifest.json").is_file()
        ]
        versions.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    except OSError as err:  # a cache that cannot be listed is no reason to fail a model load
        log.warning("model cache %s could not be pruned: %s", cache_dir, err)
        return []
    removed = [entry.name for entry in versions[keep:]]
    for entry in versions[keep:]:
        _evict(entry)
    if removed:
        log.info("model cache %s: removed versions %s (kept the %d used last)", cache_dir, ", ".join(removed), keep)
    return removed


def contents_record(copy: Path) -> Path:
    """Where the `contents.json` a cached copy matches is recorded (hidden: the loader and
    `upload` never look at it)."""
    return copy / ".contents.json"


def record_contents(copy: Path, contents: dict[str, FileEntry]) -> None:
    """Record, durably, that the cached copy at `copy` matches `contents`."""
    from omnix_recs.engine import s3_artifacts

    final = contents_record(copy)
    staging = final.with_name(f"{final.name}.{secrets.token_hex(4)}")
    try:
        with open(staging, "wb") as fh:
            fh.write(s3_artifacts.contents_bytes(contents))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staging, final)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def recorded_contents(copy: Path) -> dict[str, FileEntry] | None:
    """What `record_contents` recorded for the cached copy at `copy`; None when nothing (or
    nothing readable) was: a copy this host uploaded, or one cached before records were kept."""
    from omnix_recs.engine import s3_artifacts

    record = contents_record(copy)
    try:
        return s3_artifacts.parse_contents(record.read_bytes(), str(record))
    except (OSError, ModelFormatError):
        return None


def _mark_used(path: Path) -> None:
    """The directory's mtime is when the version was last used: what `prune_cache` keeps by."""
    try:
        os.utime(path)
    except OSError:
        pass  # read-only cache: pruning then goes by download time


def _remove_dir(path: Path) -> None:
    """Delete a version directory: renamed aside first, so no process finds it half deleted (and
    a deletion cut short leaves a leftover `unrecorded` lists); errors raise."""
    aside = path.with_name(f".{path.name}.deleted_{secrets.token_hex(4)}") if not path.name.startswith(".") else path
    if aside != path:
        os.rename(path, aside)
    shutil.rmtree(aside)


def _evict(path: Path) -> None:
    """Remove a cached copy: renamed aside first, so no process finds it half deleted (processes
    that mapped its files keep them until they let go)."""
    aside = path.with_name(f".{path.name}.evicted-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except OSError:
        return  # another process evicted it already
    shutil.rmtree(aside, ignore_errors=True)
