"""An erasure's second pass is recorded in the store before anything is erased, so it survives
the process (customers.py `ERASURE_PENDING`): any process finishes it, at start, periodically, on
its timer or at shutdown; it sweeps rows written after the erasure and blanks the customer's
row in every model version (engine/model_erasure.py); it never sweeps an id registered again;
and what fails stays recorded for the next try. The end-to-end test kills a real server with
SIGKILL right after DeleteCustomer and lets a fresh one finish the job."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fuzz_support import FuzzServer, trained_shop

from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc
from omnix_recs.customers import ERASURE_LEASE, ERASURE_PENDING, CustomerService
from omnix_recs.domain.models import Customer, CustomerChange, Product, Purchase, RecommendedItem, ServedRecommendation
from omnix_recs.engine import model_erasure
from omnix_recs.engine.artifact import load_model, write_model
from omnix_recs.engine.build import BuiltModel
from omnix_recs.engine.model_erasure import ModelFiles
from omnix_recs.errors import NotFoundError
from omnix_recs.store import open_store
from omnix_recs.store.base import ModelRecord, Store
from omnix_recs.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).parents[1] / "scale"))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from scale_support import free_port  # noqa: E402
from test_artifact import built_model  # noqa: E402

CREATED = datetime(2025, 1, 1, tzinfo=UTC)
BOUGHT = datetime(2025, 3, 1, tzinfo=UTC)
ERASED, KEPT = "c1", "c2"
WAIT_S = 30.0


def nobody(customer_id: str, change: CustomerChange) -> None:
    return None


def model_with_rows() -> BuiltModel:
    built = built_model()
    built.arrays.update(
        like_you_customers=np.array([ERASED, KEPT]),
        like_you_indptr=np.array([0, 2, 3], dtype=np.int64),
        like_you_items=np.array([3, 1, 0], dtype=np.int32),
        like_you_scores=np.array([0.5, 0.25, 0.75], dtype=np.float32),
    )
    return built


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "omnix.db")
    for customer_id in (ERASED, KEPT):
        store.create_customer(Customer(customer_id=customer_id, created_at=CREATED, updated_at=CREATED))
    store.upsert_products([Product("p1", "Oat milk", "dairy", "milk", price=1.5)])
    store.add_purchases([Purchase(ERASED, "o1", "p1", 1, 1.5, BOUGHT)])
    yield store
    store.close()


@pytest.fixture
def model_dir(store: SqliteStore, tmp_path: Path) -> Path:
    """Two versions naming both customers: an older one and the active one."""
    directory = tmp_path / "models"
    for n in range(2):
        version, path = write_model(model_with_rows(), directory, version=f"v{n}")
        created = datetime.fromisoformat(json.loads((path / "manifest.json").read_text())["created_at"])
        store.save_model(ModelRecord(version, created, str(path), {}, active=n == 1))
    return directory


def service(store: Store, model_dir: Path, *, sweep_after_s: float | None = None) -> CustomerService:
    made = CustomerService(store, publish=nobody, model_files=ModelFiles(str(model_dir), model_dir.parent / "cache"))
    made.erasure_sweep_after_s = sweep_after_s
    return made


def pending(store: Store) -> list[str]:
    return [body["customer_id"] for _, _, body in store.list_documents(ERASURE_PENDING)]


def named_in_models(model_dir: Path, customer_id: str) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if customer_id in load_model(p).like_you_customers.tolist())


def served_late(store: Store, customer_id: str) -> None:
    """A list another process served just before the erasure and wrote just after it."""
    store.save_recommendation(
        ServedRecommendation(
            "late-1", customer_id, datetime.now(UTC), "balanced", "v1", (RecommendedItem("p1", 0.9, 0.5),)
        )
    )


def wait_until(condition: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_second_pass_is_recorded_and_a_fresh_service_finishes_it(store: SqliteStore, model_dir: Path) -> None:
    killed = service(store, model_dir)  # a process that dies before its second pass: never closed
    killed.erase(ERASED)
    served_late(store, ERASED)
    assert pending(store) == [ERASED]
    assert named_in_models(model_dir, ERASED) == ["v0", "v1"]  # the first pass leaves the files

    fresh = service(store, model_dir)
    assert fresh.finish_erasures() == 1

    assert pending(store) == []
    assert named_in_models(model_dir, ERASED) == []
    assert named_in_models(model_dir, KEPT) == ["v0", "v1"]
    assert store.list_recommendations(ERASED) == []  # the late list was swept
    assert store.customer_documents("#erasure:" + ERASED) == []
    assert fresh.finish_erasures() == 0  # nothing left to do


def test_a_started_service_finishes_what_was_pending_at_start(store: SqliteStore, model_dir: Path) -> None:
    service(store, model_dir).erase(ERASED)
    fresh = service(store, model_dir, sweep_after_s=0.5)
    fresh.erasure_check_every_s = 3600.0  # only the check at start, and the wait for what is not yet due
    fresh.start()
    try:
        assert wait_until(lambda: not pending(store))
    finally:
        fresh.close()
    assert named_in_models(model_dir, ERASED) == []


def test_the_timer_runs_the_second_pass_in_the_erasing_process(store: SqliteStore, model_dir: Path) -> None:
    erasing = service(store, model_dir, sweep_after_s=0.2)
    erasing.erase(ERASED)
    served_late(store, ERASED)
    assert wait_until(lambda: not pending(store))
    assert named_in_models(model_dir, ERASED) == [] and store.list_recommendations(ERASED) == []


def test_close_runs_this_processs_second_passes_at_once(store: SqliteStore, model_dir: Path) -> None:
    erasing = service(store, model_dir, sweep_after_s=3600.0)
    erasing.erase(ERASED)
    erasing.close()
    assert pending(store) == [] and named_in_models(model_dir, ERASED) == []


def test_an_id_registered_again_is_not_swept_but_older_models_are(store: SqliteStore, model_dir: Path) -> None:
    service(store, model_dir).erase(ERASED)
    again = Customer(customer_id=ERASED, created_at=datetime.now(UTC), updated_at=datetime.now(UTC))
    store.create_customer(again)
    store.add_purchases([Purchase(ERASED, "o-new", "p1", 1, 1.5, datetime.now(UTC))])
    # A version trained after the new registration may hold the new customer's own row.
    _, newer = write_model(model_with_rows(), model_dir, version="v2-after")

    assert service(store, model_dir).finish_erasures() == 1

    assert store.get_customer(ERASED) == again
    assert [p.order_id for p in store.purchases_of(ERASED)] == ["o-new"]
    assert named_in_models(model_dir, ERASED) == ["v2-after"]
    assert pending(store) == []
    assert [kind for kind, _, _ in store.customer_documents(ERASED)] == []  # the record is not theirs


def test_a_model_scrub_that_fails_leaves_the_record_for_the_next_try(
    store: SqliteStore, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service(store, model_dir).erase(ERASED)
    real_replace = model_erasure.os.replace

    def disk_full(source: Any, target: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_erasure.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        service(store, model_dir).finish_erasures()
    assert pending(store) == [ERASED]
    assert [load_model(p).version for p in sorted(model_dir.iterdir())] == ["v0", "v1"]  # still loadable

    monkeypatch.setattr(model_erasure.os, "replace", real_replace)
    assert service(store, model_dir).finish_erasures() == 1
    assert pending(store) == [] and named_in_models(model_dir, ERASED) == []


def test_nothing_runs_while_another_process_holds_the_lease(store: SqliteStore, model_dir: Path) -> None:
    service(store, model_dir).erase(ERASED)
    now = datetime.now(UTC)
    assert store.acquire_lease(ERASURE_LEASE, "another-process", now, now + timedelta(minutes=5))
    assert service(store, model_dir).finish_erasures() == 0
    assert pending(store) == [ERASED]
    store.release_lease(ERASURE_LEASE, "another-process")
    assert service(store, model_dir).finish_erasures() == 1


def test_a_second_pass_not_yet_due_waits(store: SqliteStore, model_dir: Path) -> None:
    service(store, model_dir).erase(ERASED)
    assert service(store, model_dir, sweep_after_s=3600.0).finish_erasures() == 0
    assert pending(store) == [ERASED]


def test_erasing_an_unknown_customer_records_nothing(store: SqliteStore, model_dir: Path) -> None:
    with pytest.raises(NotFoundError):
        service(store, model_dir).erase("ghost")
    assert pending(store) == []


# --- end to end: kill -9 after DeleteCustomer, a fresh server finishes the job -----------------


def test_a_server_killed_after_an_erasure_leaves_it_to_the_next_server(tmp_path: Path) -> None:
    store_url, model_dir, customers, _ = trained_shop(tmp_path)
    (version,) = [p for p in model_dir.iterdir() if p.is_dir()]
    before = load_model(version)
    named = before.like_you_customers.tolist()
    erased = next(c for c in customers if c in named)
    others = {c: [a.tobytes() for a in before.shoppers_like(c)] for c in named if c != erased}
    env = {"OMNIX_STORE": store_url, "OMNIX_MODEL_DIR": str(model_dir), "OMNIX_LOG_LEVEL": "WARNING"}

    first = FuzzServer(env, free_port(), tmp_path / "first.log")
    try:
        customer_pb2_grpc.CustomerServiceStub(first.channel).DeleteCustomer(
            customer_pb2.DeleteCustomerRequest(customer_id=erased), timeout=30
        )
        first.process.kill()  # SIGKILL well before the second pass's timer (5 s)
        first.process.wait(10)
    finally:
        first.stop()
    store = open_store(store_url)
    try:
        assert pending(store) == [erased]
        assert erased in load_model(version).like_you_customers.tolist()

        second = FuzzServer(env, free_port(), tmp_path / "second.log")
        try:
            # Its model was loaded before the scrub: the erased customer is still NOT_FOUND.
            lists = recommendation_pb2_grpc.RecommendationServiceStub(second.channel)
            with pytest.raises(grpc.RpcError) as refused:
                lists.GetRecommendations(
                    recommendation_pb2.GetRecommendationsRequest(customer_id=erased, limit=10), timeout=10
                )
            assert refused.value.code() is grpc.StatusCode.NOT_FOUND
            assert wait_until(lambda: not pending(store)), second.log()[-3000:]
        finally:
            second.stop()
    finally:
        store.close()
    after = load_model(version)
    assert erased not in after.like_you_customers.tolist()
    assert {c: [a.tobytes() for a in after.shoppers_like(c)] for c in named if c != erased} == others
