"""The model artifact: the contract between the build and serving, one directory per version.

A version is `manifest.json`, `item_ids.json` (position = item index in every array) and one
`.npy` per array of `ARRAY_NAMES`, opened memory-mapped: the server processes of a host share
the pages, and loading copies nothing. It is written under a temporary name and renamed into
place, so a directory named like a version is complete; anything unexpected on load raises
`ModelFormatError` before a server could serve from it. The manifest also carries the blends
`omnix train` tuned for the version and their validation, so a version serves what was tuned
with it; a version without blends serves the defaults of engine/blends.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from omnix_recs._core import InvalidInputError, RankTables
from omnix_recs.engine.blends import Blend, blends_from_json
from omnix_recs.engine.build import ISO_WEEKS, BuiltModel, no_shoppers_like_you
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.errors import AlreadyExistsError, ModelFormatError

FORMAT_VERSION = 3
# Readable older formats: 1 lacks `taste_factors` (it loads with no taste dimensions); 1 and 2
# lack the "shoppers like you" table (they load knowing no customers).
READABLE_FORMATS = (1, 2, FORMAT_VERSION)

# Neighbour tables, best first: (int32 item indices [n_items, K], -1 = padding; float32 scores).
# cooc = co-purchase cosine, fbt = basket lift > 1, content = feature cosine.
NEIGHBOUR_TABLES = (("cooc_idx", "cooc_sim"), ("fbt_idx", "fbt_score"), ("content_idx", "content_sim"))
# float32 [n_items]: decayed popularity (top = 1), trending (log rate ratio), the population's
# repurchase cycle (NaN = unknown) and repurchase rate.
ITEM_VECTORS = ("popularity", "trending", "population_cycle_days", "repurchase_rate")
SEASONAL = "seasonal_lift"  # float32 [n_items, ISO_WEEKS]: column w - 1 = ISO week w
TASTE = "taste_factors"  # float32 [n_items, dims], dims may be 0
# What the ranking kernel holds (`RankTables`).
RANK_ARRAYS = tuple(name for table in NEIGHBOUR_TABLES for name in table) + ITEM_VECTORS + (SEASONAL, TASTE)
# Shoppers like you (engine/shoppers.rs): customer ids (unicode [n_customers]), then CSR rows
# (int64 indptr [n_customers + 1] into int32 item indices and float32 scores), best first.
LIKE_YOU = ("like_you_customers", "like_you_indptr", "like_you_items", "like_you_scores")
ARRAY_NAMES = RANK_ARRAYS + LIKE_YOU

# Shop-wide candidates every request considers besides the shopper's own, per signal.
POPULAR_CANDIDATES = 100
TRENDING_CANDIDATES = 50
SEASONAL_CANDIDATES = 50


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to serve. Arrays are read-only (memory-mapped when loaded from disk);
    `index_of` and the ranking kernel's `tables` are built once, here, not per request."""

    version: str
    manifest: dict[str, Any]
    item_ids: list[str]
    cooc_idx: np.ndarray
    cooc_sim: np.ndarray
    fbt_idx: np.ndarray
    fbt_score: np.ndarray
    content_idx: np.ndarray
    content_sim: np.ndarray
    popularity: np.ndarray
    trending: np.ndarray
    population_cycle_days: np.ndarray
    repurchase_rate: np.ndarray
    seasonal_lift: np.ndarray
    taste_factors: np.ndarray
    like_you_customers: np.ndarray = field(default_factory=lambda: no_shoppers_like_you()["like_you_customers"])
    like_you_indptr: np.ndarray = field(default_factory=lambda: no_shoppers_like_you()["like_you_indptr"])
    like_you_items: np.ndarray = field(default_factory=lambda: no_shoppers_like_you()["like_you_items"])
    like_you_scores: np.ndarray = field(default_factory=lambda: no_shoppers_like_you()["like_you_scores"])
    index_of: dict[str, int] = field(init=False, repr=False)
    tables: RankTables = field(init=False, repr=False)
    # The blends tuned with this version, by strategy (empty: it serves the defaults).
    blends: dict[str, Blend] = field(init=False, repr=False)
    # How fast a shopper's older trips fade from their habit (engine/features.py), as tuned with
    # this version; `HABIT_DECAY` for a version that carries none.
    habit_decay: float = field(init=False, repr=False)
    _candidates_by_week: dict[int, np.ndarray] = field(init=False, repr=False)
    _like_you_row: dict[str, int] = field(init=False, repr=False)
    _built_at: datetime | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_of", {product_id: n for n, product_id in enumerate(self.item_ids)})
        try:
            tables = RankTables(**{name: getattr(self, name) for name in RANK_ARRAYS})
        except InvalidInputError as err:  # tables that disagree with each other: a broken artifact
            raise ModelFormatError(f"model {self.version}: {err}") from None
        object.__setattr__(self, "tables", tables)
        try:
            raw = self.manifest.get("blends")
            blends = {} if raw is None else blends_from_json(raw)
        except ValueError as err:
            raise ModelFormatError(f"model {self.version}: manifest.json {err}") from None
        object.__setattr__(self, "blends", blends)
        history = self.manifest.get("history", {})
        decay = history.get("habit_decay", HABIT_DECAY) if isinstance(history, dict) else None
        if not isinstance(decay, int | float) or isinstance(decay, bool) or not 0.0 < decay <= 1.0:
            raise ModelFormatError(f"model {self.version}: manifest.json history.habit_decay must be in (0, 1]")
        object.__setattr__(self, "habit_decay", float(decay))
        object.__setattr__(self, "_candidates_by_week", {})
        # "" names no one: the row of a customer erased since the build (engine/model_erasure.py).
        rows = {c: n for n, c in enumerate(self.like_you_customers.tolist()) if c}
        object.__setattr__(self, "_like_you_row", rows)
        built = self.manifest.get("created_at")
        object.__setattr__(self, "_built_at", datetime.fromisoformat(built) if isinstance(built, str) else None)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def parameters(self) -> dict[str, Any]:
        """The build parameters recorded in the manifest."""
        return dict(self.manifest.get("parameters", {}))

    def shoppers_like(self, customer_id: str, registered_at: datetime | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The customer's "shoppers like you" products and scores (empty when the model was
        built without them). A profile `registered_at` after the model was built is someone
        else's than the row under that id (an erased customer's id registered again): empty."""
        row = self._like_you_row.get(customer_id)
        if row is None or (registered_at is not None and self._built_at is not None and registered_at > self._built_at):
            return _NO_ITEMS, _NO_SCORES
        start, stop = int(self.like_you_indptr[row]), int(self.like_you_indptr[row + 1])
        return self.like_you_items[start:stop], self.like_you_scores[start:stop]

    def shop_wide_candidates(self, week: int) -> np.ndarray:
        """Items every request in ISO week `week + 1` considers: the most popular, trending and
        seasonal ones (computed once per week column)."""
        candidates = self._candidates_by_week.get(week)
        if candidates is None:
            candidates = np.unique(
                np.concatenate(
                    [
                        top_items(self.popularity, POPULAR_CANDIDATES),
                        top_items(self.trending, TRENDING_CANDIDATES),
                        top_items(self.seasonal_lift[:, week], SEASONAL_CANDIDATES),
                    ]
                )
            ).astype(np.int32)
            self._candidates_by_week[week] = candidates
        return candidates


_NO_ITEMS = np.zeros(0, dtype=np.int32)
_NO_SCORES = np.zeros(0, dtype=np.float32)


def with_habit_decay(model: LoadedModel, habit_decay: float) -> LoadedModel:
    """The same model serving shoppers' habits at another decay (tuning tries several)."""
    history = {**model.manifest.get("history", {}), "habit_decay": habit_decay}
    return replace(model, manifest={**model.manifest, "history": history})


def top_items(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest values, best first (ties: lower index first; NaN last)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=-np.inf)
    k = min(k, len(values))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.lexsort((part, -values[part]))]


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version name: UTC build time plus a random suffix."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def manifest_of(
    built: BuiltModel,
    version: str,
    created_at: datetime,
    metrics: dict[str, float],
    *,
    blends: dict[str, Blend] | None = None,
    habit_decay: float | None = None,
    validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`manifest.json`: format and version, when it was built, `data_as_of` (ISO, the newest
    purchase used; null if none), counts, build parameters and metrics; and when the version was
    tuned, `blends` ({strategy: `Blend.to_json()`}), `history` ({"habit_decay": ...}) and
    `validation` (how they were judged)."""
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "created_at": created_at.isoformat(),
        "data_as_of": built.data_as_of.isoformat() if built.data_as_of else None,
        "counts": dict(built.counts),
        "parameters": built.manifest_parameters(),
        "metrics": dict(metrics),
    }
    if blends:
        manifest["blends"] = {str(strategy): blend.to_json() for strategy, blend in blends.items()}
    if habit_decay is not None:
        manifest["history"] = {"habit_decay": habit_decay}
    if validation is not None:
        manifest["validation"] = validation
    return manifest


def write_model(
    built: BuiltModel,
    model_dir: str | Path,
    *,
    version: str | None = None,
    metrics: dict[str, float] | None = None,
    blends: dict[str, Blend] | None = None,
    habit_decay: float | None = None,
    validation: dict[str, Any] | None = None,
) -> tuple[str, Path]:
    """Write `built` as `<model_dir>/<version>/`, atomically; returns (version, its path).
    `blends`, `habit_decay` and `validation`: what tuning chose, for the manifest (see `manifest_of`)."""
    created_at = datetime.now(UTC)
    version = version or new_version(created_at)
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise AlreadyExistsError("model version", version)
    _check_shapes(built.arrays, len(built.item_ids))
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        for name in ARRAY_NAMES:
            with open(staging / f"{name}.npy", "wb") as fh:
                np.save(fh, np.ascontiguousarray(built.arrays[name]), allow_pickle=False)
                _flush(fh)
        _write_json(staging / "item_ids.json", built.item_ids)
        manifest = manifest_of(
            built, version, created_at, metrics or {}, blends=blends, habit_decay=habit_decay, validation=validation
        )
        _write_json(staging / "manifest.json", manifest)
        staging.chmod(0o755)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(root)
    return version, final


def in_memory_model(
    built: BuiltModel, version: str, *, blends: dict[str, Blend] | None = None, habit_decay: float | None = None
) -> LoadedModel:
    """The model `built` would load as, without writing it (for tests, experiments and the
    validation builds of training)."""
    manifest = manifest_of(built, version, datetime.now(UTC), {}, blends=blends, habit_decay=habit_decay)
    arrays = {name: built.arrays[name].view() for name in ARRAY_NAMES}
    for view in arrays.values():
        view.flags.writeable = False
    return LoadedModel(version=version, manifest=manifest, item_ids=list(built.item_ids), **arrays)


def load_model(path: str | Path) -> LoadedModel:
    """Open the artifact at `path` (memory-mapped). `ModelFormatError` if anything is off."""
    path = Path(path)
    manifest = _read_json(path / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format_version") not in READABLE_FORMATS:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise ModelFormatError(f"{path}: format_version {found!r} is not one of the supported {READABLE_FORMATS}")
    item_ids = _read_json(path / "item_ids.json")
    if not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids):
        raise ModelFormatError(f"{path}/item_ids.json: expected a list of product id strings")
    if manifest.get("counts", {}).get("items") != len(item_ids):
        raise ModelFormatError(
            f"{path}: the manifest counts {manifest.get('counts', {}).get('items')} items, item_ids.json {len(item_ids)}"
        )
    missing = {1: (TASTE, *LIKE_YOU), 2: LIKE_YOU}.get(manifest["format_version"], ())
    arrays = {name: _open_array(path / f"{name}.npy") for name in ARRAY_NAMES if name not in missing}
    if TASTE not in arrays:
        arrays[TASTE] = np.zeros((len(item_ids), 0), dtype=np.float32)
    for name, empty in no_shoppers_like_you().items():
        arrays.setdefault(name, empty)
    for array in arrays.values():
        array.flags.writeable = False
    _check_shapes(arrays, len(item_ids))
    for index_name, _ in NEIGHBOUR_TABLES:
        index = arrays[index_name]
        if index.size and (index.min() < -1 or index.max() >= len(item_ids)):
            raise ModelFormatError(f"{path}/{index_name}.npy: item indices outside -1..{len(item_ids) - 1}")
    return LoadedModel(version=str(manifest.get("version", path.name)), manifest=manifest, item_ids=item_ids, **arrays)


def _check_shapes(arrays: dict[str, np.ndarray], n_items: int) -> None:
    def expect(name: str, dtype: type, shape: tuple[int, ...]) -> None:
        array = arrays.get(name)
        if array is None:
            raise ModelFormatError(f"model array {name} is missing")
        if array.dtype != dtype or array.shape != shape:
            raise ModelFormatError(
                f"model array {name} is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}"
            )

    for index_name, score_name in NEIGHBOUR_TABLES:
        k = arrays[index_name].shape[1] if index_name in arrays and arrays[index_name].ndim == 2 else -1
        expect(index_name, np.int32, (n_items, k))
        expect(score_name, np.float32, (n_items, k))
    for name in ITEM_VECTORS:
        expect(name, np.float32, (n_items,))
    expect(SEASONAL, np.float32, (n_items, ISO_WEEKS))
    dims = arrays[TASTE].shape[1] if TASTE in arrays and arrays[TASTE].ndim == 2 else -1
    expect(TASTE, np.float32, (n_items, dims))
    customers = arrays.get("like_you_customers")
    if customers is None or customers.ndim != 1 or customers.dtype.kind != "U":
        raise ModelFormatError("model array like_you_customers must be a 1-d array of customer ids")
    expect("like_you_indptr", np.int64, (len(customers) + 1,))
    indptr = arrays["like_you_indptr"]
    entries = int(indptr[-1])
    expect("like_you_items", np.int32, (entries,))
    expect("like_you_scores", np.float32, (entries,))
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise ModelFormatError("model array like_you_indptr must start at 0 and never decrease")
    items = arrays["like_you_items"]
    if entries and (items.min() < 0 or items.max() >= n_items):
        raise ModelFormatError(f"model array like_you_items holds item indices outside 0..{n_items - 1}")


def _open_array(path: Path) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
        return array
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError) as err:
        raise ModelFormatError(f"{path}: not a readable .npy array ({err})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: missing (is this a model artifact?)") from None
    except (OSError, ValueError) as err:
        raise ModelFormatError(f"{path}: unreadable JSON ({err})") from None


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1, allow_nan=False)
        _flush(fh)


def _flush(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def fsync_directory(path: Path) -> None:
    """Makes a rename inside `path` durable: a crash right after cannot bring the staging name
    back (also used by engine/artifact_store.py for the host's cache of S3 versions)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
