"""Offline evaluation: the protocol (no held-out basket is ever trained on), both moments of
asking, metrics and baselines."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from omnix_recs.config import Settings
from omnix_recs.engine import baselines
from omnix_recs.engine.evaluate import run_evaluation
from omnix_recs.engine.holdout import ndcg


def small_shop(shop) -> None:
    """Eight shoppers with weekly milk, pasta with sauce every other week."""
    for n in range(8):
        c = f"c{n}"
        shop.customer(c)
        shop.trips(
            c, [(d + n, ["milk", "pasta", "sauce"] if (d // 7) % 2 else ["milk", "bread"]) for d in range(7, 64, 7)]
        )


def test_evaluation_never_trains_on_held_out_baskets(shop, tmp_path, hand_made_model):
    small_shop(shop)
    seen_lines = []

    def build(lines, products, settings):
        seen_lines.append({(lines.customer_ids[c], t) for c, t in zip(lines.customer, lines.purchased_at.tolist())})
        return hand_made_model

    table = run_evaluation(shop.store, Settings(model_dir=str(tmp_path)), build=build)
    validation_lines, test_lines = seen_lines

    def trip(c, days_ago):
        return (c, int((shop.now - timedelta(days=days_ago)).timestamp()))

    for n in range(8):
        c = f"c{n}"
        last, before_last, earlier = trip(c, 7 + n), trip(c, 14 + n), trip(c, 21 + n)
        assert last not in test_lines and before_last in test_lines
        assert last not in validation_lines and before_last not in validation_lines and earlier in validation_lines
    for method in (
        "OMNIX engine (default weights)",
        "OMNIX engine (tuned on validation)",
        "TIFU-KNN",
        "item-kNN (cosine)",
        "global popularity",
        "personal top frequency",
    ):
        assert method in table
    assert table.count("REPLENISH (8 customers)") == 2 and table.count("BALANCED (8 customers)") == 2
    assert "asked at the end of the last trip's day" in table and "asked one second before the next trip" in table
    assert "tuned replenish blend:" in table
    assert "popularity@20" in table and "long_tail@20" in table and "gini@20" in table
    groups = table[table.index("REPLENISH recall@10 by customer group") :]
    assert "size unknown" in groups and "TIFU-KNN" in groups  # the shop's customers give no household size


def test_evaluation_with_too_little_history(shop, tmp_path, hand_made_model):
    shop.customer("new")
    shop.trips("new", [(3, ["milk"])])
    assert "nothing to evaluate" in run_evaluation(
        shop.store, Settings(model_dir=str(tmp_path)), build=lambda *a: hand_made_model
    )


@pytest.mark.parametrize(
    ("ranked", "truth", "expected"),
    [
        (["a", "b"], {"a"}, 1.0),
        (["b", "a"], {"a"}, 1 / np.log2(3)),
        (["x", "y"], {"a"}, 0.0),
        (["a", "b", "c"], {"a", "b"}, 1.0),
    ],
)
def test_ndcg(ranked, truth, expected):
    assert ndcg(ranked, frozenset(truth), 10) == pytest.approx(expected)


def test_tifu_user_vector_decays_within_and_across_groups():
    tifu = baselines.TifuKNN(groups=2, within_decay=0.5, group_decay=0.5)
    baskets = [np.array([0]), np.array([1]), np.array([1]), np.array([2])]
    vector = tifu.user_vector(baskets, 3)
    # groups [b0, b1] and [b2, b3]: (0.5*[1,0,0] + [0,1,0]) / 2 and (0.5*[0,1,0] + [0,0,1]) / 2
    older = np.array([0.5, 1.0, 0.0]) / 2
    newer = np.array([0.0, 0.5, 1.0]) / 2
    np.testing.assert_allclose(vector, (0.5 * older + newer) / 2)


def test_baselines_rank_the_obvious_first():
    histories = [[np.array([0, 1]), np.array([0])], [np.array([0, 2])], [np.array([2, 3])]]
    for baseline in (
        baselines.GlobalPopularity(),
        baselines.PersonalFrequency(),
        baselines.ItemKNN(),
        baselines.TifuKNN(neighbours=1),
    ):
        baseline.fit(histories, 4)
        assert 0 in np.argsort(-baseline.scores(0), kind="stable")[:2], baseline.name
