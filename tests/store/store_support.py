"""Helpers the store tests share: order lines at fixed moments, and a DynamoDB import's checkpoint."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from omnix_recs.domain.models import Purchase
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb.codec import IMPORT_CHECKPOINT_ROW

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def line(customer: str, order: str, product: str, days: float, quantity: int = 1, store_id: str = "") -> Purchase:
    """An order line at 2.50 a unit, `days` after `T0`."""
    return Purchase(customer, order, product, quantity, 2.5, T0 + timedelta(days=days), store_id)


def checkpoint(store: DynamoStore) -> dict[str, Any] | None:
    """The resumable import's checkpoint row, read consistently (None when there is none)."""
    answer = store.db.call(
        "get_item",
        TableName=store.table_names["models"],
        Key={"version": {"S": IMPORT_CHECKPOINT_ROW}},
        ConsistentRead=True,
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


def kill_when_checkpointed(
    process: subprocess.Popen[bytes], store: DynamoStore, reached: Callable[[dict[str, Any]], bool]
) -> None:
    """SIGKILL a running import once its checkpoint row satisfies `reached` (within 120 s), so
    a test can resume it from there; fails when the import ends first."""
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            saved = checkpoint(store)
            if saved is not None and reached(saved):
                break
            time.sleep(0.2)
        assert process.poll() is None, "the import ended before it could be killed: give it more rows"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
