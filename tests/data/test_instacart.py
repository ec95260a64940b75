"""`omnix import instacart`: round trips, calendar rebuilding, idempotence, malformed files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from generated_supermarket import Supermarket

from omnix_recs.data import instacart
from omnix_recs.data.instacart import default_as_of, import_instacart
from omnix_recs.errors import InvalidArgumentError, NotFoundError
from omnix_recs.store.sqlite import SqliteStore

AS_OF = date(2026, 3, 1)
ORDERS_HEADER = "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order\n"
LINES_HEADER = "order_id,product_id,add_to_cart_order,reordered\n"

# A hand-made directory small enough to check every timestamp by hand.
#   customer 1: orders 100 → 7 days → 101 → 3 days → 102 (last, 18:00)
#   customer 2: orders 200 and 201 on the same day, the earlier one at a later hour
#   customer 3: one "test" order without lines (as in the public data)
BASE: dict[str, str] = {
    "departments.csv": "department_id,department\n1,dairy eggs\n2,bakery\n",
    "aisles.csv": "aisle_id,aisle\n1,milk\n2,bread\n",
    "products.csv": (
        "product_id,product_name,aisle_id,department_id,brand,price,pack_size,dietary_tags,allergens,in_stock\n"
        "10,Whole Milk,1,1,Cow Co,1.29,1 L,vegetarian;gluten_free,milk,1\n"
        '20,"Sourdough, sliced",2,2,Oven,3.49,,vegan;vegetarian,gluten,0\n'
        "30,Oat Milk,1,1,,,,,,\n"
    ),
    "orders.csv": ORDERS_HEADER
    + "100,1,prior,1,2,08,\n"
    + "101,1,prior,2,2,09,7.0\n"
    + "102,1,train,3,5,18,3.0\n"
    + "200,2,prior,1,0,10,\n"
    + "201,2,train,2,0,08,0.0\n"
    + "300,3,test,1,4,12,\n",
    "order_products__prior.csv": LINES_HEADER + "100,10,1,0\n100,20,2,0\n101,10,1,1\n200,30,1,0\n",
    "order_products__train.csv": LINES_HEADER + "102,10,1,1\n102,30,2,0\n201,20,1,0\n",
}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "omnix.db")
    yield opened
    opened.close()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def snapshot(store: SqliteStore) -> tuple:
    customers = store.list_customer_ids(1000).items
    purchases = {c: store.purchases_of(c) for c in customers}
    products = list(store.iter_products())
    return store.count_purchases(), customers, purchases, products, [store.get_customer(c) for c in customers]


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_rebuilds_the_calendar_from_the_last_order(store: SqliteStore, tmp_path: Path) -> None:
    report = import_instacart(store, write(tmp_path / "in", BASE), as_of=AS_OF)
    assert (report.customers, report.products, report.orders, report.order_lines) == (3, 3, 5, 7)
    assert store.count_purchases() == 7

    one = store.purchases_of("1")
    when = {(p.order_id, p.product_id): p.purchased_at for p in one}
    assert when[("102", "10")] == at(AS_OF, 18)  # the last order sits on as_of, at its hour
    assert when[("101", "10")] == at(AS_OF - timedelta(days=3), 9)
    assert when[("100", "20")] == at(AS_OF - timedelta(days=10), 8)
    two = {p.order_id: p.purchased_at for p in store.purchases_of("2")}
    assert two["201"] == at(AS_OF, 8)
    assert two["200"] == at(AS_OF, 7, 59)  # same day, later hour: kept before the next order

    assert {(p.product_id, p.quantity, p.unit_price) for p in one} == {("10", 1, 1.29), ("20", 1, 3.49), ("30", 1, 0.0)}
    customer = store.get_customer("1")
    assert (customer.created_at, customer.updated_at) == (at(AS_OF - timedelta(days=10), 8), at(AS_OF, 18))
    assert store.get_customer("3").customer_id == "3"  # customers exist even without lines


def test_products_keep_names_tags_and_stock(store: SqliteStore, tmp_path: Path) -> None:
    import_instacart(store, write(tmp_path / "in", BASE), as_of=AS_OF)
    milk, bread, oat = (store.get_product(i) for i in ("10", "20", "30"))
    assert (milk.name, milk.department, milk.aisle, milk.brand, milk.pack_size) == (
        "Whole Milk", "dairy eggs", "milk", "Cow Co", "1 L",
    )  # fmt: skip
    assert (milk.dietary_tags, milk.allergens, milk.in_stock) == (("vegetarian", "gluten_free"), ("milk",), True)
    assert (bread.name, bread.in_stock, bread.dietary_tags) == ("Sourdough, sliced", False, ("vegan", "vegetarian"))
    assert (oat.price, oat.brand, oat.dietary_tags, oat.in_stock) == (0.0, "", (), True)


def test_plain_instacart_files_without_extras(store: SqliteStore, tmp_path: Path) -> None:
    files = {
        **BASE,
        "products.csv": "product_id,product_name,aisle_id,department_id\n10,Milk,1,1\n20,Bread,2,2\n30,Oats,1,1\n",
    }
    del files["order_products__train.csv"]
    report = import_instacart(store, write(tmp_path / "in", files), as_of=AS_OF)
    assert (report.orders, report.order_lines) == (3, 4)
    assert store.get_product("20").price == 0.0


def test_households_fill_profiles_and_place_churned_customers_earlier(store: SqliteStore, tmp_path: Path) -> None:
    households = (
        "user_id,household_size,age_band,diet,allergens,organic_preference,days_since_last_order,budget_tier\n"
        "1,3,35-44,vegan,peanuts;sesame,1,5,low\n"
        "2,1,65+,omnivore,,0,0,high\n"
    )
    import_instacart(store, write(tmp_path / "in", {**BASE, "households.csv": households}), as_of=AS_OF)
    customer = store.get_customer("1")
    assert (customer.household_size, customer.age_band) == (3, "35-44")
    assert (customer.dietary_restrictions, customer.allergens) == (("vegan",), ("peanuts", "sesame"))
    assert customer.preferences.organic_preference is True
    last = max(p.purchased_at for p in store.purchases_of("1"))
    assert last == at(AS_OF - timedelta(days=5), 18)
    assert store.get_customer("3").household_size == 0  # no household row: profile unknown


def test_fast_and_exact_paths_agree(tmp_path: Path) -> None:
    """Quoted values, CRLF line ends and integer days take the row-by-row path: same result."""
    plain = SqliteStore(tmp_path / "plain.db")
    import_instacart(plain, write(tmp_path / "plain", BASE), as_of=AS_OF)
    quoted_lines = LINES_HEADER + '"100","10",1,0\r\n100,20,2,0\r\n101,10,1,1\r\n200,30,1,0\r\n'
    orders = BASE["orders.csv"].replace("7.0", "7").replace(",08,", ",8,")
    variant = {**BASE, "order_products__prior.csv": quoted_lines, "orders.csv": orders}
    other = SqliteStore(tmp_path / "other.db")
    import_instacart(other, write(tmp_path / "other", variant), as_of=AS_OF)
    assert snapshot(plain) == snapshot(other)
    plain.close()
    other.close()


def test_generated_supermarket_round_trip(supermarket: Supermarket, store: SqliteStore) -> None:
    as_of = default_as_of(supermarket.directory)
    assert as_of == date.fromisoformat(supermarket.summary["end_date"])
    report = import_instacart(store, supermarket.directory, as_of=as_of)
    s = supermarket.summary
    assert (report.customers, report.products, report.orders, report.order_lines) == (
        s["customers"], s["products"], s["orders"], s["order_lines"],
    )  # fmt: skip
    assert store.count_purchases() == s["order_lines"]
    # Every purchase lands on the day the simulation placed it, at the order's hour.
    checked = 0
    for order in supermarket.orders[:300]:
        order_id = int(order["order_id"])
        purchases = [p for p in store.purchases_of(order["user_id"]) if p.order_id == order["order_id"]]
        assert {p.product_id for p in purchases} == {str(p) for p, _, _ in supermarket.lines[order_id]}
        moment = {p.purchased_at for p in purchases}
        assert moment == {at(supermarket.date_of(order_id), int(order["order_hour_of_day"]))}
        checked += 1
    assert checked == 300
    vegan = next(u for u, h in supermarket.households.items() if h["diet"] == "vegan")
    assert store.get_customer(str(vegan)).dietary_restrictions == ("vegan",)


def test_importing_twice_changes_nothing(store: SqliteStore, tmp_path: Path) -> None:
    directory = write(tmp_path / "in", BASE)
    import_instacart(store, directory, as_of=AS_OF)
    before = snapshot(store)
    report = import_instacart(store, directory, as_of=AS_OF)
    assert report.order_lines == 7
    assert snapshot(store) == before


def test_default_as_of_is_only_known_for_generated_directories(tmp_path: Path) -> None:
    assert default_as_of(write(tmp_path / "plain", BASE)) is None
    (tmp_path / "plain" / "generation.json").write_text('{"end_date": "2026-11-01"}')
    assert default_as_of(tmp_path / "plain") == date(2026, 11, 1)


# --- malformed input: rejected whole, naming file, line and column ------------------------------


def replace(name: str, old: str, new: str) -> Callable[[dict[str, str]], dict[str, str]]:
    def change(files: dict[str, str]) -> dict[str, str]:
        assert old in files[name], (name, old)
        return {**files, name: files[name].replace(old, new, 1)}

    return change


def remove(name: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda files: {k: v for k, v in files.items() if k != name}


def add_households(text: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda files: {**files, "households.csv": "user_id,diet,days_since_last_order\n" + text}


PRIOR, TRAIN = "order_products__prior.csv", "order_products__train.csv"
MALFORMED = [
    ("orders header", replace("orders.csv", "order_id,user_id", "order_id,user"), "orders.csv:line 1"),
    ("lines header", replace(PRIOR, "reordered", "reorder"), f"{PRIOR}:line 1"),
    ("non-integer product", replace(PRIOR, "100,20,2,0", "100,abc,2,0"), f"{PRIOR}:line 3:product_id"),
    ("negative cart position", replace(PRIOR, "101,10,1,1", "101,10,-1,1"), f"{PRIOR}:line 4:add_to_cart_order"),
    ("empty order id", replace(PRIOR, "200,30,1,0", ",30,1,0"), f"{PRIOR}:line 5:order_id"),
    ("leading zero id", replace(TRAIN, "201,20,1,0", "0201,20,1,0"), f"{TRAIN}:line 4:order_id"),
    ("reordered not a flag", replace(TRAIN, "102,30,2,0", "102,30,2,2"), f"{TRAIN}:line 3:reordered"),
    ("unknown product", replace(TRAIN, "201,20,1,0", "201,99,1,0"), f"{TRAIN}:line 4:product_id"),
    ("line of an unknown order", replace(PRIOR, "101,10,1,1", "999,10,1,1"), f"{PRIOR}:line 4:order_id"),
    ("truncated row", replace(PRIOR, "100,20,2,0", "100,20"), f"{PRIOR}:line 3"),
    ("blank line", replace(PRIOR, "101,10,1,1\n", "\n101,10,1,1\n"), f"{PRIOR}:line 4"),
    ("fractional days", replace("orders.csv", "7.0", "7.5"), "orders.csv:line 3:days_since_prior_order"),
    ("missing days", replace("orders.csv", "3.0", ""), "orders.csv:line 4:days_since_prior_order"),
    ("unknown eval set", replace("orders.csv", "train,3", "later,3"), "orders.csv:line 4:eval_set"),
    ("hour out of range", replace("orders.csv", ",18,", ",24,"), "orders.csv:line 4:order_hour_of_day"),
    ("duplicate order id", replace("orders.csv", "201,2,train", "200,2,train"), "orders.csv:line 6:order_id"),
    (
        "duplicate order number",
        replace("orders.csv", "201,2,train,2", "201,2,train,1"),
        "orders.csv:line 6:order_number",
    ),
    ("negative user", replace("orders.csv", "300,3,", "300,-3,"), "orders.csv:line 7:user_id"),
    (
        "unknown dietary tag",
        replace("products.csv", "vegan;vegetarian", "vegan;keto"),
        "products.csv:line 3:dietary_tags",
    ),
    ("unknown allergen", replace("products.csv", ",milk,1", ",lactose,1"), "products.csv:line 2:allergens"),
    ("negative price", replace("products.csv", "3.49", "-3.49"), "products.csv:line 3:price"),
    ("unknown aisle", replace("products.csv", "30,Oat Milk,1,", "30,Oat Milk,7,"), "products.csv:line 4:aisle_id"),
    ("empty product name", replace("products.csv", "Whole Milk", ""), "products.csv:line 2:product_name"),
    ("unknown product column", replace("products.csv", "in_stock", "stock"), "products.csv:line 1"),
    ("empty aisle name", replace("aisles.csv", "2,bread", "2,"), "aisles.csv:line 3:aisle"),
    ("household of nobody", add_households("9,vegan,0\n"), "households.csv:line 2:user_id"),
    ("unknown diet", add_households("1,carnivore,0\n"), "households.csv:line 2:diet"),
    ("negative churn days", add_households("1,vegan,-4\n"), "households.csv:line 2:days_since_last_order"),
    ("missing orders file", remove("orders.csv"), "orders.csv"),
]


@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, f in MALFORMED])
def test_malformed_files_are_rejected_whole(
    store: SqliteStore, tmp_path: Path, change: Callable[[dict[str, str]], dict[str, str]], field: str
) -> None:
    import_instacart(store, write(tmp_path / "good", BASE), as_of=AS_OF - timedelta(days=30))
    before = snapshot(store)
    with pytest.raises(InvalidArgumentError) as error:
        import_instacart(store, write(tmp_path / "bad", change(BASE)), as_of=AS_OF)
    assert error.value.field == field, str(error.value)
    assert snapshot(store) == before


def test_a_bad_line_late_in_the_lines_leaves_an_empty_store_empty(store: SqliteStore, tmp_path: Path) -> None:
    bad = replace(TRAIN, "201,20,1,0", "201,99,1,0")(BASE)
    with pytest.raises(InvalidArgumentError):
        import_instacart(store, write(tmp_path / "bad", bad), as_of=AS_OF)
    assert store.count_purchases() == 0
    assert store.list_customer_ids(10).items == ()
    with pytest.raises(NotFoundError):
        store.get_product("10")


def test_line_numbers_stay_exact_across_blocks(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instacart, "BLOCK_BYTES", 64)  # many small blocks
    lines = "".join(f"{order},{product},{k + 1},0\n" for k, (order, product) in enumerate([(100, 10), (100, 20)] * 40))
    files = {**BASE, PRIOR: LINES_HEADER + lines.replace("100,20,58,0", "100,20,58,x")}
    with pytest.raises(InvalidArgumentError) as error:
        import_instacart(store, write(tmp_path / "in", files), as_of=AS_OF)
    assert error.value.field == f"{PRIOR}:line 59:reordered"
    files[PRIOR] = LINES_HEADER + lines
    report = import_instacart(store, write(tmp_path / "in", files), as_of=AS_OF)
    assert report.order_lines == 80 + 3
    assert store.count_purchases() == 2 + 3  # one line per (order, product): repeats are idempotent
