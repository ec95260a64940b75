"""Erased customers out of every kept model version: their "shoppers like you" rows blanked.

A version holds one row per customer it was trained on (`artifact.LIKE_YOU`), kept on disk
(the model directory), in S3 and in each host's cache of S3 versions until retention deletes
the version. An erasure blanks the customer's row in each copy: the id becomes "" (no customer
has it) and the row's products and scores 0. Shapes stay the same, so every other row is
byte-identical, a loader sees a valid model whichever mix of old and new files it opens, and
the files can be replaced one at a time: each is copied, patched, flushed and renamed over the
old one (`like_you_customers.npy` last, so that a scrub cut short is found and redone). Server
processes that mapped the old files keep them until they load another version; they never
serve the row, because reads of an erased customer answer NOT_FOUND and a customer registered
again under the id is newer than the version (`LoadedModel.shoppers_like`).

In S3 the rewritten files replace the objects and `contents.json` (engine/s3_artifacts.py);
the host that scrubs also scrubs its own cache, and every other host finds its cached copies
out of date by their recorded contents and downloads the rewritten files (`follow_rewrites`,
run by each server's periodic erasure check). Which versions a customer is scrubbed from: all
of them, or for an id registered again, those built before it was (later ones may hold the new
customer's own row).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import LIKE_YOU, fsync_directory
from omnix_recs.engine.artifact_store import is_s3, record_contents, recorded_contents
from omnix_recs.errors import ModelFormatError, NotFoundError
from omnix_recs.store.base import Store

if TYPE_CHECKING:  # boto3 only for S3 users
    from omnix_recs.engine.s3_artifacts import FileEntry
    from omnix_recs.s3 import S3Location

log = logging.getLogger(__name__)

CUSTOMERS, INDPTR, ITEMS, SCORES = (f"{name}.npy" for name in LIKE_YOU)
# Patched in this order: the customer ids last, so a row still named is a scrub not finished.
REWRITTEN = (ITEMS, SCORES, CUSTOMERS)
BLANK_ID = ""
_SCRATCH_SUFFIX = ".scrub"

# customer id -> versions built before this time hold their data (None: every version does).
Cutoffs = Mapping[str, datetime | None]


@dataclass(frozen=True)
class ScrubReport:
    """What one `ModelFiles.erase` did: copies looked at, and those a row was blanked in."""

    looked_at: int
    rewritten: list[str]


def scrub_directory(path: Path, customer_ids: set[str]) -> bool:
    """Blank the rows of `customer_ids` in the version at `path`; False when it holds none of
    them (or no table at all: formats 1 and 2). Crash-safe: each file is replaced atomically."""
    for leftover in path.glob(f".*{_SCRATCH_SUFFIX}"):  # a scrub killed halfway
        leftover.unlink(missing_ok=True)
    if not (path / CUSTOMERS).is_file():
        return False
    rows = _rows_of(_open(path / CUSTOMERS), customer_ids)
    if rows.size == 0:
        return False
    indptr = np.asarray(_open(path / INDPTR))
    cells = np.concatenate([np.arange(indptr[row], indptr[row + 1]) for row in rows.tolist()])

    def zero_cells(array: np.ndarray) -> None:
        array[cells] = 0

    def blank_ids(array: np.ndarray) -> None:
        array[rows] = BLANK_ID

    for name, patch in ((ITEMS, zero_cells), (SCORES, zero_cells), (CUSTOMERS, blank_ids)):
        _replace_patched(path / name, patch)
    fsync_directory(path)
    return True


def _open(path: Path) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ModelFormatError(f"{path}: not a readable .npy array ({err})") from None
    return array


def _replace_patched(path: Path, patch: Callable[[np.ndarray], None]) -> None:
    """Copy `path`, `patch` the copy's array in place, make it durable, rename it over `path`."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_SCRATCH_SUFFIX}")
    try:
        shutil.copyfile(path, scratch)  # in the kernel (sendfile): no trip through Python
        array = np.load(scratch, mmap_mode="r+", allow_pickle=False)
        patch(array)
        array.flush()
        del array
        with open(scratch, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(scratch, os.stat(path).st_mode & 0o777)
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


class ModelFiles:
    """Every copy of the model versions this process can reach: the model directory (or S3
    prefix) of `Settings.model_dir`, whatever other artifacts the store's model records name,
    and this host's cache of S3 versions."""

    def __init__(self, model_dir: str, cache_dir: str | Path) -> None:
        self.model_dir = model_dir
        self.cache_dir = Path(cache_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelFiles:
        return cls(settings.model_dir, settings.model_cache_dir)

    def erase(self, store: Store, cutoffs: Cutoffs, *, keep_going: Callable[[], None] = lambda: None) -> ScrubReport:
        """Blank each customer's row in every copy built before their cutoff. Copies deleted
        meanwhile are skipped; any other failure is raised after every copy has been tried
        (what was blanked stays blanked, and calling again finishes). `keep_going` is called
        before each copy (to renew the caller's lease)."""
        looked_at, rewritten = 0, []
        failure: Exception | None = None
        for where, scrub in self._copies(store):
            keep_going()
            looked_at += 1
            try:
                if scrub(cutoffs):
                    rewritten.append(where)
            except (FileNotFoundError, NotFoundError):
                continue  # deleted by retention meanwhile: nothing left to scrub
            except Exception as err:  # noqa: BLE001 - the other copies are still to be scrubbed
                log.warning("could not remove erased customers from the model at %s: %s", where, err)
                failure = failure or err
        if failure is not None:
            raise failure
        if rewritten:
            log.info("erased customers' rows removed from %d model copies: %s", len(rewritten), ", ".join(rewritten))
        return ScrubReport(looked_at, rewritten)

    def follow_rewrites(self) -> list[str]:
        """Bring this host's cached copies of S3 versions up to date with the rewrites made
        by another host's erasure: the files whose content differs from the version's
        `contents.json` are downloaded (checked) and renamed over the cached ones. Returns the
        versions brought up to date. A copy whose version is no longer in S3 is left to
        `prune_cache`; S3 failures raise `UnavailableError` (the next check tries again)."""
        if not is_s3(self.model_dir):
            return []
        from omnix_recs.engine import s3_artifacts
        from omnix_recs.s3 import S3Location, s3_client

        bucket = S3Location.parse(self.model_dir)
        updated = []
        for path in _version_dirs(self.cache_dir):
            location = bucket.child(path.name)
            try:
                current = s3_artifacts.read_contents(s3_client(location), location)
            except ModelFormatError:
                continue  # deleted from S3 (or never from this prefix): nothing to follow
            known = recorded_contents(path)
            if known == current:
                continue
            stale = [name for name, entry in current.items() if known is None or known.get(name) != entry]
            if _refresh(location, path, current, stale):
                updated.append(path.name)
            record_contents(path, current)
        if updated:
            log.info("cached model copies brought up to date with rewrites in S3: %s", ", ".join(updated))
        return updated

    def _copies(self, store: Store) -> Iterator[tuple[str, Callable[[Cutoffs], bool]]]:
        """(where, scrub) for each copy: S3 versions first, so that a host that downloads one
        meanwhile gets the scrubbed files, then the local ones (the cache included)."""
        uris = {record.artifact_uri for record in store.list_models()}
        if is_s3(self.model_dir):
            from omnix_recs.engine import s3_artifacts
            from omnix_recs.s3 import S3Location

            bucket = S3Location.parse(self.model_dir)
            uris |= {str(bucket.child(version)) for version in s3_artifacts.versions_written(bucket)}
        else:
            uris |= {str(path) for path in _version_dirs(Path(self.model_dir))}
        local = {str(Path(uri).resolve()) for uri in uris if not is_s3(uri)}
        local |= {str(path.resolve()) for path in _version_dirs(self.cache_dir)}
        for uri in sorted(uri for uri in uris if is_s3(uri)):
            yield uri, functools.partial(self._scrub_s3, uri)
        for path in sorted(local):
            yield path, functools.partial(_scrub_local, Path(path))

    def _scrub_s3(self, uri: str, cutoffs: Cutoffs) -> bool:
        from omnix_recs.engine import s3_artifacts
        from omnix_recs.s3 import S3Location

        location = S3Location.parse(uri)
        if not _versioned_name(location):
            return False
        try:
            manifest = s3_artifacts.read_manifest(location)
        except ModelFormatError:  # an upload never finished, or already deleted: nobody loads it
            return False
        wanted = _applicable(cutoffs, manifest)
        if not wanted:
            return False
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Hidden in the cache directory (the host's disk for models; `prune_cache` skips it).
        scratch = Path(tempfile.mkdtemp(prefix=".scrub-", dir=self.cache_dir))
        try:
            contents = s3_artifacts.download_files(location, scratch, [CUSTOMERS])
            if CUSTOMERS not in contents or not _names_any(scratch / CUSTOMERS, wanted):
                return False
            s3_artifacts.download_files(location, scratch, [INDPTR, ITEMS, SCORES])
            if not scrub_directory(scratch, wanted):
                return False
            s3_artifacts.replace_files(location, scratch, REWRITTEN)
            return True
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _refresh(location: S3Location, path: Path, contents: dict[str, FileEntry], names: list[str]) -> bool:
    """Replace the cached files `names` of the copy at `path` whose content is not the one
    `contents` lists (measured: this host's own scrub may have written it already)."""
    from omnix_recs.engine import s3_artifacts

    different = []
    for name in names:
        try:
            have = s3_artifacts.measure(path / name).sha256
        except FileNotFoundError:
            have = None
        if have not in (contents[name].sha256, *contents[name].also):
            different.append(name)
    if not different:
        return False
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.follow-", dir=path.parent))
    try:
        s3_artifacts.download_files(location, scratch, different)
        for name in different:
            os.chmod(scratch / name, 0o644)
            os.replace(scratch / name, path / name)
        fsync_directory(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def _scrub_local(path: Path, cutoffs: Cutoffs) -> bool:
    try:
        manifest = _read_manifest(path)
    except FileNotFoundError:
        return False  # deleted meanwhile
    except ModelFormatError:
        manifest = {}  # of unknown age: scrubbed for everyone
    wanted = _applicable(cutoffs, manifest)
    return bool(wanted) and scrub_directory(path, wanted)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except ValueError as err:
        raise ModelFormatError(f"{path}/manifest.json: unreadable JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{path}/manifest.json: not a JSON object")
    return manifest


def _applicable(cutoffs: Cutoffs, manifest: Mapping[str, object]) -> set[str]:
    """The customers whose data a version built at the manifest's `created_at` may hold."""
    built = manifest.get("created_at")
    try:
        built_at = datetime.fromisoformat(built) if isinstance(built, str) else None
    except ValueError:
        built_at = None
    # A version without a build time could be any age: scrubbed for everyone.
    return {c for c, cutoff in cutoffs.items() if cutoff is None or built_at is None or built_at < cutoff}


def _rows_of(customers: np.ndarray, customer_ids: set[str]) -> np.ndarray:
    """Rows of the table named by one of `customer_ids`. Ids longer than the array's fixed
    width cannot be in it (cast to it, they would be cut and could match another id)."""
    width = customers.dtype.itemsize // 4  # numpy's "U" stores 4 bytes per character
    fitting = sorted(c for c in customer_ids if c and len(c) <= width)
    if not fitting:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(customers, np.array(fitting, dtype=customers.dtype)))


def _names_any(path: Path, customer_ids: set[str]) -> bool:
    return bool(_rows_of(_open(path), customer_ids).size)


def _version_dirs(directory: Path) -> list[Path]:
    """Complete versions in a model or cache directory (staging and evicted copies are hidden)."""
    try:
        return [
            entry
            for entry in directory.iterdir()
            if not entry.name.startswith(".") and (entry / "manifest.json").is_file()
        ]
    except FileNotFoundError:
        return []


def _versioned_name(location: S3Location) -> bool:
    from omnix_recs.engine.s3_artifacts import FILE_NAME

    return bool(FILE_NAME.fullmatch(location.name))
