"""The artifact's "shoppers like you" table: written, loaded memory-mapped, checked, and absent
from older formats (which load knowing no customers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_artifact import N, built_model

from omnix_recs.engine.artifact import LIKE_YOU, load_model, write_model
from omnix_recs.engine.build import BuiltModel
from omnix_recs.errors import ModelFormatError


def with_customers() -> BuiltModel:
    built = built_model()
    built.arrays.update(
        like_you_customers=np.array(["ann", "bo"]),
        like_you_indptr=np.array([0, 2, 3], dtype=np.int64),
        like_you_items=np.array([3, 1, 0], dtype=np.int32),
        like_you_scores=np.array([0.5, 0.25, 0.75], dtype=np.float32),
    )
    return built


def test_the_table_round_trips_and_answers_by_customer(tmp_path: Path) -> None:
    _, path = write_model(with_customers(), tmp_path)
    model = load_model(path)
    items, scores = model.shoppers_like("ann")
    assert items.tolist() == [3, 1] and scores.tolist() == [0.5, 0.25]
    assert model.shoppers_like("bo")[0].tolist() == [0]
    assert len(model.shoppers_like("nobody")[0]) == 0
    assert isinstance(model.like_you_items, np.memmap) and not model.like_you_items.flags.writeable


def test_a_model_built_without_customers_has_an_empty_table(tmp_path: Path) -> None:
    _, path = write_model(built_model(), tmp_path)
    model = load_model(path)
    assert model.like_you_indptr.tolist() == [0] and len(model.shoppers_like("ann")[0]) == 0


def test_a_format_2_artifact_loads_knowing_no_customers(tmp_path: Path) -> None:
    _, path = write_model(with_customers(), tmp_path)
    for name in LIKE_YOU:
        (path / f"{name}.npy").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    model = load_model(path)
    assert len(model.shoppers_like("ann")[0]) == 0 and model.taste_factors.shape[0] == N


def save(name: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.save(path / f"{name}.npy", array)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (save("like_you_items", np.array([3, 1, 9], dtype=np.int32)), "item indices outside 0..3"),
        (save("like_you_indptr", np.array([0, 4, 3], dtype=np.int64)), "never decrease"),
        (save("like_you_indptr", np.array([0, 2], dtype=np.int64)), r"like_you_indptr is int64\[2\]"),
        (save("like_you_scores", np.zeros(2, dtype=np.float32)), "like_you_scores is float32"),
        (save("like_you_customers", np.array([1, 2])), "customer ids"),
        (lambda p: (p / "like_you_items.npy").unlink(), "like_you_items.npy: missing"),
    ],
)
def test_a_broken_table_is_refused_at_load(tmp_path: Path, corrupt: Callable[[Path], None], message: str) -> None:
    _, path = write_model(with_customers(), tmp_path)
    corrupt(path)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)
