"""AdminService over real gRPC: tuned versions, and activation judged on validation unless forced.

RetrainModel tunes the blends on the seeded shoppers and reports them with the version;
ActivateModel and RetrainModel refuse (FAILED_PRECONDITION naming both recalls) a version whose
validation REPLENISH recall@10 is below personal top frequency's, and `force` overrides that.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from omnix_recs._proto.omnix.v1 import admin_pb2, admin_pb2_grpc
from omnix_recs.config import Settings
from omnix_recs.domain.models import Customer, Product, Purchase
from omnix_recs.engine import registry, train, tuning
from omnix_recs.engine.blends import DEFAULT_BLENDS
from omnix_recs.engine.holdout import AskedAt

NOW = datetime.now(UTC).replace(microsecond=0)
PRODUCTS = [
    Product("milk", "Whole Milk", "dairy eggs", "milk", "Dairyland", 1.2),
    Product("oat", "Oat Drink", "dairy eggs", "milk", "Oaty", 1.8),
    Product("pasta", "Spaghetti", "pantry", "pasta", "Roma", 1.5),
    Product("sauce", "Tomato Sauce", "pantry", "sauces", "Roma", 2.0),
    Product("bread", "Sourdough", "bakery", "bread", "Baker", 3.5),
]


def seed(store: Any) -> None:
    """Four shoppers with four weekly trips each: enough to tune on two and validate on two."""
    store.upsert_products(PRODUCTS)
    for n, customer_id in enumerate(("ann", "ben", "cat", "dan")):
        store.create_customer(Customer(customer_id, NOW - timedelta(days=90), NOW - timedelta(days=90)))
        store.add_purchases(
            [
                Purchase(customer_id, f"{customer_id}-{d}", p, 1, 1.0, NOW - timedelta(days=d, hours=n))
                for d in (28, 21, 14, 7)
                for p in ("milk", "pasta", "bread" if d % 14 else "sauce")
            ]
        )


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"))


@pytest.fixture
def server(running_server: Any, settings: Settings) -> Any:
    return running_server(settings=settings, prepare=seed)


@pytest.fixture
def admin(server: Any) -> admin_pb2_grpc.AdminServiceStub:
    stub: admin_pb2_grpc.AdminServiceStub = server.stub(admin_pb2_grpc.AdminServiceStub)
    return stub


def validating_as(recall: float, top_frequency: float) -> tuning.Validation:
    def row(value: float) -> dict[str, float]:
        return {"customers": 2.0, "recall@10": value, "ndcg@10": value}

    results: tuning.Results = {
        when: {
            task: {
                tuning.ENGINE_TUNED: row(recall),
                tuning.ENGINE_DEFAULT: row(recall),
                "personal top frequency": row(top_frequency),
                "TIFU-KNN": row(top_frequency),
            }
            for task in tuning.TASKS
        }
        for when in AskedAt
    }
    return tuning.Validation(dict(DEFAULT_BLENDS), 0.9, results, 2, 2, 4, {"tuning": 0.1})


def test_retrain_tunes_and_lists_the_tuned_settings(admin: admin_pb2_grpc.AdminServiceStub) -> None:
    model = admin.RetrainModel(admin_pb2.RetrainModelRequest()).model
    assert model.active and model.tuning == "tuned on 2 shoppers' latest baskets, validated on 2 others'"
    assert set(model.blends) == {"replenish", "discover", "balanced"}
    assert model.blends["discover"].exclude_history and model.blends["balanced"].per_category_cap == 4
    assert model.blends["replenish"].weights and model.blends["replenish"].neighbours_per_item > 0
    for key in (
        "validation_replenish_recall@10",
        "validation_replenish_top_frequency_recall@10",
        "validation_replenish_tifu_knn_recall@10",
        "validation_replenish_recall@10_end_of_trip_day",
        "validation_discover_default_recall@10",
    ):
        assert key in model.metrics, key
    listed = admin.ListModels(admin_pb2.ListModelsRequest()).models
    assert [m.version for m in listed] == [model.version] and listed[0].blends == model.blends


def test_activation_refuses_a_version_below_top_frequency_unless_forced(
    server: Any, admin: admin_pb2_grpc.AdminServiceStub
) -> None:
    first = admin.RetrainModel(admin_pb2.RetrainModelRequest()).model
    stored = next(r for r in server.store.list_models() if r.version == first.version)
    weak = replace(
        stored,
        version="weak-1",
        active=False,
        created_at=stored.created_at + timedelta(seconds=1),
        metrics={**stored.metrics, registry.GATE_METRIC: 0.25, registry.GATE_BASELINE: 0.5},
    )
    server.store.save_model(weak)

    with pytest.raises(grpc.RpcError) as error:
        admin.ActivateModel(admin_pb2.ActivateModelRequest(version="weak-1"))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.value.details() or ""
    assert "0.2500" in details and "0.5000" in details
    assert server.store.active_model().version == first.version

    forced = admin.ActivateModel(admin_pb2.ActivateModelRequest(version="weak-1", force=True))
    assert forced.active and server.store.active_model().version == "weak-1"
    # Rolling back is the operator's undo: not judged against the version it replaces.
    assert admin.RollbackModel(admin_pb2.RollbackModelRequest()).version == first.version


def test_retrain_refused_keeps_the_version_inactive_unless_forced(
    server: Any, admin: admin_pb2_grpc.AdminServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = admin.RetrainModel(admin_pb2.RetrainModelRequest()).model
    monkeypatch.setattr(train, "validate", lambda *a, **k: validating_as(0.3, 0.4))
    with pytest.raises(grpc.RpcError) as error:
        admin.RetrainModel(admin_pb2.RetrainModelRequest())
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.value.details() or ""
    assert "was saved but not activated" in details and "0.3000" in details and "0.4000" in details
    listed = admin.ListModels(admin_pb2.ListModelsRequest()).models
    assert len(listed) == 2 and not listed[0].active and listed[1].version == first.version and listed[1].active

    forced = admin.RetrainModel(admin_pb2.RetrainModelRequest(force=True)).model
    assert forced.active and server.store.active_model().version == forced.version
    kept = admin.RetrainModel(admin_pb2.RetrainModelRequest(skip_activation=True)).model
    assert not kept.active  # a version not activated is not judged
