"""The purchase journal: the lines `add_purchases` wrote, for copies of the history to replay.

A copy (the training snapshot, store/snapshot.py) taken at watermark (epoch, S) asks for the
lines written since; without a journal the only answer is a whole-table Scan. Entries live in
`purchase-journal`, one item per (customer, sequence, part): the customer's lines of one write,
zlib-compressed JSON, under hash key `customerId` (an erasure deletes them with one consistent
Query) and sort key `<sequence, 20 digits>#<part>`.

The sequence is the watermark row's `purchaseSequence`, and it moves in the same
TransactWriteItems that puts the entries (a conditional update from the value just read, retried
when another writer moved it first; threads of one process take turns). So a reader that sees
sequence S finds every entry up to S, and a write cut short leaves no entry without its
sequence or the reverse. The price: journaled writes are serial per table set, one
transaction at a time (about 5-6 ms each on dynoxide, so some 170 a second). Replaying is a
parallel Scan of the journal, which therefore keeps only the newest `JOURNAL_SEQUENCES` writes:
a copy further behind is rebuilt from the purchase table.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.store.dynamodb.codec import parse_timestamp, wire_string

# Writes (`add_purchases` calls) the journal keeps; replaying costs a Scan of all of them.
JOURNAL_SEQUENCES = 50_000
# Lines per journal item: a few tens of KB compressed, far below DynamoDB's 400 KB item limit.
PART_LINES = 2_000
SEQUENCE_ATTRIBUTE = "sequence"
LINES_ATTRIBUTE = "lines"


def journal_parts(lines: Sequence[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
    """(customer id, compressed lines) per customer of `lines` (wire-format purchase items),
    at most `PART_LINES` lines each; keys come later, once the write has its sequence."""
    by_customer: dict[str, list[list[Any]]] = {}
    for item in lines:
        by_customer.setdefault(item["customerId"]["S"], []).append(
            [
                item["orderId"]["S"],
                item["productId"]["S"],
                int(item["quantity"]["N"]),
                float(item["unitPrice"]["N"]),
                int(parse_timestamp(item["purchaseDate"]["S"]).timestamp()),
                item["storeId"]["S"] if "storeId" in item else "",
            ]
        )
    parts: list[tuple[str, bytes]] = []
    for customer_id, rows in by_customer.items():
        for start in range(0, len(rows), PART_LINES):
            payload = json.dumps(rows[start : start + PART_LINES], separators=(",", ":")).encode()
            parts.append((customer_id, zlib.compress(payload, 6)))
    return parts


def sort_key(sequence: int, part: int) -> str:
    return f"{sequence:020d}#{part:05d}"


def journal_item(customer_id: str, sequence: int, part: int, payload: bytes) -> dict[str, Any]:
    return {
        "customerId": wire_string(customer_id),
        "sk": wire_string(sort_key(sequence, part)),
        SEQUENCE_ATTRIBUTE: {"N": str(sequence)},
        LINES_ATTRIBUTE: {"B": payload},
    }


def columns_of(items: Iterable[Mapping[str, Any]]) -> PurchaseColumns:
    """The lines of journal items, in the order they were written (sequence, then part)."""
    ordered = sorted(items, key=lambda item: (int(item[SEQUENCE_ATTRIBUTE]["N"]), item["sk"]["S"]))
    columns = PurchaseColumns([], [], [], [], [], [], [])
    for item in ordered:
        customer_id = item["customerId"]["S"]
        for order_id, product_id, quantity, price, at, store_id in json.loads(
            zlib.decompress(item[LINES_ATTRIBUTE]["B"])
        ):
            columns.customer_ids.append(customer_id)
            columns.order_ids.append(order_id)
            columns.product_ids.append(product_id)
            columns.quantities.append(quantity)
            columns.unit_prices.append(price)
            columns.purchased_at.append(at)
            columns.store_ids.append(store_id)
    return columns
