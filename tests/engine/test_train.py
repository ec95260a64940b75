"""What `omnix train` ships and what activation lets serve (engine/train.py, engine/registry.py).

A tuned version carries its blends (manifest, record notes) and its validation metrics; the
server ranks with them; activation refuses a version that validated below personal top
frequency or clearly below the active version, unless forced; the CLI and untuned paths too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from generated_shop import generated_shop_db

from omnix_recs import cli
from omnix_recs.config import Settings
from omnix_recs.domain.models import Consent
from omnix_recs.engine import registry, train, tuning
from omnix_recs.engine.artifact import load_model, with_habit_decay, write_model
from omnix_recs.engine.blends import DEFAULT_BLENDS, Blend, Strategy
from omnix_recs.engine.build import BuildParameters, build_from_lines, read_training_data
from omnix_recs.engine.features import HABIT_DECAY
from omnix_recs.engine.holdout import AskedAt
from omnix_recs.engine.matrix import read_purchase_lines
from omnix_recs.engine.recommender import Recommender
from omnix_recs.engine.registry import ActivationRefusedError, ModelHolder
from omnix_recs.engine.train import train_model
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, ModelFormatError
from omnix_recs.store import open_store
from omnix_recs.store.base import ModelRecord, Store

PARAMS = BuildParameters(neighbours=10, taste_dimensions=8, basket_min_support=1)
GATE = registry.GATE_METRIC
TOP_FREQUENCY = registry.GATE_BASELINE


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_shop_db(tmp_path_factory.mktemp("generated-shop"), customers=80, products=200, days=120, seed=3)


@pytest.fixture
def generated(generated_db: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the generated shop (training writes model records)."""
    shutil.copyfile(generated_db, tmp_path / "omnix.db")
    store = open_store(f"sqlite:///{tmp_path / 'omnix.db'}")
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(model_dir=str(tmp_path / "models"))


def fake_validation(recall: float, top_frequency: float) -> tuning.Validation:
    """A validation in which the tuned REPLENISH blend scored `recall` and top frequency
    `top_frequency` (every other figure the same), tuned blends = the defaults."""

    def row(value: float) -> dict[str, float]:
        return {"customers": 10.0, "recall@10": value, "ndcg@10": value}

    results: tuning.Results = {
        when: {
            task: {
                tuning.ENGINE_TUNED: row(recall if task is Strategy.REPLENISH else 0.1),
                tuning.ENGINE_DEFAULT: row(0.1),
                "personal top frequency": row(top_frequency if task is Strategy.REPLENISH else 0.05),
                "TIFU-KNN": row(0.2),
            }
            for task in tuning.TASKS
        }
        for when in AskedAt
    }
    return tuning.Validation(dict(DEFAULT_BLENDS), 0.8, results, 10, 10, 100, {"tuning": 0.1})


@pytest.fixture
def validates_as(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make training's validation report the given (recall, top frequency)."""

    def set_to(recall: float, top_frequency: float) -> None:
        monkeypatch.setattr(train, "validate", lambda *a, **k: fake_validation(recall, top_frequency))

    return set_to


# --- the tuned path on generated data --------------------------------------------------------------


def test_a_tuned_version_ships_its_blends_and_validation(generated: Store, settings: Settings) -> None:
    record = train_model(generated, settings, parameters=PARAMS, tuning_shoppers=30, force=True)
    assert record.active and generated.active_model() == record
    for key in (GATE, TOP_FREQUENCY, "validation_replenish_tifu_knn_recall@10", "validation_discover_recall@10"):
        assert 0 <= record.metrics[key] <= 1, key
    assert record.metrics["validation_customers"] == 30 and record.metrics["validation_tuning_customers"] == 30
    manifest = json.loads((Path(record.artifact_uri) / "manifest.json").read_text())
    assert set(manifest["blends"]) == {"replenish", "discover", "balanced"}
    assert manifest["validation"]["metrics"][GATE] == record.metrics[GATE]
    tuning_note, blends = registry.tuned_settings(record)
    assert tuning_note == "tuned on 30 shoppers' latest baskets, validated on 30 others'"
    assert {s: b.to_json() for s, b in blends.items()} == manifest["blends"]

    model = load_model(record.artifact_uri)
    assert model.blends == blends
    holder = ModelHolder(generated)
    holder.reload_if_changed(force=True)
    recommender = Recommender(generated, holder)
    for strategy in Strategy:
        assert recommender.blend_for(holder.require(), strategy) == blends[strategy]


def test_tuning_is_seeded(generated: Store, settings: Settings) -> None:
    first = train_model(generated, settings, parameters=PARAMS, tuning_shoppers=20, force=True)
    second = train_model(generated, settings, parameters=PARAMS, tuning_shoppers=20, force=True)
    assert registry.tuned_settings(first) == registry.tuned_settings(second)
    assert {k: v for k, v in first.metrics.items() if "recall" in k} == {
        k: v for k, v in second.metrics.items() if "recall" in k
    }


# --- untuned paths -----------------------------------------------------------------------------------


def test_too_little_history_ships_the_defaults_and_says_so(shop: Any, settings: Settings) -> None:
    shop.weekly_milk_shopper("alice")  # the only shopper with 3 trips: nobody to validate on
    record = train_model(shop.store, settings, parameters=PARAMS)
    assert record.active and not any(k.startswith("validation_") for k in record.metrics)
    tuning_note, blends = registry.tuned_settings(record)
    assert tuning_note.startswith("default blends: too little history to tune") and blends == {}
    assert load_model(record.artifact_uri).blends == {}
    assert "blends" not in json.loads((Path(record.artifact_uri) / "manifest.json").read_text())


def test_no_tune_keeps_the_fast_path_and_is_not_judged(shop: Any, settings: Settings, validates_as: Any) -> None:
    shop.weekly_milk_shopper("alice")
    validates_as(0.5, 0.4)
    tuned = train_model(shop.store, settings, parameters=PARAMS)
    untuned = train_model(shop.store, settings, parameters=PARAMS, tune=False)
    assert untuned.active and shop.store.active_model().version == untuned.version
    assert registry.tuned_settings(untuned) == ("default blends: trained without tuning", {})
    assert not any(k.startswith("validation_") for k in untuned.metrics) and tuned.metrics[GATE] == 0.5


def test_tuning_needs_at_least_one_shopper(shop: Any, settings: Settings) -> None:
    with pytest.raises(InvalidArgumentError, match="tuning_shoppers: must be at least 1"):
        train_model(shop.store, settings, tuning_shoppers=0)
    assert shop.store.list_models() == []


# --- activation -------------------------------------------------------------------------------------


def record(version: str, **metrics: float) -> ModelRecord:
    return ModelRecord(version, datetime(2026, 11, 1, tzinfo=UTC), "/nowhere", dict(metrics))


@pytest.mark.parametrize(
    ("candidate", "active", "refused"),
    [
        (record("new", **{GATE: 0.40, TOP_FREQUENCY: 0.39}), None, None),
        (record("new", **{GATE: 0.38, TOP_FREQUENCY: 0.39}), None, "0.3800 is below personal top frequency's 0.3900"),
        (record("new", **{GATE: 0.39, TOP_FREQUENCY: 0.39}), None, None),  # level is not below
        (record("new", **{GATE: 0.41, TOP_FREQUENCY: 0.30}), record("old", **{GATE: 0.43}), None),  # within 5%
        (
            record("new", **{GATE: 0.40, TOP_FREQUENCY: 0.30}),
            record("old", **{GATE: 0.43}),
            "0.4000 is more than 5% below the active model old's 0.4300",
        ),
        (record("new", **{GATE: 0.10}), record("old"), None),  # the active one was never validated
        (record("new"), record("old", **{GATE: 0.43}), None),  # an untuned version is not judged
        (record("old", **{GATE: 0.38}), record("old", **{GATE: 0.40}), None),  # itself
    ],
)
def test_activation_refusal(candidate: ModelRecord, active: ModelRecord | None, refused: str | None) -> None:
    reason = registry.activation_refusal(candidate, active)
    assert reason == refused or (refused is not None and reason is not None and refused in reason)


def test_a_version_below_top_frequency_is_saved_but_not_activated(
    shop: Any, settings: Settings, validates_as: Any
) -> None:
    shop.weekly_milk_shopper("alice")
    first = train_model(shop.store, settings, parameters=PARAMS, tune=False)
    validates_as(0.30, 0.35)
    with pytest.raises(ActivationRefusedError, match=r"recall@10 0\.3000 is below personal top frequency's 0\.3500"):
        train_model(shop.store, settings, parameters=PARAMS)
    versions = registry.list_versions(shop.store)
    refused = versions[0]
    assert refused.version != first.version and not refused.active and refused.metrics[GATE] == 0.30
    assert shop.store.active_model().version == first.version

    with pytest.raises(ActivationRefusedError, match=f"model {refused.version} was not activated") as error:
        registry.activate(shop.store, refused.version)
    assert error.value.record.version == refused.version
    assert registry.activate(shop.store, refused.version, force=True).active

    forced = train_model(shop.store, settings, parameters=PARAMS, force=True)
    assert forced.active and shop.store.active_model().version == forced.version
    held = train_model(shop.store, settings, parameters=PARAMS, activate=False)  # not activating: not judged
    assert not held.active


def test_a_version_clearly_below_the_active_one_is_refused(shop: Any, settings: Settings, validates_as: Any) -> None:
    shop.weekly_milk_shopper("alice")
    validates_as(0.50, 0.40)
    good = train_model(shop.store, settings, parameters=PARAMS)
    validates_as(0.46, 0.40)
    with pytest.raises(ActivationRefusedError, match="more than 5% below the active model"):
        train_model(shop.store, settings, parameters=PARAMS)
    validates_as(0.48, 0.40)
    assert train_model(shop.store, settings, parameters=PARAMS).active
    # Rolling back passes over the version training refused and is not compared with the active one.
    assert registry.rollback(shop.store).version == good.version


def test_rollback_needs_a_version_that_may_serve(shop: Any, settings: Settings, validates_as: Any) -> None:
    shop.weekly_milk_shopper("alice")
    validates_as(0.30, 0.35)
    train_model(shop.store, settings, parameters=PARAMS, force=True)
    train_model(shop.store, settings, parameters=PARAMS, force=True)
    with pytest.raises(FailedPreconditionError, match="failed its validation; activate one by name, with force"):
        registry.rollback(shop.store)


# --- the artifact and serving ------------------------------------------------------------------------


def built_model(shop: Any) -> Any:
    store = shop.store
    lines = read_purchase_lines(store.scan_purchases(), [p.product_id for p in store.iter_products()])
    return build_from_lines(lines, list(store.iter_products()), PARAMS)


def test_blends_round_trip_through_the_manifest(shop: Any, tmp_path: Path) -> None:
    shop.weekly_milk_shopper("alice")
    blends: dict[str, Blend] = {
        Strategy.REPLENISH: Blend(
            {"habit": 2.0, "popularity": 0.01}, per_category_cap=3, neighbours_per_item=10, replaced_weight=0.5
        ),
        Strategy.DISCOVER: Blend({"taste": 1.0}, exclude_history=True),
    }
    _, path = write_model(built_model(shop), tmp_path, blends=blends, validation={"customers": 3})
    model = load_model(path)
    assert model.blends == blends
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["validation"] == {"customers": 3}
    assert manifest["blends"]["replenish"] == {
        "weights": {"habit": 2.0, "popularity": 0.01},
        "exclude_history": False,
        "per_category_cap": 3,
        "neighbours_per_item": 10,
        "replaced_weight": 0.5,
        "popularity_discount": 0.0,
    }


def test_the_habit_decay_round_trips_and_a_version_without_one_serves_the_default(shop: Any, tmp_path: Path) -> None:
    shop.weekly_milk_shopper("alice")
    _, tuned = write_model(built_model(shop), tmp_path, habit_decay=0.8)
    _, untuned = write_model(built_model(shop), tmp_path)
    assert load_model(tuned).habit_decay == 0.8
    assert json.loads((tuned / "manifest.json").read_text())["history"] == {"habit_decay": 0.8}
    assert load_model(untuned).habit_decay == HABIT_DECAY


@pytest.mark.parametrize("history", [{"habit_decay": 0}, {"habit_decay": 1.5}, {"habit_decay": "0.8"}, []])
def test_a_manifest_with_a_broken_habit_decay_does_not_load(shop: Any, tmp_path: Path, history: Any) -> None:
    shop.weekly_milk_shopper("alice")
    _, path = write_model(built_model(shop), tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "history": history}))
    with pytest.raises(ModelFormatError, match="history.habit_decay"):
        load_model(path)


def test_serving_summarises_habits_at_the_models_decay(shop: Any, hand_made_model: Any, fixed_models: Any) -> None:
    shop.weekly_milk_shopper("alice")  # milk on every trip, pasta on every other one

    def pasta_habit(habit_decay: float) -> float:
        model = with_habit_decay(hand_made_model, habit_decay)
        history = Recommender(shop.store, fixed_models(model)).shopper_at("alice", shop.now).history
        return float(history.habit[list(history.items).index(model.index_of["pasta"])])

    # Pasta was in the latest trip: the faster older trips fade, the more it counts (4 of 7
    # trips when none fade).
    assert pasta_habit(0.5) > pasta_habit(0.9) > pasta_habit(1.0) == pytest.approx(4 / 7)


@pytest.mark.parametrize(
    ("blends", "message"),
    [
        ({"replenish": {"weights": {"psychic": 1.0}}}, "unknown signals"),
        ({"replenish": {"weights": {"habit": -1.0}}}, "weights must be numbers >= 0"),
        ({"replenish": {"weights": {"habit": 1.0}, "per_category_cap": "3"}}, "per_category_cap must be int"),
        ({"replenish": {"weights": {"habit": 1.0}, "neighbours_per_item": 0}}, "neighbours_per_item >= 1"),
        ({"replenish": {"weights": {"habit": 1.0}, "replaced_weight": 2}}, "replaced_weight must be in"),
        ({"replenish": {"weights": {"habit": 1.0}, "replaced_weight": "0"}}, "replaced_weight must be a number"),
        ({"weekly": {"weights": {"habit": 1.0}}}, "unknown strategies"),
        ({"replenish": []}, "an object with a 'weights' object"),
        ([], "an object keyed by strategy"),
    ],
)
def test_a_manifest_with_broken_blends_does_not_load(shop: Any, tmp_path: Path, blends: Any, message: str) -> None:
    shop.weekly_milk_shopper("alice")
    _, path = write_model(built_model(shop), tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "blends": blends}))
    with pytest.raises(ModelFormatError, match=message):
        load_model(path)


def test_serving_ranks_with_the_blends_the_model_carries(shop: Any, hand_made_model: Any, fixed_models: Any) -> None:
    shop.weekly_milk_shopper("alice")
    by_popularity = {"replenish": Blend({"popularity": 1.0}).to_json()}
    tuned = replace(hand_made_model, manifest={**hand_made_model.manifest, "blends": by_popularity})
    assert tuned.blends == {Strategy.REPLENISH: Blend({"popularity": 1.0})}
    ranked = Recommender(shop.store, fixed_models(tuned)).recommend(
        "alice", strategy=Strategy.REPLENISH, limit=3, as_of=shop.now
    )
    assert [i.product_id for i in ranked.items] == ["milk", "pasta", "bread"]  # popularity order
    default = Recommender(shop.store, fixed_models(hand_made_model))
    assert default.blend_for(hand_made_model, Strategy.REPLENISH) == DEFAULT_BLENDS[Strategy.REPLENISH]
    assert default.blend_for(tuned, Strategy.DISCOVER) == DEFAULT_BLENDS[Strategy.DISCOVER]  # none tuned: default
    forced = Recommender(shop.store, fixed_models(tuned), blends=DEFAULT_BLENDS)
    assert forced.blend_for(tuned, Strategy.REPLENISH) == DEFAULT_BLENDS[Strategy.REPLENISH]


def test_the_popularity_knob_discounts_every_score_by_popularity(
    shop: Any, hand_made_model: Any, fixed_models: Any
) -> None:
    shop.weekly_milk_shopper("alice")
    by_popularity = {"replenish": Blend({"popularity": 1.0}).to_json()}
    model = replace(hand_made_model, manifest={**hand_made_model.manifest, "blends": by_popularity})

    def scores(discount: float) -> dict[str, float]:
        recommender = Recommender(shop.store, fixed_models(model), popularity_discount=discount)
        ranked = recommender.recommend("alice", strategy=Strategy.REPLENISH, limit=5, as_of=shop.now)
        return {item.product_id: item.score for item in ranked.items}

    def factor(product: str) -> float:
        return 1 - 0.5 * min(max(float(model.popularity[model.index_of[product]]), 0.0), 1.0)

    # Served scores are relative to the list's best, so compare each product with another.
    plain, discounted = scores(0.0), scores(0.5)
    first, *others = discounted
    assert others
    for product in others:
        expected = plain[product] / plain[first] * factor(product) / factor(first)
        assert discounted[product] / discounted[first] == pytest.approx(expected, rel=1e-5)
    assert Blend({"habit": 1.0}).popularity_discount == 0.0  # off unless asked for
    with pytest.raises(ValueError, match="popularity_discount must be in"):
        Blend({"habit": 1.0}, popularity_discount=2.0)


@pytest.mark.parametrize("notes", ["", "not json", "[]", '{"blends": {"replenish": 3}}'])
def test_records_without_readable_tuning_show_none(notes: str) -> None:
    assert registry.tuned_settings(replace(record("v"), notes=notes)) == ("", {})


# --- the CLI ----------------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_cli_train_models_and_force(
    shop: Any, settings: Settings, capsys: pytest.CaptureFixture[str], validates_as: Any
) -> None:
    shop.weekly_milk_shopper("alice")
    url, model_dir = f"sqlite:///{shop.store.path}", settings.model_dir
    code, first, _ = run(capsys, "train", "--store", url, "--model-dir", model_dir, "--no-tune")
    assert code == 0 and first["active"] and first["tuning"] == "default blends: trained without tuning"

    validates_as(0.30, 0.35)
    code, refused, err = run(capsys, "train", "--store", url, "--model-dir", model_dir)
    assert code == 2 and not refused["active"] and refused["metrics"][GATE] == 0.30
    assert "was saved but not activated" in err and "0.3000" in err and "0.3500" in err
    assert set(refused["blends"]) == {"replenish", "discover", "balanced"}

    code, _, err = run(capsys, "models", "--store", url, "activate", refused["version"])
    assert code == 2 and "below personal top frequency's 0.3500" in err
    code, active, _ = run(capsys, "models", "--store", url, "activate", refused["version"], "--force")
    assert code == 0 and active["active"] and active["version"] == refused["version"]

    code, listed, _ = run(capsys, "models", "--store", url, "list")
    assert [m["version"] for m in listed] == [refused["version"], first["version"]]
    assert listed[0]["blends"]["replenish"] == DEFAULT_BLENDS[Strategy.REPLENISH].to_json()
    assert listed[1]["blends"] == {}

    code, forced, _ = run(capsys, "train", "--store", url, "--model-dir", model_dir, "--force")
    assert code == 0 and forced["active"]


def test_training_leaves_out_the_purchases_of_customers_who_refused_personalisation(shop: Any) -> None:
    shop.weekly_milk_shopper("alice")
    shop.weekly_milk_shopper("bob", consent=Consent(personalization=False))
    _, lines = read_training_data(shop.store)
    assert "alice" in lines.customer_ids and "bob" not in lines.customer_ids
    assert len(lines) == sum(1 for _ in shop.store.purchases_of("alice"))
