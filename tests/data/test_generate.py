"""`omnix generate`: layout, integrity, determinism, and that it shops like a supermarket."""

from __future__ import annotations

import csv
import filecmp
import os
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from generated_supermarket import Supermarket

from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.taxonomy import AISLES, SEASONS
from omnix_recs.errors import InvalidArgumentError

TINY = dict(customers=150, products=400, days=90, seed=3)
FILES = (
    "aisles.csv",
    "departments.csv",
    "products.csv",
    "orders.csv",
    "order_products__prior.csv",
    "order_products__train.csv",
    "households.csv",
    "generation.json",
)


def header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


# --- layout and integrity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders.csv", "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order"),
        ("order_products__prior.csv", "order_id,product_id,add_to_cart_order,reordered"),
        ("order_products__train.csv", "order_id,product_id,add_to_cart_order,reordered"),
        ("aisles.csv", "aisle_id,aisle"),
        ("departments.csv", "department_id,department"),
        (
            "products.csv",
            "product_id,product_name,aisle_id,department_id,brand,price,pack_size,dietary_tags,allergens,in_stock",
        ),
    ],
)
def test_files_have_the_instacart_headers(supermarket: Supermarket, name: str, expected: str) -> None:
    assert header(supermarket.directory / name) == expected.split(",")


def test_counts_match_the_summary(supermarket: Supermarket) -> None:
    s = supermarket.summary
    assert s["customers"] == len(supermarket.households) == len({o["user_id"] for o in supermarket.orders})
    assert s["orders"] == len(supermarket.orders) == len(supermarket.lines)
    assert s["order_lines"] == sum(len(rows) for rows in supermarket.lines.values())
    assert s["products"] == len(supermarket.catalog)


def test_orders_are_numbered_per_customer_and_the_last_is_train(supermarket: Supermarket) -> None:
    by_user = defaultdict(list)
    for o in supermarket.orders:
        by_user[o["user_id"]].append(o)
    for user_orders in by_user.values():
        assert [int(o["order_number"]) for o in user_orders] == list(range(1, len(user_orders) + 1))
        assert [o["eval_set"] for o in user_orders] == ["prior"] * (len(user_orders) - 1) + ["train"]
        assert user_orders[0]["days_since_prior_order"] == ""
        assert all(o["days_since_prior_order"].endswith(".0") for o in user_orders[1:])
        assert all(len(o["order_hour_of_day"]) == 2 and 0 <= int(o["order_dow"]) <= 6 for o in user_orders)
        assert len(user_orders) >= 2


def test_order_lines_reference_real_orders_and_products(supermarket: Supermarket) -> None:
    order_ids = {int(o["order_id"]) for o in supermarket.orders}
    assert set(supermarket.lines) == order_ids
    n_products = len(supermarket.catalog)
    for rows in supermarket.lines.values():
        products = [p for p, _, _ in rows]
        assert all(1 <= p <= n_products for p in products)
        assert len(set(products)) == len(products)
        assert sorted(position for _, position, _ in rows) == list(range(1, len(rows) + 1))


def test_train_lines_are_exactly_the_last_orders(supermarket: Supermarket) -> None:
    train_orders = {int(o["order_id"]) for o in supermarket.orders if o["eval_set"] == "train"}
    with open(supermarket.directory / "order_products__train.csv") as fh:
        in_train_file = {int(r["order_id"]) for r in csv.DictReader(fh)}
    assert in_train_file == train_orders


def test_reordered_means_bought_by_the_same_customer_before(supermarket: Supermarket) -> None:
    seen: dict[str, set[int]] = defaultdict(set)
    for o in supermarket.orders:  # file order is chronological per customer
        rows = supermarket.lines[int(o["order_id"])]
        for product, _, reordered in rows:
            assert reordered == int(product in seen[o["user_id"]])
        seen[o["user_id"]].update(p for p, _, _ in rows)


def test_catalogue_references_and_tags(supermarket: Supermarket) -> None:
    with open(supermarket.directory / "products.csv") as fh:
        products = list(csv.DictReader(fh))
    assert [int(p["product_id"]) for p in products] == list(range(1, len(products) + 1))
    for p in products:
        aisle = AISLES[int(p["aisle_id"]) - 1]
        tags, allergens = p["dietary_tags"].split(";"), p["allergens"].split(";")
        assert int(p["department_id"]) >= 1 and p["product_name"] and float(p["price"]) > 0
        if aisle.department == "meat seafood" and aisle.name != "meat alternatives":
            assert "vegan" not in tags and "vegetarian" not in tags, p
        if aisle.name in ("milk", "packaged cheese", "yogurt") and "-milk" not in p["product_name"]:
            assert "milk" in allergens or "vegan" in tags, p
        if aisle.name == "bread" and "Gluten Free" not in p["product_name"]:
            assert "gluten" in allergens and "gluten_free" not in tags, p
        if "vegan" in tags:
            assert "vegetarian" in tags and not {"milk", "eggs", "fish", "shellfish"} & set(allergens), p


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_different_seed_different_data(tmp_path: Path) -> None:
    generate_instacart(tmp_path / "a", **TINY)
    generate_instacart(tmp_path / "b", **TINY)
    generate_instacart(tmp_path / "c", **{**TINY, "seed": TINY["seed"] + 1})
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", FILES, shallow=False)
    assert (mismatch, errors) == ([], [])
    assert not filecmp.cmp(tmp_path / "a" / "orders.csv", tmp_path / "c" / "orders.csv", shallow=False)
    assert not filecmp.cmp(tmp_path / "a" / "products.csv", tmp_path / "c" / "products.csv", shallow=False)


def test_output_does_not_depend_on_the_number_of_threads(tmp_path: Path) -> None:
    generate_instacart(tmp_path / "default", **TINY)
    script = (
        "import sys; from pathlib import Path; from omnix_recs.data.generate import generate_instacart;"
        f"generate_instacart(Path(sys.argv[1]), **{TINY!r})"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "one")], check=True, env=env, timeout=60)
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "default", tmp_path / "one", FILES, shallow=False)
    assert (mismatch, errors) == ([], [])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"products": 10}, "products"),
        ({"days": 7}, "days"),
        ({"days": 5000}, "days"),
        ({"seed": -1}, "seed"),
        ({"customers": 1.5}, "customers"),
        ({"taste_segments": 0}, "taste_segments"),
    ],
)
def test_bad_parameters_are_rejected_before_writing(tmp_path: Path, overrides: dict, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        generate_instacart(tmp_path / "out", **{**TINY, **overrides})
    assert error.value.field == field
    assert not (tmp_path / "out").exists()


# --- behaviour: hard rules ----------------------------------------------------------------------


def test_diets_and_allergies_are_never_broken(supermarket: Supermarket) -> None:
    catalog, households = supermarket.catalog, supermarket.households
    bought_by_diet: Counter[str] = Counter()
    for user, product, _ in supermarket.purchases():
        household = households[user]
        tags, allergens = catalog.dietary_tags[product - 1], catalog.allergens[product - 1]
        bought_by_diet[household["diet"]] += 1
        if household["diet"] in ("vegan", "vegetarian"):
            assert household["diet"] in tags, (user, catalog.names[product - 1])
        if household["allergens"]:
            assert not set(household["allergens"].split(";")) & set(allergens)
    assert bought_by_diet["vegan"] > 0 and bought_by_diet["vegetarian"] > 0


def test_products_are_bought_only_after_launch_and_by_their_audience(supermarket: Supermarket) -> None:
    catalog, households = supermarket.catalog, supermarket.households
    launched_later = 0
    for user, product, day in supermarket.purchases():
        assert day >= catalog.launch_day[product - 1]
        launched_later += int(catalog.launch_day[product - 1] > 0)
        aisle = AISLES[catalog.aisle[product - 1]]
        pets = households[user]["pets"].split(";")
        if aisle.audience in ("dog", "cat"):
            assert aisle.audience in pets
        if aisle.audience == "baby":
            assert int(households[user]["children"]) > 0
    assert launched_later > 0  # new products find buyers


# --- behaviour: learnable structure -------------------------------------------------------------


def test_basket_sizes_and_order_counts_are_plausible(supermarket: Supermarket) -> None:
    sizes = np.array([len(rows) for rows in supermarket.lines.values()])
    assert 7 <= sizes.mean() <= 14
    assert np.median(sizes) >= 5 and np.percentile(sizes, 90) <= 30
    per_customer = len(supermarket.orders) / len(supermarket.households)
    assert 10 <= per_customer <= 25
    reordered = [r for rows in supermarket.lines.values() for _, _, r in rows]
    assert 0.5 <= statistics.mean(reordered) <= 0.8


def test_staple_gaps_cluster_around_the_household_cycle(supermarket: Supermarket) -> None:
    """Long-cycle staples (detergent, coffee…) are rebought about one consumption cycle later."""
    catalog, households = supermarket.catalog, supermarket.households
    days_of: dict[tuple[int, int], list[int]] = defaultdict(list)
    for user, product, day in supermarket.purchases():
        days_of[(user, product)].append(day)
    ratios = []
    for (user, product), days in days_of.items():
        household = households[user]
        cycle = catalog.cycle_days[product - 1] * (2 / int(household["household_size"])) ** 0.6
        seasonal = SEASONS[catalog.season[product - 1]] != "none"
        if len(days) < 4 or seasonal or cycle < 2 * float(household["days_between_orders"]):
            continue
        ratios.append(statistics.median(np.diff(sorted(days))) / cycle)
    assert len(ratios) >= 50
    assert 0.7 <= statistics.median(ratios) <= 1.3
    assert np.percentile(ratios, 75) / np.percentile(ratios, 25) < 2.5


def test_seasonal_products_peak_in_their_season(supermarket: Supermarket) -> None:
    lines_in_month: Counter[int] = Counter()
    season_in_month: dict[str, Counter[int]] = defaultdict(Counter)
    catalog = supermarket.catalog
    for order_id, rows in supermarket.lines.items():
        month = supermarket.date_of(order_id).month
        lines_in_month[month] += len(rows)
        for product, _, _ in rows:
            season_in_month[SEASONS[catalog.season[product - 1]]][month] += 1

    def share(season: str, months: tuple[int, ...]) -> float:
        return sum(season_in_month[season][m] for m in months) / sum(lines_in_month[m] for m in months)

    summer, winter, december = (6, 7, 8), (12, 1, 2), (12,)
    assert share("bbq", summer) > 3 * share("bbq", winter)
    assert share("summer", summer) > 1.5 * share("summer", winter)
    assert share("winter", winter) > 1.5 * share("winter", summer)
    assert share("december", december) > 1.8 * share("december", (3, 4, 5, 6, 7, 8, 9))


def test_weekends_are_busiest(supermarket: Supermarket) -> None:
    weekdays = Counter(int(o["order_dow"]) for o in supermarket.orders)
    weekend = (weekdays[0] + weekdays[6]) / len(supermarket.orders)
    assert weekend > 2 / 7 + 0.02


def test_households_stay_loyal_to_their_product_in_an_aisle(supermarket: Supermarket) -> None:
    catalog = supermarket.catalog
    milk = [i for i, a in enumerate(AISLES) if a.name == "milk"][0]
    per_household: dict[int, Counter[int]] = defaultdict(Counter)
    for user, product, _ in supermarket.purchases():
        if catalog.aisle[product - 1] == milk:
            per_household[user][product] += 1
    shares = [c.most_common(1)[0][1] / sum(c.values()) for c in per_household.values() if sum(c.values()) >= 6]
    assert len(shares) >= 20
    assert statistics.median(shares) >= 0.6


def test_complements_are_bought_together(supermarket: Supermarket) -> None:
    catalog = supermarket.catalog
    aisle_of = {a.name: i for i, a in enumerate(AISLES)}
    for first, second in (("pasta", "pasta sauce"), ("chips & pretzels", "dips & salsa")):
        with_first = with_both = with_second = 0
        for rows in supermarket.lines.values():
            aisles = {catalog.aisle[p - 1] for p, _, _ in rows}
            has_first, has_second = aisle_of[first] in aisles, aisle_of[second] in aisles
            with_first += has_first
            with_second += has_second
            with_both += has_first and has_second
        lift = (with_both / with_first) / (with_second / len(supermarket.lines))
        assert lift > 1.5, (first, second, lift)


def test_households_of_a_taste_segment_buy_alike(supermarket: Supermarket) -> None:
    """The co-preference signal: same-segment households share more products than others."""
    bought: dict[int, set[int]] = defaultdict(set)
    for user, product, _ in supermarket.purchases():
        bought[user].add(product)
    segment = {user: h["taste_segment"] for user, h in supermarket.households.items()}
    users = sorted(bought)
    rng = np.random.default_rng(0)
    same, other = [], []
    for _ in range(6000):
        a, b = rng.choice(users, size=2, replace=False)
        jaccard = len(bought[a] & bought[b]) / len(bought[a] | bought[b])
        (same if segment[a] == segment[b] else other).append(jaccard)
    assert statistics.mean(same) > 1.3 * statistics.mean(other)


def test_some_customers_churn(supermarket: Supermarket) -> None:
    churned = [h for h in supermarket.households.values() if h["churned"] == "1"]
    assert 0.2 <= len(churned) / len(supermarket.households) <= 0.6
    assert statistics.median(int(h["days_since_last_order"]) for h in churned) > 30
