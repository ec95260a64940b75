"""The purchase journal every store keeps for the training snapshot (`purchases_appended_since`).

On every store (`store` fixture): the lines `add_purchases` wrote since a watermark come back
from the journal, small and large writes alike, and the snapshot adds them without a rebuild;
an erasure takes the customer's journal entries with it. On DynamoDB (moto and dynoxide; the
concurrent writers on dynoxide only): a shard's sequence moves in the journal's transaction, so
concurrent writers (threads on their own shards, processes racing for one) and a writer that
lost the race each get their own, and a reader replaying while they write reads every line
once; the journal keeps `SHARD_SEQUENCES` writes a shard; a large write cut short between its
lines and its journal moves the epoch. Watermarks read back as they are written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_server import dynamo_store, dynoxide_store
from store_support import T0, line

from omnix_recs.domain.models import Purchase
from omnix_recs.errors import UnavailableError
from omnix_recs.store import snapshot
from omnix_recs.store.base import PurchaseWatermark, Store
from omnix_recs.store.dynamodb import DynamoStore
from omnix_recs.store.dynamodb import store as dynamo_module

SOURCE = "test-store"
SECRET = "erase-me-5521"


def as_rows(purchases: list[Purchase]) -> list[tuple[str, str, str, int, float, int]]:
    return sorted(
        (p.customer_id, p.order_id, p.product_id, p.quantity, p.unit_price, int(p.purchased_at.timestamp()))
        for p in purchases
    )


def replayed(store: Store, since: PurchaseWatermark) -> list[tuple[str, str, str, int, float, int]]:
    answer = store.purchases_appended_since(since)
    assert answer is not None, "the journal should reach back to the watermark"
    lines, watermark = answer
    assert watermark == store.purchase_watermark()
    return sorted(lines.rows())


def journal_rows(store: DynamoStore, customer_id: str) -> int:
    response = store.db.call(
        "query",
        TableName=store.table_names["purchase-journal"],
        KeyConditionExpression="customerId = :c",
        ExpressionAttributeValues={":c": {"S": customer_id}},
        ConsistentRead=True,
    )
    return int(response["Count"])


def journal_entries(store: DynamoStore) -> list[tuple[str, int | None, int]]:
    """(customer, shard or None for none, sequence) of every journal entry, counters left out."""
    items = store.db.items("scan", TableName=store.table_names["purchase-journal"], ConsistentRead=True)
    return sorted(
        (item["customerId"]["S"], int(item["shard"]["N"]) if "shard" in item else None, int(item["sequence"]["N"]))
        for item in items
        if "lines" in item
    )


@contextlib.contextmanager
def journal_scans(store: DynamoStore) -> Iterator[list[int]]:
    """Scans of the journal table started within the block (a parallel Scan counts once: its
    first request to segment 0), counted by a botocore hook on the store's own client."""
    table = store.table_names["purchase-journal"]
    started: list[int] = []

    def count(params: dict[str, object], **_: object) -> None:
        if params.get("TableName") == table and not params.get("Segment") and "ExclusiveStartKey" not in params:
            started.append(1)

    events = store.db.client.meta.events
    events.register("provide-client-params.dynamodb.Scan", count, unique_id="count-journal-scans")
    try:
        yield started
    finally:
        events.unregister("provide-client-params.dynamodb.Scan", unique_id="count-journal-scans")


@pytest.fixture(params=["dynamodb", "dynoxide"])
def dynamo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DynamoStore]:
    opened = (dynamo_store if request.param == "dynamodb" else dynoxide_store)(request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


# --- every store ---------------------------------------------------------------------------------


def test_lines_written_since_a_watermark_come_back_from_the_journal(store: Store) -> None:
    store.add_purchases([line("alice", "o1", "milk", 0), line("alice", "o1", "bread", 0)])
    mark = store.purchase_watermark()
    later = [line("bob", "o2", "tea", 1, quantity=3), line("carol", "o3", "jam", 2)]
    store.add_purchases(later)
    assert replayed(store, mark) == as_rows(later)
    assert store.purchase_watermark().epoch == mark.epoch


def test_a_write_too_large_for_one_transaction_is_journaled(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.add_purchases([line("alice", "o1", "milk", 0)])
    directory = tmp_path / "snapshot"
    first = snapshot.fresh(store, directory, SOURCE)
    mark = store.purchase_watermark()
    # 40 customers, 80 lines: several transactions' worth of journal entries and rows.
    large = [line(f"c{n:02d}", f"o{n}", product, n / 10) for n in range(40) for product in ("milk", "eggs")]
    store.add_purchases(large)
    assert replayed(store, mark) == as_rows(large)
    caplog.set_level(logging.INFO, logger="omnix_recs.store.snapshot")
    s = snapshot.fresh(store, directory, SOURCE)
    assert len(s) == len(first) + len(large)
    assert any("appended lines added" in r.getMessage() for r in caplog.records)
    assert not any("rebuilding" in r.getMessage() for r in caplog.records)


def test_an_erasure_takes_the_customers_journal_entries(store: Store, tmp_path: Path) -> None:
    store.add_purchases([line("alice", "o1", "milk", 0), line(SECRET, "o1", "caviar", 0)])
    directory = tmp_path / "snapshot"
    snapshot.fresh(store, directory, SOURCE)
    # After the snapshot: only the journal holds these until the next training reads it.
    store.add_purchases([line(SECRET, "secret-order-77", "truffles", 1), line("alice", "o2", "jam", 1)])
    store.delete_customer(SECRET)
    snapshot.erase_customer(store, directory, SECRET)
    after = snapshot.fresh(store, directory, SOURCE)
    assert SECRET not in after.customer_ids
    assert [p for p in directory.rglob("*") if p.is_file() and b"secret-order-77" in p.read_bytes()] == []
    held = {(after.customer_ids[c], after.item_ids[i]) for c, i in zip(after.customer, after.item) if i >= 0}
    assert held == {("alice", "milk"), ("alice", "jam")}
    if isinstance(store, DynamoStore):
        assert journal_rows(store, SECRET) == 0 and journal_rows(store, "alice") > 0


# --- DynamoDB --------------------------------------------------------------------------------------


@pytest.fixture
def dynoxide(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DynamoStore]:
    """dynoxide only: moto undoes a cancelled transaction by restoring a copy of the tables taken
    when it began, which also undoes the writes that other threads made meanwhile."""
    opened = dynoxide_store(request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def test_concurrent_writers_each_get_their_own_sequence(dynoxide: DynamoStore) -> None:
    dynamo = dynoxide
    mark = dynamo.purchase_watermark()
    written = [[line(f"w{w}", f"o{n}", "milk", n) for n in range(5)] for w in range(4)]

    failures: list[BaseException] = []

    def writer(purchases: list[Purchase]) -> None:
        try:
            for purchase in purchases:
                dynamo.add_purchases([purchase])
        except BaseException as error:  # a thread's failure would otherwise go unseen
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(purchases,)) for purchases in written]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert replayed(dynamo, mark) == as_rows([p for purchases in written for p in purchases])
    now = dynamo.purchase_watermark()
    assert (now.epoch, now.sequence) == (mark.epoch, mark.sequence + 20) and sum(now.shards) == now.sequence


def test_concurrent_writers_and_readers_miss_nothing_and_read_nothing_twice(dynoxide: DynamoStore) -> None:
    """Writers of several processes (stores) and threads on the shards while a reader replays
    the journal from where it last stood, again and again: every line once."""
    stores = [dynoxide, DynamoStore(dynoxide.db.client, env=dynoxide.env)]  # another host, same tables
    stores[1]._first_shard = stores[0]._first_shard  # the same shards: they race for sequences
    written = [[line(f"w{w}", f"o{n}", f"p{n % 3}", n) for n in range(12)] for w in range(8)]
    failures: list[BaseException] = []
    done, start = threading.Event(), threading.Barrier(8)

    def writer(w: int) -> None:
        try:
            start.wait(timeout=30)
            for purchase in written[w]:
                stores[w % 2].add_purchases([purchase])
        except BaseException as error:
            failures.append(error)

    read: list[tuple[str, str, str, int, float, int]] = []
    mark = dynoxide.purchase_watermark()

    def reader() -> None:
        nonlocal mark
        try:
            while not done.is_set():
                answer = dynoxide.purchases_appended_since(mark)
                assert answer is not None
                read.extend(answer[0].rows())
                mark = answer[1]
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    replaying = threading.Thread(target=reader)
    replaying.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    replaying.join(timeout=60)
    assert failures == []
    answer = dynoxide.purchases_appended_since(mark)
    assert answer is not None
    read.extend(answer[0].rows())
    assert sorted(read) == as_rows([p for purchases in written for p in purchases])
    assert answer[1] == dynoxide.purchase_watermark() and answer[1].sequence == 96  # one per write
    assert len([position for position in answer[1].shards if position]) > 1  # on several shards


def test_a_writer_that_lost_the_race_for_a_sequence_takes_the_next(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = dynamo.purchase_watermark()
    elsewhere = DynamoStore(dynamo.db.client, env=dynamo.env)  # another host on the same tables
    elsewhere._first_shard = dynamo._first_shard  # and the same shard
    other = line("bob", "o9", "tea", 2)
    read = dynamo._read_shard

    def stale_once(shard: int) -> int:
        seen = read(shard)
        monkeypatch.setattr(dynamo, "_read_shard", read)
        elsewhere.add_purchases([other])  # takes the sequence just read
        return seen

    monkeypatch.setattr(dynamo, "_read_shard", stale_once)
    mine = line("alice", "o1", "milk", 1)
    dynamo.add_purchases([mine])
    assert replayed(dynamo, mark) == as_rows([mine, other])
    assert dynamo.purchase_watermark().sequence == mark.sequence + 2
    # This process's last sequence is a hint, not the truth: another host moved on since.
    elsewhere.add_purchases([line("bob", "o10", "tea", 3)])
    dynamo.add_purchases([line("alice", "o2", "milk", 4)])
    assert dynamo.purchase_watermark().sequence == mark.sequence + 4
    assert len(replayed(dynamo, mark)) == 4


def test_journal_entries_keep_the_store_and_the_price(dynamo: DynamoStore) -> None:
    mark = dynamo.purchase_watermark()
    dynamo.add_purchases([line("alice", "o1", "milk", 0, store_id="s-12")])
    answer = dynamo.purchases_appended_since(mark)
    assert answer is not None
    assert list(answer[0].rows_with_stores()) == [
        ("alice", "o1", "milk", 1, 2.5, int(T0.timestamp()), "s-12"),
    ]


def test_the_journal_keeps_its_newest_writes_only(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamo_module, "SHARD_SEQUENCES", 2)
    start = dynamo.purchase_watermark()
    for n in range(4):
        dynamo.add_purchases([line("alice", f"o{n}", "milk", n)])  # one writer: one shard
    assert dynamo.purchases_appended_since(start) is None  # 4 writes behind: rebuild
    shards = list(start.shards)
    shards[dynamo._first_shard] += 3
    near = PurchaseWatermark(start.epoch, start.sequence + 3, tuple(shards))
    with journal_scans(dynamo) as scans:
        assert replayed(dynamo, near) == as_rows([line("alice", "o3", "milk", 3)])
    # That read trimmed the journal to the 2 newest writes, with the Scan that read the line.
    assert journal_rows(dynamo, "alice") == 2
    assert len(scans) == 1


def test_a_replay_reads_and_trims_in_one_scan(dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two shards, one past what the journal keeps, and an entry from before the shards: the
    replay returns exactly the lines written since the watermark, and its one Scan also finds
    what the trim deletes (each shard's older writes, the shardless entry), nothing else."""
    monkeypatch.setattr(dynamo_module, "SHARD_SEQUENCES", 5)
    journal = dynamo.table_names["purchase-journal"]
    legacy = json.dumps([["o0", "milk", 1, 2.5, int(T0.timestamp()), ""]]).encode()
    dynamo.db.call(  # as written before the journal had shards: no shard attribute
        "put_item",
        TableName=journal,
        Item={
            "customerId": {"S": "legacy"},
            "sk": {"S": f"{1:020d}#00000"},
            "sequence": {"N": "1"},
            "lines": {"B": zlib.compress(legacy)},
        },
    )
    other = DynamoStore(dynamo.db.client, env=dynamo.env)  # another host, on the next shard
    other._first_shard = (dynamo._first_shard + 1) % len(dynamo.purchase_watermark().shards)
    writes = [(dynamo, line("alice", f"o{n}", "milk", n)) for n in range(7)]
    writes += [(other, line("bob", f"o{n}", "tea", n)) for n in range(3)]
    marks = []
    for writer, purchase in writes:
        marks.append(dynamo.purchase_watermark())
        writer.add_purchases([purchase])
    alice_shard, bob_shard = dynamo._first_shard, other._first_shard
    shards = list(marks[9].shards)  # 1 write behind on bob's shard
    shards[alice_shard] = marks[5].shards[alice_shard]  # 2 on alice's, which is at 7 of 5 kept
    since = PurchaseWatermark(marks[9].epoch, sum(shards), tuple(shards))
    with journal_scans(dynamo) as scans:
        assert replayed(dynamo, since) == as_rows([purchase for _, purchase in writes[5:7] + writes[9:]])
    assert len(scans) == 1
    assert journal_entries(dynamo) == [("alice", alice_shard, n) for n in range(3, 8)] + [
        ("bob", bob_shard, n) for n in range(1, 4)
    ]
    assert replayed(dynamo, since) == as_rows([purchase for _, purchase in writes[5:7] + writes[9:]])  # again


def test_a_copy_near_the_trim_line_is_rebuilt_not_replayed(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy replays only while four fifths of the kept writes behind: another reader's trim,
    from its later position, must not delete what this replay is still reading."""
    monkeypatch.setattr(dynamo_module, "SHARD_SEQUENCES", 10)
    start = dynamo.purchase_watermark()
    for n in range(9):
        dynamo.add_purchases([line("alice", f"o{n}", "milk", n)])  # one writer: one shard
    assert dynamo.purchases_appended_since(start) is None  # 9 of 10 behind: past the margin
    shards = list(start.shards)
    shards[dynamo._first_shard] += 1
    eight_behind = PurchaseWatermark(start.epoch, start.sequence + 1, tuple(shards))
    assert len(replayed(dynamo, eight_behind)) == 8


def test_a_large_write_cut_short_before_its_journal_moves_the_epoch(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "snapshot"
    dynamo.add_purchases([line("alice", "o1", "milk", 0)])
    before = snapshot.fresh(dynamo, directory, SOURCE).watermark

    def unavailable(*args: object) -> None:
        raise UnavailableError("DynamoDB is unavailable: transact_write_items failed 8 times")

    monkeypatch.setattr(dynamo, "_journal", unavailable)
    large = [line(f"c{n:02d}", "o1", "eggs", 1) for n in range(30)]
    with pytest.raises(UnavailableError):
        dynamo.add_purchases(large)
    monkeypatch.undo()
    assert dynamo.purchase_watermark().epoch == before.epoch + 1
    # The lines reached the table, not the journal: the next read rebuilds and holds them.
    assert len(snapshot.fresh(dynamo, directory, SOURCE)) == 1 + len(large)


def test_a_failed_small_write_leaves_neither_lines_nor_journal(
    dynamo: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = dynamo.purchase_watermark()
    monkeypatch.setattr(dynamo_module, "JOURNAL_ATTEMPTS", 1)
    monkeypatch.setattr(dynamo, "_read_shard", lambda shard: 7)  # a sequence the shard is not at
    with pytest.raises(UnavailableError, match="purchase sequence kept moving"):
        dynamo.add_purchases([line("alice", "o1", "milk", 0)])
    monkeypatch.undo()
    assert dynamo.purchase_watermark() == mark
    assert dynamo.purchases_of("alice") == [] and journal_rows(dynamo, "alice") == 0


@pytest.mark.parametrize(
    ("text", "watermark"),
    [
        ("3:1207", PurchaseWatermark(3, 1207)),  # SQLite's, and DynamoDB's from before the shards
        ("3:5:2,0,3", PurchaseWatermark(3, 5, (2, 0, 3))),
    ],
)
def test_a_watermark_reads_back_as_it_was_written(text: str, watermark: PurchaseWatermark) -> None:
    assert watermark.text() == text and PurchaseWatermark.parse(text) == watermark


@pytest.mark.parametrize("text", ["", "3", "3:x", "-1:0", "3:5:2,x", "3:5:2,-3", "3:6:2,3"])
def test_a_malformed_watermark_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="EPOCH:SEQUENCE|do not add up"):
        PurchaseWatermark.parse(text)
