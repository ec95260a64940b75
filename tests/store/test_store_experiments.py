"""The `Store` contract for experiments and the reads their results and reports make.

Runs against every implementation through the `store` fixture (tests/store/conftest.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from omnix_recs.domain.models import Feedback, FeedbackEvent, RecommendedItem, ServedRecommendation
from omnix_recs.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from omnix_recs.store.base import ExperimentArm, ExperimentRecord, Store

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def experiment(experiment_id: str = "e1", created_days: float = 0, **changes: object) -> ExperimentRecord:
    fields: dict[str, object] = {
        "experiment_id": experiment_id,
        "surface": "recommendations",
        "arms": (ExperimentArm("control", 50), ExperimentArm("replenish", 50, "v2", "replenish")),
        "salt": f"{experiment_id}:salt",
        "created_at": T0 + timedelta(days=created_days),
        "description": "replenish first",
        "primary_metric": "conversion_rate",
        "holdout_percent": 10,
        "attribution_window_days": 3,
    }
    fields.update(changes)
    return ExperimentRecord(**fields)  # type: ignore[arg-type]


def served(recommendation_id: str, hours: float, experiment_id: str = "", arm_id: str = "") -> ServedRecommendation:
    return ServedRecommendation(
        recommendation_id=recommendation_id,
        customer_id="c1",
        generated_at=T0 + timedelta(hours=hours),
        strategy="balanced",
        model_version="v1",
        items=(RecommendedItem("p1", 1.0, 0.5, ("because",)),),
        experiment_id=experiment_id,
        arm_id=arm_id,
    )


def test_experiment_round_trip(store: Store) -> None:
    record = experiment()
    store.create_experiment(record)
    assert store.get_experiment("e1") == record
    assert store.get_experiment("e1").running


def test_experiment_ids_are_unique(store: Store) -> None:
    store.create_experiment(experiment())
    with pytest.raises(AlreadyExistsError):
        store.create_experiment(experiment(description="another"))
    assert store.get_experiment("e1").description == "replenish first"


@pytest.mark.parametrize("experiment_id", ["", "missing"])
def test_unknown_experiment_is_not_found(store: Store, experiment_id: str) -> None:
    with pytest.raises(NotFoundError):
        store.get_experiment(experiment_id)
    with pytest.raises(NotFoundError):
        store.stop_experiment(experiment_id or "missing", T0)


def test_one_running_experiment_per_surface(store: Store) -> None:
    store.create_experiment(experiment("e1"))
    with pytest.raises(FailedPreconditionError, match="recommendations"):
        store.create_experiment(experiment("e2"))
    with pytest.raises(NotFoundError):
        store.get_experiment("e2")  # nothing written
    store.create_experiment(experiment("p1", surface="personalized"))  # another surface is free
    store.stop_experiment("e1", T0 + timedelta(days=1))
    store.create_experiment(experiment("e2", created_days=2))  # the surface is free once e1 stopped
    assert [(e.experiment_id, e.running) for e in store.list_experiments()] == [
        ("e2", True),
        ("p1", True),
        ("e1", False),
    ]


def test_experiments_are_listed_newest_first(store: Store) -> None:
    for n, experiment_id in enumerate(["b", "a", "c"]):
        store.create_experiment(experiment(experiment_id, created_days=n, surface=f"s{n}"))
    assert [e.experiment_id for e in store.list_experiments()] == ["c", "a", "b"]


def test_stopping_keeps_the_first_stop_time(store: Store) -> None:
    store.create_experiment(experiment())
    first = store.stop_experiment("e1", T0 + timedelta(days=1))
    again = store.stop_experiment("e1", T0 + timedelta(days=2))
    assert first.stopped_at == again.stopped_at == T0 + timedelta(days=1)
    assert not store.get_experiment("e1").running
    assert [e.running for e in store.list_experiments()] == [False]


def test_served_lists_keep_their_experiment_and_arm(store: Store) -> None:
    store.save_recommendation(served("r1", 1, "e1", "control"))
    store.save_recommendations([served("r2", 2, "e1", "replenish"), served("r3", 3)])
    assert store.get_recommendation("r1").arm_id == "control"
    assert (store.get_recommendation("r2").experiment_id, store.get_recommendation("r2").arm_id) == ("e1", "replenish")
    assert (store.get_recommendation("r3").experiment_id, store.get_recommendation("r3").arm_id) == ("", "")


def test_served_lists_between_a_period_and_of_an_experiment(store: Store) -> None:
    store.save_recommendations(
        [served("r1", 1, "e1", "a"), served("r2", 2), served("r3", 3, "e1", "b"), served("r4", 5, "e2", "a")]
    )
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=5)  # end exclusive
    assert [s.recommendation_id for s in store.served_lists_between(start, end)] == ["r1", "r2", "r3"]
    assert [s.recommendation_id for s in store.served_lists_between(start, end, "e1")] == ["r1", "r3"]
    assert store.served_lists_between(start, end, "e2") == []
    assert [s.arm_id for s in store.served_lists_between(T0, T0 + timedelta(days=1), "e2")] == ["a"]


def test_feedback_on_many_lists(store: Store) -> None:
    store.save_recommendations([served(f"r{n}", n) for n in range(3)])
    for n in range(3):
        store.add_feedback(Feedback(f"r{n}", "c1", "p1", FeedbackEvent.CLICKED, T0 + timedelta(hours=n, minutes=1)))
    found = store.feedback_on(["r0", "r2", "r2", "unknown"])
    assert sorted(f.recommendation_id for f in found) == ["r0", "r2"]
    assert store.feedback_on([]) == []


def test_independent_experiments_share_a_surface_but_not_a_lever(store: Store) -> None:
    store.create_experiment(experiment("e1"))  # model version, strategy and holdout
    arms_with = {
        "model": (ExperimentArm("a", 50), ExperimentArm("b", 50, model_version="v3")),
        "none": (ExperimentArm("a", 50), ExperimentArm("b", 50)),
    }
    with pytest.raises(FailedPreconditionError, match="model_version"):
        store.create_experiment(experiment("i1", independent=True, arms=arms_with["model"], holdout_percent=0))
    with pytest.raises(FailedPreconditionError, match="holdout_percent"):
        store.create_experiment(experiment("i1", independent=True, arms=arms_with["none"]))
    with pytest.raises(NotFoundError):
        store.get_experiment("i1")  # nothing written
    store.create_experiment(experiment("i1", independent=True, arms=arms_with["none"], holdout_percent=0))
    store.create_experiment(experiment("i2", independent=True, arms=arms_with["none"], holdout_percent=0))
    with pytest.raises(FailedPreconditionError, match="e1"):  # still one not declared independent
        store.create_experiment(experiment("e2", arms=arms_with["none"], holdout_percent=0))
    # Stopping e1 frees its levers for an independent experiment.
    store.stop_experiment("e1", T0 + timedelta(days=1))
    store.create_experiment(experiment("i3", 2, independent=True, arms=arms_with["model"], holdout_percent=0))
    assert store.get_experiment("i3").independent and not store.get_experiment("e1").independent
    with pytest.raises(FailedPreconditionError, match="i3"):
        store.create_experiment(experiment("i4", 3, independent=True, arms=arms_with["model"], holdout_percent=0))
    assert sorted(e.experiment_id for e in store.list_experiments() if e.running) == ["i1", "i2", "i3"]


def test_served_lists_of_an_experiment_beside_another(store: Store) -> None:
    none = (ExperimentArm("a", 50), ExperimentArm("b", 50))
    store.create_experiment(experiment("e1"))
    store.create_experiment(experiment("i1", independent=True, arms=none, holdout_percent=0))
    beside = [("i1", "b")]
    store.save_recommendation(replace(served("r1", 1, "e1", "control"), other_assignments=(("i1", "a"),)))
    store.save_recommendations(
        [
            replace(served("r2", 2, "e1", "replenish"), other_assignments=tuple(beside)),
            served("r3", 3, "e1", "control"),
            served("r4", 4, "i1", "a"),  # i1 alone
        ]
    )
    r2 = store.get_recommendation("r2")
    assert r2.assignments == (("e1", "replenish"), ("i1", "b")) and r2.arm_in("i1") == "b"
    assert store.get_recommendation("r3").other_assignments == ()
    period = (T0, T0 + timedelta(days=1))
    assert [s.recommendation_id for s in store.served_lists_between(*period, "e1")] == ["r1", "r2", "r3"]
    of_i1 = store.served_lists_between(*period, "i1")
    assert [(s.recommendation_id, s.arm_in("i1")) for s in of_i1] == [("r1", "a"), ("r2", "b"), ("r4", "a")]
    assert [s.recommendation_id for s in store.served_lists_between(*period)] == ["r1", "r2", "r3", "r4"]
