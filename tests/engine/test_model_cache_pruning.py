"""A host's model cache keeps the versions used last and removes the rest."""

from __future__ import annotations

import os
from pathlib import Path

from omnix_recs.engine.artifact_store import prune_cache


def cached_version(cache: Path, name: str, used_at: float) -> Path:
    path = cache / name
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")
    os.utime(path, (used_at, used_at))
    return path


def test_the_versions_used_last_are_kept_and_the_others_removed(tmp_path: Path) -> None:
    for n, name in enumerate(["v1", "v2", "v3", "v4", "v5"]):
        cached_version(tmp_path, name, used_at=1_000_000 + n)
    os.utime(tmp_path / "v1", (2_000_000, 2_000_000))  # v1 was rolled back to: used most recently

    assert sorted(prune_cache(tmp_path, keep=3)) == ["v2", "v3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1", "v4", "v5"]


def test_only_complete_versions_are_counted_or_removed(tmp_path: Path) -> None:
    for n in range(4):
        cached_version(tmp_path, f"v{n}", used_at=1_000_000 + n)
    (tmp_path / ".v9.staging").mkdir()  # a download in progress
    (tmp_path / "notes").mkdir()  # something else kept there: no manifest, not a version
    (tmp_path / "README").write_text("")

    assert prune_cache(tmp_path, keep=2) == ["v1", "v0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".v9.staging", "README", "notes", "v2", "v3"]


def test_a_missing_cache_prunes_nothing(tmp_path: Path) -> None:
    assert prune_cache(tmp_path / "absent") == []
