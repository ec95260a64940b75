"""Erased customers blanked out of every kept model version (engine/model_erasure.py): in the
model directory, in S3 and in a host's cache of S3 versions; every other row byte-identical,
every version still loading, a scrub cut short leaving a loadable version and the row found
again, and versions built after an id was registered again left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from local_s3 import LocalS3
from test_artifact import built_model

from omnix_recs.config import Settings
from omnix_recs.customers import CustomerService
from omnix_recs.domain.models import Customer
from omnix_recs.engine import model_erasure, s3_artifacts
from omnix_recs.engine.artifact import LIKE_YOU, LoadedModel, load_model, write_model
from omnix_recs.engine.artifact_store import ArtifactReader, ModelDestination
from omnix_recs.engine.build import BuiltModel
from omnix_recs.engine.model_erasure import ModelFiles
from omnix_recs.s3 import S3Location, s3_client
from omnix_recs.store.base import ModelRecord
from omnix_recs.store.sqlite import SqliteStore

CUSTOMERS = ["ann", "bo", "cy"]
ERASED = "bo"


def with_customers() -> BuiltModel:
    built = built_model()
    built.arrays.update(
        like_you_customers=np.array(CUSTOMERS),
        like_you_indptr=np.array([0, 2, 5, 6], dtype=np.int64),
        like_you_items=np.array([3, 1, 0, 2, 3, 1], dtype=np.int32),
        like_you_scores=np.array([0.5, 0.25, 0.9, 0.8, 0.7, 0.75], dtype=np.float32),
    )
    return built


def rows(model: LoadedModel) -> dict[str, tuple[bytes, bytes]]:
    """Each named customer's row, as the bytes of its products and scores."""
    return {
        customer: tuple(array.tobytes() for array in model.shoppers_like(customer))  # type: ignore[misc]
        for customer in model.like_you_customers.tolist()
        if customer
    }


def assert_erased(model: LoadedModel, before: LoadedModel) -> None:
    assert ERASED not in model.like_you_customers.tolist()
    assert [len(a) for a in model.shoppers_like(ERASED)] == [0, 0]
    assert rows(model) == {c: r for c, r in rows(before).items() if c != ERASED}
    # Same shapes: the erased row's cells are zero, nothing else moved.
    start, stop = int(before.like_you_indptr[1]), int(before.like_you_indptr[2])
    assert not model.like_you_items[start:stop].any() and not model.like_you_scores[start:stop].any()
    assert np.array_equal(model.like_you_indptr, before.like_you_indptr)


@pytest.fixture
def store() -> Iterator[SqliteStore]:
    store = SqliteStore.temporary()
    yield store
    store.close()


def record(store: SqliteStore, version: str, created_at: datetime, uri: str, *, active: bool = False) -> None:
    store.save_model(ModelRecord(version, created_at, uri, {}, active=active))


def local_versions(store: SqliteStore, model_dir: Path, count: int = 2) -> list[Path]:
    """`count` versions with the table in `model_dir`, recorded, the newest active."""
    paths = []
    for n in range(count):
        version, path = write_model(with_customers(), model_dir, version=f"v{n}")
        created = datetime.fromisoformat(json.loads((path / "manifest.json").read_text())["created_at"])
        record(store, version, created, str(path), active=n == count - 1)
        paths.append(path)
    return paths


def copies(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_every_version_in_the_model_directory_loses_the_row_and_keeps_the_others(
    store: SqliteStore, tmp_path: Path
) -> None:
    model_dir = tmp_path / "models"
    older, active = local_versions(store, model_dir)
    unrecorded, _ = write_model(with_customers(), model_dir, version="v-unrecorded")  # recorded later, or pruned
    before = {path: load_model(path) for path in (older, active, model_dir / unrecorded)}
    untouched = {
        path: {n: b for n, b in copies(path).items() if n.removesuffix(".npy") not in LIKE_YOU} for path in before
    }

    report = ModelFiles(str(model_dir), tmp_path / "cache").erase(store, {ERASED: None})

    assert sorted(report.rewritten) == sorted(str(path.resolve()) for path in before)
    for path, old in before.items():
        assert_erased(load_model(path), old)
        assert {n: b for n, b in copies(path).items() if n.removesuffix(".npy") not in LIKE_YOU} == untouched[path]
        assert sorted(p.name for p in path.iterdir()) == sorted(copies(path))  # no scratch files left
        assert sorted(p.name for p in path.iterdir() if p.name.startswith(".")) == []
    # A second run finds nothing to do.
    assert ModelFiles(str(model_dir), tmp_path / "cache").erase(store, {ERASED: None}).rewritten == []


def test_a_process_that_loaded_the_version_keeps_its_mapping_and_files_are_replaced_not_patched(
    store: SqliteStore, tmp_path: Path
) -> None:
    (path,) = local_versions(store, tmp_path / "models", count=1)
    serving = load_model(path)  # a server process that mapped the files before the erasure
    served_before = rows(serving)
    ModelFiles(str(tmp_path / "models"), tmp_path / "cache").erase(store, {ERASED: None})
    # Its mapping is of the old files (renamed over, never written into): consistent, not torn.
    assert rows(serving) == served_before
    assert ERASED not in load_model(path).like_you_customers.tolist()


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("replaced_before_the_crash", [0, 1, 2])
def test_a_scrub_cut_short_leaves_a_loadable_version_that_still_names_the_customer(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replaced_before_the_crash: int
) -> None:
    (path,) = local_versions(store, tmp_path / "models", count=1)
    before = load_model(path)
    real_replace = model_erasure.os.replace
    calls = iter(range(100))

    def crashing_replace(source: Any, target: Any) -> None:
        if next(calls) == replaced_before_the_crash:
            raise Interrupted("killed mid-rewrite")
        real_replace(source, target)

    monkeypatch.setattr(model_erasure.os, "replace", crashing_replace)
    files = ModelFiles(str(tmp_path / "models"), tmp_path / "cache")
    with pytest.raises(Interrupted):
        files.erase(store, {ERASED: None})

    interrupted = load_model(path)  # still loads: shapes never change
    assert ERASED in interrupted.like_you_customers.tolist()  # so the next run finds it again
    assert {c: r for c, r in rows(interrupted).items() if c != ERASED} == {
        c: r for c, r in rows(before).items() if c != ERASED
    }
    assert not [p.name for p in path.iterdir() if p.name.startswith(".")]

    monkeypatch.setattr(model_erasure.os, "replace", real_replace)
    assert files.erase(store, {ERASED: None}).rewritten == [str(path.resolve())]
    assert_erased(load_model(path), before)


def test_versions_built_after_the_id_was_registered_again_are_left_alone(store: SqliteStore, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    (older,) = local_versions(store, model_dir, count=1)
    registered_again = datetime.now(UTC)
    _, newer = write_model(with_customers(), model_dir, version="v-after")
    newer_files = copies(newer)

    ModelFiles(str(model_dir), tmp_path / "cache").erase(store, {ERASED: registered_again})

    assert ERASED not in load_model(older).like_you_customers.tolist()
    assert copies(newer) == newer_files  # the row there may be the new customer's own


@pytest.mark.parametrize("customer_id", ["bob", "b", "", "annie"])
def test_ids_the_table_does_not_hold_change_nothing(store: SqliteStore, tmp_path: Path, customer_id: str) -> None:
    """Longer ids than the table's fixed width are not cut to it ("annie" is not "ann")."""
    (path,) = local_versions(store, tmp_path / "models", count=1)
    files = copies(path)
    assert ModelFiles(str(tmp_path / "models"), tmp_path / "cache").erase(store, {customer_id: None}).rewritten == []
    assert copies(path) == files


def test_a_version_without_the_table_is_skipped(store: SqliteStore, tmp_path: Path) -> None:
    (path,) = local_versions(store, tmp_path / "models", count=1)
    for name in LIKE_YOU:
        (path / f"{name}.npy").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    assert ModelFiles(str(tmp_path / "models"), tmp_path / "cache").erase(store, {ERASED: None}).rewritten == []


# --- S3 -------------------------------------------------------------------------------------------


@pytest.fixture
def s3_versions(local_s3: LocalS3, bucket: str, store: SqliteStore, tmp_path: Path) -> tuple[Settings, list[str]]:
    """Two versions uploaded (the trainer's cache holds both), recorded, the newer active."""
    settings = Settings(model_dir=local_s3.url(bucket), model_cache_dir=str(tmp_path / "trainer-cache"))
    uris = []
    for n in range(2):
        saved = ModelDestination(settings).save(with_customers(), {})
        record(store, saved.version, saved.created_at, saved.artifact_uri, active=n == 1)
        uris.append(saved.artifact_uri)
    return settings, uris


def test_every_s3_version_and_the_hosts_cached_copies_lose_the_row(
    s3_versions: tuple[Settings, list[str]], store: SqliteStore, local_s3: LocalS3, bucket: str, tmp_path: Path
) -> None:
    settings, uris = s3_versions
    before = {uri: ArtifactReader(tmp_path / "before").open(uri) for uri in uris}
    keys = local_s3.keys(bucket)

    report = ModelFiles.from_settings(settings).erase(store, {ERASED: None})

    cache = Path(settings.model_cache_dir)
    assert sorted(report.rewritten) == sorted(
        [*uris, *(str((cache / S3Location.parse(u).name).resolve()) for u in uris)]
    )
    assert local_s3.keys(bucket) == keys  # the same objects, rewritten; nothing left over
    for uri, old in before.items():
        location = S3Location.parse(uri)
        contents = s3_artifacts.check(location)  # sizes as recorded
        another_host = ArtifactReader(tmp_path / f"fresh-{location.name}")  # downloads, checking every hash
        assert_erased(another_host.open(uri), old)
        assert_erased(load_model(cache / location.name), old)  # this host's cached copy
        for name, entry in contents.items():
            assert s3_artifacts.measure(tmp_path / f"fresh-{location.name}" / location.name / name) == entry
    assert [p.name for p in cache.iterdir() if p.is_dir() and p.name.startswith(".")] == []  # no scratch left


def test_a_download_that_meets_a_rewrite_starts_again(
    s3_versions: tuple[Settings, list[str]], store: SqliteStore, tmp_path: Path
) -> None:
    settings, uris = s3_versions
    location = S3Location.parse(uris[0])
    before = ArtifactReader(tmp_path / "before").open(uris[0])
    events = s3_client(location).meta.events
    erased: list[bool] = []

    def erase_midway(params: dict[str, Any], **_: Any) -> None:
        # The other host's download has read contents.json; the erasure now rewrites the files.
        if params["Key"].endswith("cooc_idx.npy") and not erased:
            erased.append(True)
            ModelFiles.from_settings(settings).erase(store, {ERASED: None})

    events.register("provide-client-params.s3.GetObject", erase_midway)
    try:
        model = ArtifactReader(tmp_path / "other-host").open(uris[0])
    finally:
        events.unregister("provide-client-params.s3.GetObject", erase_midway)
    assert erased and ERASED not in model.like_you_customers.tolist()
    assert_erased(model, before)


def test_an_s3_rewrite_cut_short_still_downloads_and_is_finished_by_the_next_run(
    s3_versions: tuple[Settings, list[str]], store: SqliteStore, tmp_path: Path
) -> None:
    settings, uris = s3_versions
    before = ArtifactReader(tmp_path / "before").open(uris[0])
    events = s3_client(S3Location.parse(uris[0])).meta.events

    def killed_before_the_ids(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("like_you_customers.npy"):
            raise Interrupted("killed mid-rewrite")

    events.register("provide-client-params.s3.PutObject", killed_before_the_ids)
    try:
        with pytest.raises(Interrupted):
            ModelFiles.from_settings(settings).erase(store, {ERASED: None})
    finally:
        events.unregister("provide-client-params.s3.PutObject", killed_before_the_ids)

    for n, uri in enumerate(uris):  # new products and scores, old ids: every hash still checks out
        half_done = ArtifactReader(tmp_path / f"half-{n}").open(uri)
        assert ERASED in half_done.like_you_customers.tolist()
        assert {c: r for c, r in rows(half_done).items() if c != ERASED} == {
            c: r for c, r in rows(before).items() if c != ERASED
        }

    ModelFiles.from_settings(settings).erase(store, {ERASED: None})
    for n, uri in enumerate(uris):
        location = S3Location.parse(uri)
        assert_erased(ArtifactReader(tmp_path / f"done-{n}").open(uri), before)
        assert all(not entry.also for entry in s3_artifacts.check(location).values())


def test_another_hosts_cached_copies_follow_the_rewrite(
    s3_versions: tuple[Settings, list[str]], store: SqliteStore, tmp_path: Path
) -> None:
    settings, uris = s3_versions
    other_cache = tmp_path / "other-host-cache"
    before = {uri: ArtifactReader(other_cache).open(uri) for uri in uris}  # downloaded there
    other_host = ModelFiles(settings.model_dir, other_cache)
    assert other_host.follow_rewrites() == []  # up to date: two small GETs per copy, no download

    ModelFiles.from_settings(settings).erase(store, {ERASED: None})  # on the training host
    for uri in uris:
        assert ERASED in load_model(other_cache / S3Location.parse(uri).name).like_you_customers.tolist()

    assert sorted(other_host.follow_rewrites()) == sorted(S3Location.parse(uri).name for uri in uris)
    for uri, old in before.items():
        assert_erased(load_model(other_cache / S3Location.parse(uri).name), old)
    assert other_host.follow_rewrites() == []
    assert sorted(p.name for p in other_cache.iterdir() if p.is_dir() and p.name.startswith(".")) == []
    # The training host scrubbed its own copies: they match without a download.
    assert ModelFiles.from_settings(settings).follow_rewrites() == []


def test_a_versioned_bucket_keeps_no_older_version_of_a_rewritten_file(
    local_s3: LocalS3, bucket: str, store: SqliteStore, tmp_path: Path
) -> None:
    local_s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    settings = Settings(model_dir=local_s3.url(bucket), model_cache_dir=str(tmp_path / "cache"))
    saved = ModelDestination(settings).save(with_customers(), {})
    record(store, saved.version, saved.created_at, saved.artifact_uri, active=True)

    ModelFiles.from_settings(settings).erase(store, {ERASED: None})

    versions = local_s3.client.list_object_versions(Bucket=bucket)["Versions"]
    rewritten = [v for v in versions if v["Key"].rsplit("/", 1)[-1] in (*model_erasure.REWRITTEN, "contents.json")]
    assert len(rewritten) == 4 and all(v["IsLatest"] for v in rewritten)
    assert ERASED not in ArtifactReader(tmp_path / "fresh").open(saved.artifact_uri).like_you_customers.tolist()


def test_an_erasure_through_the_customer_service_scrubs_s3_and_the_cache(
    s3_versions: tuple[Settings, list[str]], store: SqliteStore, tmp_path: Path
) -> None:
    settings, uris = s3_versions
    store.create_customer(Customer(ERASED, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)))
    before = {uri: ArtifactReader(tmp_path / "before").open(uri) for uri in uris}
    service = CustomerService(store, publish=lambda *_: None, model_files=ModelFiles.from_settings(settings))
    service.erasure_sweep_after_s = None

    service.erase(ERASED)
    assert service.finish_erasures() == 1

    for n, (uri, old) in enumerate(before.items()):
        assert_erased(ArtifactReader(tmp_path / f"fresh-{n}").open(uri), old)
        assert_erased(load_model(Path(settings.model_cache_dir) / S3Location.parse(uri).name), old)
