"""The purchase journal: the lines `add_purchases` wrote, for copies of the history to replay.

A copy (the training snapshot, store/snapshot.py) taken at a watermark asks for the lines
written since; without a journal the only answer is a whole-table Scan. Entries live in
`purchase-journal`, one item per (customer, shard, sequence, part): the customer's lines of one
write, zlib-compressed JSON, under hash key `customerId` (an erasure deletes them with one
consistent Query) and sort key `<shard, 2 digits>#<sequence, 20 digits>#<part>`.

Sequences are sharded: `JOURNAL_SHARDS` counters, each a row of the journal table under a hash
key (`#shard#<k>`) no customer id can take. A write takes one shard (the threads of a process
each their own, processes each from a random first one) and moves its counter in the same
TransactWriteItems that puts the entries: a conditional update from the value just read,
retried when another process moved it first. So a reader that sees shard k at S finds every
entry of shard k up to S, and a write cut short leaves no entry without its sequence or the
reverse; the watermark's `shards` are the counters, its `sequence` their sum. One shard's
writes are serial (a transaction at a time, about 3-6 ms on dynoxide), the shards are not.
Replaying is one parallel Scan for the entries past the copy's position in each shard and,
in the same pass, those the journal no longer keeps (it keeps the newest `SHARD_SEQUENCES`
writes of each shard), which the replay deletes after reading; a copy more than four fifths of
that behind is rebuilt from the purchase table (the margin keeps a concurrent trim off what a
replay still reads). Entries of the single sequence that came before the shards carry no
shard: never replayed (a copy that old is rebuilt once), deleted by the next trim.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.store.dynamodb.codec import parse_timestamp, wire_string

# Independent sequences: writers on different shards never wait for each other.
JOURNAL_SHARDS = 16
# Writes (`add_purchases` calls) the journal keeps of each shard; replaying costs a Scan of all
# of them. Per shard, so that a lone writer (one shard) reaches as far back as many writers; the
# journal grows with the shards in use, i.e. with the writers' concurrency.
SHARD_SEQUENCES = 50_000
# Lines per journal item: a few tens of KB compressed, far below DynamoDB's 400 KB item limit.
PART_LINES = 2_000
SEQUENCE_ATTRIBUTE = "sequence"
SHARD_ATTRIBUTE = "shard"
LINES_ATTRIBUTE = "lines"
COUNTER_ATTRIBUTE = "shardSequence"  # of a shard's counter row (entries have none)


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


def sort_key(shard: int, sequence: int, part: int) -> str:
    return f"{shard:02d}#{sequence:020d}#{part:05d}"


def journal_item(customer_id: str, shard: int, sequence: int, part: int, payload: bytes) -> dict[str, Any]:
    return {
        "customerId": wire_string(customer_id),
        "sk": wire_string(sort_key(shard, sequence, part)),
        SHARD_ATTRIBUTE: {"N": str(shard)},
        SEQUENCE_ATTRIBUTE: {"N": str(sequence)},
        LINES_ATTRIBUTE: {"B": payload},
    }


def counter_key(shard: int) -> dict[str, Any]:
    """The key of shard `shard`'s counter row ("#" starts no customer id)."""
    return {"customerId": wire_string(f"#shard#{shard:02d}"), "sk": wire_string("#sequence")}


def positions(counters: Iterable[Mapping[str, Any]]) -> tuple[int, ...]:
    """Each shard's sequence from its counter row (0 for a shard never written)."""
    found = {row["customerId"]["S"]: int(row[COUNTER_ATTRIBUTE]["N"]) for row in counters if COUNTER_ATTRIBUTE in row}
    return tuple(found.get(counter_key(k)["customerId"]["S"], 0) for k in range(JOURNAL_SHARDS))


def columns_of(items: Iterable[Mapping[str, Any]]) -> PurchaseColumns:
    """The lines of journal items, in the order each shard wrote them (shard, sequence, part)."""
    ordered = sorted(items, key=lambda item: item["sk"]["S"])
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
