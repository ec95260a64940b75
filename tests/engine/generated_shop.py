"""A small generated shop imported into SQLite, for module fixtures that copy it per test."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import import_instacart
from omnix_recs.store import open_store


def generated_shop_db(root: Path, **shop: int) -> Path:
    """`generate_instacart(**shop)` imported into `root/omnix.db` as of 2026-11-01."""
    generate_instacart(root / "data", **shop)  # type: ignore[arg-type]
    store = open_store(f"sqlite:///{root / 'omnix.db'}")
    try:
        import_instacart(store, root / "data", as_of=date(2026, 11, 1))
    finally:
        store.close()
    return root / "omnix.db"
