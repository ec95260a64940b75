"""Train a model version: tune the blends, build, write the artifact, record it, activate it.

Called by `omnix train`, and by AdminService.RetrainModel. What ships must win on the data it
was given, not on the shop the defaults were tuned on: training first holds out shoppers'
latest baskets, tunes the blends on them and compares them with the baselines
(engine/tuning.py), meanwhile builds from all the data, and ships the tuned blends inside the
version; activation then refuses a version that validated badly (engine/registry.py). From
async code run it in a worker thread (`asyncio.to_thread`): the heavy parts release the GIL.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

import numpy as np

from omnix_recs import _core, heap, progress
from omnix_recs.config import Settings
from omnix_recs.domain.models import Product
from omnix_recs.engine import registry
from omnix_recs.engine.artifact import NEIGHBOUR_TABLES, LoadedModel, in_memory_model
from omnix_recs.engine.artifact_store import ModelDestination
from omnix_recs.engine.build import (
    BuildParameters,
    BuiltModel,
    build_from_lines,
    content_neighbours,
    read_training_data,
)
from omnix_recs.engine.holdout import MIN_TRIPS
from omnix_recs.engine.matrix import PurchaseLines
from omnix_recs.engine.tuning import TUNING_SHOPPERS, Validation, validate
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store import snapshot as training_snapshot
from omnix_recs.store.base import ModelRecord, Store

log = logging.getLogger(__name__)


@heap.reusing_freed_memory()  # the build's arrays of tens of millions of lines, reused
def train_model(
    store: Store,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    activate: bool = True,
    parameters: BuildParameters = BuildParameters(),
    tune: bool = True,
    force: bool = False,
    tuning_shoppers: int = TUNING_SHOPPERS,
    seed: int = 0,
) -> ModelRecord:
    """Build from the store (purchases before `as_of`, when given), write the artifact under
    `settings.model_dir` (a directory or S3, see engine/artifact_store.py), save its record and,
    unless `activate=False`, make it the active version. Returns the saved record.

    `tune`: first tune the blends on the latest basket of up to `tuning_shoppers` shoppers and
    validate them on as many others (seeded, `tuning.validate`), and ship them, with their
    validation metrics in the record; without enough history the version ships the default
    blends, and says so in its notes (`registry.tuned_settings`). Activation then applies
    `registry.activation_refusal` unless `force`: a refused version is saved, inactive, and
    `registry.ActivationRefusedError` (carrying its record) says why."""
    if tune and tuning_shoppers < 1:
        raise InvalidArgumentError("tuning_shoppers", f"must be at least 1, got {tuning_shoppers}")
    destination = ModelDestination(settings)  # a malformed OMNIX_MODEL_DIR fails before the build
    started = time.perf_counter()
    with progress.stages("train", ("read purchases", "tune", "build")) as stage:
        stage.begin("read purchases")
        snapshot_at = training_snapshot.location(store, settings.snapshot_dir, settings.store_url)
        products, lines = read_training_data(store, as_of=as_of, snapshot_at=snapshot_at)
        stage_seconds = {"read_purchases": round(time.perf_counter() - started, 3)}
        validation: Validation | None = None
        if tune:
            stage.begin("tune")
            # The content table depends on the catalog alone: one serves both builds.
            content_started = time.perf_counter()
            content = content_neighbours(products, lines.item_ids, parameters)
            stage_seconds["content"] = round(time.perf_counter() - content_started, 3)
            # The served build does not depend on what tuning chooses (the blends ship beside
            # it), so it runs meanwhile: tuning's Python steps leave a core idle.
            with ThreadPoolExecutor(1, thread_name_prefix="omnix-build") as pool:
                building = pool.submit(_served_build, lines, products, parameters, content)
                validation = validate(
                    store,
                    lines,
                    products,
                    lambda kept, judged: _validation_model(kept, judged, products, parameters, content),
                    max_shoppers=tuning_shoppers,
                    seed=seed,
                )
                stage.begin("build")
                built = building.result()
        else:
            stage.begin("build")
            built = build_from_lines(lines, products, parameters)
    built = replace(built, stage_seconds={**stage_seconds, **built.stage_seconds})
    metrics = build_metrics(built, seconds=time.perf_counter() - started)
    blends = validation.blends if validation else None
    if validation is not None:
        metrics.update(validation.metrics())
        tuning = (
            f"tuned on {validation.tuning_customers} shoppers' latest baskets, "
            f"validated on {validation.customers} others'"
        )
        reranked = [str(s) for s, b in validation.blends.items() if b.reranker is not None]
        if reranked:
            tuning += f"; learned re-ranking kept for {', '.join(reranked)}"
    elif tune:
        tuning = f"default blends: too little history to tune (fewer than 2 customers have {MIN_TRIPS} or more trips)"
        log.warning("%s", tuning)
    else:
        tuning = "default blends: trained without tuning"
    saved = destination.save(
        built,
        metrics,
        blends=blends,
        habit_decay=validation.habit_decay if validation else None,
        validation=validation.to_json() if validation else None,
    )
    record = ModelRecord(
        version=saved.version,
        created_at=saved.created_at,
        artifact_uri=saved.artifact_uri,
        metrics=metrics,
    )
    refusal = None
    if activate and not force:
        refusal = registry.activation_refusal(record, store.active_model())
    notes = registry.record_notes(blends, tuning, refused=refusal)
    record = replace(record, active=activate and refusal is None, notes=notes)
    try:
        store.save_model(record)
    except BaseException:
        destination.discard(saved)
        raise
    log.info(
        "trained model %s in %.1f s (%s; %s)",
        saved.version,
        metrics["build_seconds"],
        "active" if record.active else "inactive",
        tuning,
    )
    if refusal is not None:
        raise registry.ActivationRefusedError(
            record, f"model {record.version} was saved but not activated: {refusal} (force to activate it)"
        )
    return record


def _served_build(
    lines: PurchaseLines, products: list[Product], parameters: BuildParameters, content: tuple[np.ndarray, np.ndarray]
) -> BuiltModel:
    """The model that ships, built in the core's background pool (gil.rs): beside the validation,
    which takes longer and is what training waits for, it takes the cores the validation leaves
    idle and yields them when the validation wants them."""
    _core.use_background_pool(True)
    try:
        return build_from_lines(lines, products, parameters, content=content)
    finally:
        _core.use_background_pool(False)


def _validation_model(
    lines: PurchaseLines,
    judged: np.ndarray,
    products: list[Product],
    parameters: BuildParameters,
    content: tuple[np.ndarray, np.ndarray],
) -> LoadedModel:
    """The model the blends are tuned on: the production build, kept in memory, with "shoppers
    like you" rows for the `judged` shoppers (customer codes) alone: no one else is ranked."""
    built = build_from_lines(lines, products, parameters, like_you_for=judged, content=content)
    return in_memory_model(built, "validation")


def build_metrics(built: BuiltModel, *, seconds: float) -> dict[str, float]:
    """What the build can say about itself: sizes, time per stage, and the share of items
    that got at least one neighbour in each table (offline quality comes from validation)."""
    metrics: dict[str, float] = {"build_seconds": round(seconds, 3)}
    metrics.update({name: float(count) for name, count in built.counts.items()})
    metrics.update({f"seconds_{stage}": s for stage, s in built.stage_seconds.items()})
    for index_name, _ in NEIGHBOUR_TABLES:
        table = index_name.removesuffix("_idx")
        metrics[f"{table}_coverage"] = round(float((built.arrays[index_name][:, 0] >= 0).mean()), 4)
    return metrics
