"""Train a model version: build, write the artifact, record it in the store, activate it.

Called by `omnix train`, and by a server that retrains on a schedule. From async code run it
in a worker thread, `await asyncio.to_thread(train_model, store, settings)`: the heavy parts
(the Rust kernels, numpy) release the GIL, so the event loop keeps answering requests, and
every server process picks the new version up through its `ModelHolder`.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from omnix_recs.config import Settings
from omnix_recs.engine.artifact import NEIGHBOUR_TABLES
from omnix_recs.engine.artifact_store import ModelDestination
from omnix_recs.engine.build import BuildParameters, BuiltModel, build_model
from omnix_recs.store.base import ModelRecord, Store

log = logging.getLogger(__name__)


def train_model(
    store: Store,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    activate: bool = True,
    parameters: BuildParameters = BuildParameters(),
) -> ModelRecord:
    """Build from the store (purchases before `as_of`, when given), write the artifact under
    `settings.model_dir` (a directory or S3, see engine/artifact_store.py), save its record
    with build metrics and, unless `activate=False`, make it the active version. Returns the
    saved record."""
    destination = ModelDestination(settings)  # a malformed OMNIX_MODEL_DIR fails before the build
    started = time.perf_counter()
    built = build_model(store, as_of=as_of, parameters=parameters)
    metrics = build_metrics(built, seconds=time.perf_counter() - started)
    saved = destination.save(built, metrics)
    try:
        record = ModelRecord(
            version=saved.version,
            created_at=saved.created_at,
            artifact_uri=saved.artifact_uri,
            metrics=metrics,
            active=activate,
        )
        store.save_model(record)
    except BaseException:
        destination.discard(saved)
        raise
    log.info(
        "trained model %s in %.1f s (%s)", saved.version, metrics["build_seconds"], "active" if activate else "inactive"
    )
    return record


def build_metrics(built: BuiltModel, *, seconds: float) -> dict[str, float]:
    """What the build can say about itself: sizes, time per stage, and the share of items
    that got at least one neighbour in each table (offline quality comes from evaluation)."""
    metrics: dict[str, float] = {"build_seconds": round(seconds, 3)}
    metrics.update({name: float(count) for name, count in built.counts.items()})
    metrics.update({f"seconds_{stage}": s for stage, s in built.stage_seconds.items()})
    for index_name, _ in NEIGHBOUR_TABLES:
        table = index_name.removesuffix("_idx")
        metrics[f"{table}_coverage"] = round(float((built.arrays[index_name][:, 0] >= 0).mean()), 4)
    return metrics
