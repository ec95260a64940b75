"""The model artifact (engine/artifact.py): atomic write, mmap load, corrupt artifacts refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest

from omnix_recs.api.interceptors import status_for
from omnix_recs.engine.artifact import (
    ARRAY_NAMES,
    FORMAT_VERSION,
    in_memory_model,
    load_model,
    new_version,
    write_model,
)
from omnix_recs.engine.build import BuildParameters, BuiltModel
from omnix_recs.errors import AlreadyExistsError, ModelFormatError

N, K = 4, 3


def built_model() -> BuiltModel:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for index_name, score_name in (("cooc_idx", "cooc_sim"), ("fbt_idx", "fbt_score"), ("content_idx", "content_sim")):
        arrays[index_name] = np.array([[1, 2, -1], [0, -1, -1], [3, 0, 1], [-1, -1, -1]], dtype=np.int32)
        arrays[score_name] = np.where(arrays[index_name] >= 0, rng.random((N, K)), 0).astype(np.float32)
    for name in ("popularity", "trending", "repurchase_rate"):
        arrays[name] = rng.random(N).astype(np.float32)
    arrays["population_cycle_days"] = np.array([7, np.nan, 14, 30], dtype=np.float32)
    arrays["seasonal_lift"] = rng.uniform(0.5, 2, (N, 53)).astype(np.float32)
    arrays["taste_factors"] = rng.normal(0, 0.5, (N, 2)).astype(np.float32)
    return BuiltModel(
        item_ids=["a", "b", "c", "d"],
        arrays=arrays,
        data_as_of=datetime(2026, 11, 1, tzinfo=UTC),
        counts={"items": N, "customers": 2, "order_lines": 9, "baskets": 3},
        parameters=BuildParameters(neighbours=K),
    )


def test_round_trip(tmp_path: Path) -> None:
    built = built_model()
    version, path = write_model(built, tmp_path / "models", metrics={"build_seconds": 1.5})
    assert path == tmp_path / "models" / version
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [version]  # no staging left behind
    model = load_model(path)
    assert model.version == version and model.item_ids == built.item_ids
    assert model.index_of == {"a": 0, "b": 1, "c": 2, "d": 3}
    for name in ARRAY_NAMES:
        array = getattr(model, name)
        np.testing.assert_array_equal(array, built.arrays[name])
        assert isinstance(array, np.memmap) and not array.flags.writeable
    m = model.manifest
    assert m["format_version"] == FORMAT_VERSION and m["version"] == version
    assert m["data_as_of"] == "2026-11-01T00:00:00+00:00" and m["counts"]["items"] == N
    assert m["parameters"]["neighbours"] == K and m["parameters"]["trending_window_days"] == 14
    assert m["metrics"] == {"build_seconds": 1.5}


def test_in_memory_model_matches_the_loaded_one(tmp_path: Path) -> None:
    built = built_model()
    _, path = write_model(built, tmp_path)
    in_memory, loaded = in_memory_model(built, "v1"), load_model(path)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(getattr(in_memory, name), getattr(loaded, name))
    assert not in_memory.popularity.flags.writeable and built.arrays["popularity"].flags.writeable


def test_versions_sort_by_time_and_never_overwrite(tmp_path: Path) -> None:
    assert new_version(datetime(2026, 11, 25, 9, 30, tzinfo=UTC)).startswith("20261125T093000Z-")
    write_model(built_model(), tmp_path, version="v1")
    with pytest.raises(AlreadyExistsError):
        write_model(built_model(), tmp_path, version="v1")


def test_a_wrong_array_is_refused_before_writing(tmp_path: Path) -> None:
    built = built_model()
    built.arrays["popularity"] = built.arrays["popularity"].astype(np.float64)
    with pytest.raises(ModelFormatError, match="popularity is float64"):
        write_model(built, tmp_path)
    assert list(tmp_path.iterdir()) == []


def rewrite_json(name: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        (path / name).write_text(json.dumps(change(json.loads((path / name).read_text()))))

    return corrupt


def save_array(name: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda path: np.save(path / f"{name}.npy", array)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda p: (p / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda p: (p / "manifest.json").write_text("{not json"), "unreadable JSON"),
        (rewrite_json("manifest.json", lambda m: {**m, "format_version": 99}), "format_version 99"),
        (rewrite_json("item_ids.json", lambda ids: ids[:-1]), "counts 4 items, item_ids.json 3"),
        (rewrite_json("item_ids.json", lambda ids: [1, 2, 3, 4]), "list of product id strings"),
        (lambda p: (p / "trending.npy").unlink(), "trending.npy: missing"),
        (lambda p: (p / "trending.npy").write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
        (
            lambda p: (p / "seasonal_lift.npy").write_bytes((p / "seasonal_lift.npy").read_bytes()[:200]),
            "seasonal_lift.npy",
        ),
        (save_array("cooc_idx", np.zeros((N, K), dtype=np.int64)), "cooc_idx is int64"),
        (
            save_array("fbt_score", np.zeros((N, K + 1), dtype=np.float32)),
            r"fbt_score is float32\[4, 4\], expected float32\[4, 3\]",
        ),
        (save_array("content_idx", np.full((N, K), 7, dtype=np.int32)), "item indices outside -1..3"),
        (lambda p: (p / "taste_factors.npy").unlink(), "taste_factors.npy: missing"),
        (save_array("taste_factors", np.zeros((N + 1, 2), dtype=np.float32)), r"taste_factors is float32\[5, 2\]"),
        # Shapes fine, but the ranking kernel refuses the tables: refused at load, not at the first request.
        (save_array("taste_factors", np.full((N, 2), np.nan, dtype=np.float32)), "taste_factors must be finite"),
    ],
)
def test_corrupt_artifacts_raise_model_format_error(
    tmp_path: Path, corrupt: Callable[[Path], None], message: str
) -> None:
    _, path = write_model(built_model(), tmp_path)
    corrupt(path)
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_a_format_1_artifact_loads_without_taste_factors(tmp_path: Path) -> None:
    _, path = write_model(built_model(), tmp_path)
    (path / "taste_factors.npy").unlink()
    rewrite_json("manifest.json", lambda m: {**m, "format_version": 1})(path)
    model = load_model(path)
    assert model.taste_factors.shape == (N, 0) and not model.taste_factors.flags.writeable
    np.testing.assert_array_equal(model.popularity, built_model().arrays["popularity"])


def test_no_artifact_at_all(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="is this a model artifact"):
        load_model(tmp_path / "nowhere")


def test_a_corrupt_artifact_is_a_failed_precondition_not_an_internal_error() -> None:
    # The request was sound; the version it names cannot be served until rebuilt or re-uploaded.
    code, message = status_for(
        ModelFormatError("v1/trending.npy: missing"), "/omnix.v1.AdminService/ActivateModel", "r1"
    )
    assert (code, message) == (grpc.StatusCode.FAILED_PRECONDITION, "v1/trending.npy: missing")
