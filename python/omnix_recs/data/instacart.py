"""`omnix import instacart DIR`: load the public Instacart CSV layout into a `Store`.

Ids are kept exactly as written (DESIGN.md), so only canonical positive whole numbers are
accepted. Instacart has only relative days: each customer's last order is placed on `as_of` and
earlier ones are rebuilt from `days_since_prior_order`. One `store.import_session()` makes the
import all or nothing and, for a fixed `as_of`, idempotent. Order lines stream in blocks through
a vectorised fast path; a block it refuses is re-read row by row with the exact rules, so an
error names the file, line and column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from omnix_recs import progress
from omnix_recs.domain.models import ALLERGENS, DIETARY_TAGS, Customer, Preferences, Product
from omnix_recs.domain.purchases import PurchaseColumns
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.base import ImportDestination, ImportFollower

BLOCK_BYTES = 8 << 20  # ~500k order lines per batch written to the store
MAX_ID_DIGITS = 18  # fits int64
MAX_TEXT = 500  # longest product, aisle or department name accepted
SECONDS_PER_DAY = 86_400
GENERATION_FILE = "generation.json"

ORDERS_COLUMNS = (
    "order_id",
    "user_id",
    "eval_set",
    "order_number",
    "order_dow",
    "order_hour_of_day",
    "days_since_prior_order",
)
ORDER_PRODUCTS_COLUMNS = ("order_id", "product_id", "add_to_cart_order", "reordered")
ORDER_PRODUCTS_FILES = ("order_products__prior.csv", "order_products__train.csv")
PRODUCT_COLUMNS = ("product_id", "product_name", "aisle_id", "department_id")
PRODUCT_EXTRA_COLUMNS = ("brand", "price", "pack_size", "dietary_tags", "allergens", "in_stock")
HOUSEHOLD_COLUMNS = (
    "user_id",
    "household_size",
    "adults",
    "children",
    "age_band",
    "budget_tier",
    "diet",
    "allergens",
    "organic_preference",
    "pets",
    "taste_segment",
    "days_between_orders",
    "churned",
    "days_since_last_order",
)
EVAL_SETS = ("prior", "train", "test")
DIETS = {"": (), "omnivore": (), "vegetarian": ("vegetarian",), "vegan": ("vegan",)}


@dataclass(frozen=True, slots=True)
class ImportReport:
    customers: int
    products: int
    orders: int  # orders with at least one line
    order_lines: int
    seconds: float


def default_as_of(directory: Path) -> date | None:
    """The last day of a directory written by `omnix generate` (None for other directories)."""
    path = Path(directory) / GENERATION_FILE
    if not path.is_file():
        return None
    try:
        return date.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["end_date"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(GENERATION_FILE, f"no valid end_date: {exc}") from None


def import_instacart(
    store: ImportDestination, directory: Path, *, as_of: date, follower: ImportFollower | None = None, workers: int = 1
) -> ImportReport:
    """Import an Instacart-layout directory into `store` (see the module docstring); `follower`
    hears of the order lines (the training snapshot's `ImportedLines`). `workers` > 1: the
    lines are written by that many processes where the store can (`add_purchase_shares`),
    each customer's by one of them, after the `--as-of` check; this process reads the lines
    too, for the report and the follower."""
    started = time.perf_counter()
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidArgumentError("directory", f"{directory} is not a directory")
    line_files = [name for name in ORDER_PRODUCTS_FILES if (directory / name).is_file()]
    if not line_files:
        raise InvalidArgumentError("directory", f"{directory} has none of {', '.join(ORDER_PRODUCTS_FILES)}")

    departments = _read_names(directory, "departments.csv", ("department_id", "department"))
    aisles = _read_names(directory, "aisles.csv", ("aisle_id", "aisle"))
    products = _read_products(directory, aisles, departments)
    orders = _read_orders(directory)
    households = _read_households(directory, orders)
    clock = _OrderClock(orders, households, as_of)
    price_of = _PriceList(products)
    customers = _customers(orders, clock, households)

    lines = 0
    line_bytes = sum((directory / name).stat().st_size for name in line_files)
    with store.import_session(follower) as session:
        session.add_products(products)
        session.add_customers(customers)
        if workers > 1:
            _refuse_another_as_of(store, clock, as_of)
        with progress.track("import order lines", total=line_bytes, unit=progress.BYTES) as task:

            def read_lines() -> Iterator[PurchaseColumns]:
                nonlocal lines
                for name in line_files:
                    for batch in _read_order_lines(directory, name, clock, price_of, task):
                        lines += len(batch)
                        yield batch

            if workers > 1:
                shares = _OrderLineShares(directory, tuple(line_files), as_of)
                session.add_purchase_shares(shares, workers, read_lines())
            else:
                for batch in read_lines():
                    session.add_purchase_columns(batch)
        # After reading (so a bad file is reported as such), before anything is committed.
        _refuse_another_as_of(store, clock, as_of)
        with progress.step("import: commit"):
            session.commit()
    return ImportReport(
        customers=len(customers),
        products=len(products),
        orders=int(clock.has_lines.sum()),
        order_lines=lines,
        seconds=round(time.perf_counter() - started, 3),
    )


# --- reading CSV files ------------------------------------------------------------------------


class _CsvFile:
    """A CSV file read row by row, with its name and line numbers for error messages."""

    def __init__(self, directory: Path, name: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        self.name = name
        path = directory / name
        if not path.is_file():
            raise InvalidArgumentError(name, f"file not found in {directory}")
        self.path = path
        self._handle = open(path, newline="", encoding="utf-8-sig")
        self.reader = csv.reader(self._handle)
        self.line = 1
        try:
            header = next(self.reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            self.close()
            raise self._unreadable(exc) from None
        if header is None:
            self.close()
            raise InvalidArgumentError(f"{name}:line 1", "the file is empty (a header line is required)")
        self.columns = tuple(column.strip() for column in header)
        missing = [c for c in required if c not in self.columns]
        unknown = [c for c in self.columns if c not in required and c not in optional]
        duplicated = len(set(self.columns)) != len(self.columns)
        if missing or unknown or duplicated or self.columns[: len(required)] != tuple(required):
            self.close()
            expected = ",".join(required) + (f" (then any of {','.join(optional)})" if optional else "")
            raise InvalidArgumentError(f"{name}:line 1", f"bad header {','.join(self.columns)!r}; expected {expected}")
        self.line = 1

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row by column name); every row must have every column."""
        try:
            for row in self.reader:
                self.line = self.reader.line_num
                if not row:
                    continue
                self.check_width(row)
                yield self.line, dict(zip(self.columns, row))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: UnicodeDecodeError | csv.Error) -> InvalidArgumentError:
        """The error for bytes that are not UTF-8 or CSV, naming the line and column."""
        if isinstance(exc, csv.Error):
            line = self.reader.line_num
            if "field larger than field limit" in str(exc):
                return InvalidArgumentError(
                    f"{self.name}:line {line}", f"a field is longer than {csv.field_size_limit()} characters"
                )
            return InvalidArgumentError(f"{self.name}:line {line}", f"not valid CSV: {exc}")
        # The text reader decodes ahead of the CSV reader: find the bad line from the bytes.
        columns: list[str] = []
        with open(self.path, "rb") as raw:
            for number, data in enumerate(raw, start=1):
                if number == 1:
                    columns = next(csv.reader([data.decode("utf-8-sig", "replace")]), [])
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as bad:
                    before = data[: bad.start].decode("utf-8", "replace")
                    fields = next(csv.reader([before]), [""])
                    column = (
                        columns[len(fields) - 1].strip()
                        if number > 1 and len(fields) <= len(columns)
                        else f"character {len(before) + 1}"
                    )
                    return InvalidArgumentError(
                        _where(self.name, number, column),
                        f"not valid UTF-8 text (byte 0x{data[bad.start]:02x} at character {len(before) + 1}); "
                        "save the file as UTF-8",
                    )
        return InvalidArgumentError(self.name, "not valid UTF-8 text; save the file as UTF-8")

    def check_width(self, row: Sequence[str]) -> None:
        if len(row) != len(self.columns):
            raise InvalidArgumentError(
                f"{self.name}:line {self.line}", f"expected {len(self.columns)} columns, got {len(row)}"
            )

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(file: str, line: int, column: str) -> str:
    return f"{file}:line {line}:{column}"


_ID = re.compile(rf"[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}}")
# NUL, terminal escapes and other control characters (C0, DEL, C1) have no place in a name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WHOLE = re.compile(r"[0-9]{1,9}")
_INTEGRAL_FLOAT = re.compile(r"([0-9]{1,9})(?:\.0*)?")


def _parse_id(text: str) -> int:
    if not _ID.fullmatch(text):
        raise ValueError(f"expected a positive whole-number id (no sign, no leading zero), got {text!r}")
    return int(text)


def _parse_whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {text!r}")
        return int(text)

    return parse


def _parse_days(text: str) -> int:
    """days_since_prior_order: empty (first order), "7" or "7.0"."""
    if text == "":
        return -1
    match = _INTEGRAL_FLOAT.fullmatch(text)
    if not match or int(match.group(1)) > 3650:
        raise ValueError(f"expected a whole number of days from 0 to 3650 (or empty), got {text!r}")
    return int(match.group(1))


def _parse_eval_set(text: str) -> int:
    if text not in EVAL_SETS:
        raise ValueError(f"expected one of {', '.join(EVAL_SETS)}, got {text!r}")
    return EVAL_SETS.index(text)


def _parse(file: str, line: int, column: str, parse: Callable[[str], int], text: str) -> int:
    try:
        return parse(text)
    except ValueError as exc:
        raise InvalidArgumentError(_where(file, line, column), str(exc)) from None


def _text(file: str, line: int, column: str, text: str, *, required: bool = True) -> str:
    text = text.strip()
    if required and not text:
        raise InvalidArgumentError(_where(file, line, column), "must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidArgumentError(_where(file, line, column), f"longer than {MAX_TEXT} characters")
    control = _CONTROL.search(text)
    if control is not None:
        raise InvalidArgumentError(
            _where(file, line, column),
            f"must not contain control characters (U+{ord(control.group()):04X} at position {control.start()})",
        )
    return text


# --- the catalogue ------------------------------------------------------------------------------


def _read_names(directory: Path, name: str, columns: tuple[str, str]) -> dict[str, str]:
    """aisles.csv / departments.csv: id → name."""
    id_column, name_column = columns
    names: dict[str, str] = {}
    with _CsvFile(directory, name, columns) as f:
        for line, row in f.rows():
            key = row[id_column]
            _parse(name, line, id_column, _parse_id, key)
            if key in names:
                raise InvalidArgumentError(_where(name, line, id_column), f"duplicate id {key}")
            names[key] = _text(name, line, name_column, row[name_column])
    return names


def _read_products(directory: Path, aisles: dict[str, str], departments: dict[str, str]) -> list[Product]:
    name = "products.csv"
    products: dict[str, Product] = {}
    with _CsvFile(directory, name, PRODUCT_COLUMNS, PRODUCT_EXTRA_COLUMNS) as f:
        for line, row in f.rows():
            product_id = row["product_id"]
            _parse(name, line, "product_id", _parse_id, product_id)
            if product_id in products:
                raise InvalidArgumentError(_where(name, line, "product_id"), f"duplicate id {product_id}")
            aisle = aisles.get(row["aisle_id"])
            if aisle is None:
                raise InvalidArgumentError(_where(name, line, "aisle_id"), f"unknown aisle {row['aisle_id']!r}")
            department = departments.get(row["department_id"])
            if department is None:
                raise InvalidArgumentError(
                    _where(name, line, "department_id"), f"unknown department {row['department_id']!r}"
                )
            products[product_id] = Product(
                product_id=product_id,
                name=_text(name, line, "product_name", row["product_name"]),
                department=department,
                aisle=aisle,
                brand=_text(name, line, "brand", row.get("brand", ""), required=False),
                price=_price(name, line, row.get("price", "")),
                pack_size=_text(name, line, "pack_size", row.get("pack_size", ""), required=False),
                dietary_tags=_vocabulary(name, line, "dietary_tags", row.get("dietary_tags", ""), DIETARY_TAGS),
                allergens=_vocabulary(name, line, "allergens", row.get("allergens", ""), ALLERGENS),
                in_stock=_in_stock(name, line, row.get("in_stock", "")),
            )
    return list(products.values())


def _price(file: str, line: int, text: str) -> float:
    if text.strip() == "":
        return 0.0
    try:
        price = float(text)
    except ValueError:
        price = math.nan
    if not math.isfinite(price) or price < 0 or price > 1_000_000:
        raise InvalidArgumentError(_where(file, line, "price"), f"expected a price from 0 to 1000000, got {text!r}")
    return round(price, 2)


def _vocabulary(file: str, line: int, column: str, text: str, allowed: Sequence[str]) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(";") if v.strip())
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise InvalidArgumentError(
            _where(file, line, column), f"unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    return tuple(sorted(set(values), key=allowed.index))


def _in_stock(file: str, line: int, text: str) -> bool:
    value = text.strip().lower()
    if value in ("", "1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise InvalidArgumentError(_where(file, line, "in_stock"), f"expected 1/0 or true/false, got {text!r}")


class _PriceList:
    """Vectorised product look-up: product id → price, for batches of order lines."""

    def __init__(self, products: list[Product]) -> None:
        ids = np.array([int(p.product_id) for p in products], dtype=np.int64)
        order = np.argsort(ids)
        self.ids = ids[order]
        self.prices = np.array([p.price for p in products], dtype=np.float64)[order]
        self.product_ids = [products[k].product_id for k in order.tolist()]

    def locate(self, product_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in the price list, whether the product exists)."""
        return _lookup(self.ids, product_ids)


def _lookup(sorted_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    position = np.searchsorted(sorted_ids, wanted)
    position[position == len(sorted_ids)] = 0
    found = sorted_ids[position] == wanted if len(sorted_ids) else np.zeros(len(wanted), dtype=bool)
    return position, found


# --- orders -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Orders:
    """orders.csv as columns, sorted by (user, order_number)."""

    order_id: np.ndarray  # int64
    user: np.ndarray  # int64 user id
    order_number: np.ndarray  # int64
    hour: np.ndarray  # int64
    days_since_prior: np.ndarray  # int64, -1 = empty
    line: np.ndarray  # int64, line in orders.csv (for messages)
    user_ids: np.ndarray = field(init=False)  # distinct user ids, sorted
    user_index: np.ndarray = field(init=False)  # per order: index into user_ids

    def __post_init__(self) -> None:
        self.user_ids, self.user_index = np.unique(self.user, return_inverse=True)


class _BigCsv:
    """A large CSV of numbers (orders, order lines) read in blocks of whole lines.

    Each block first takes a vectorised fast path (numpy's C parser plus checks over the raw
    bytes). A block the fast path does not accept is parsed row by row with the exact rules,
    which either accept it (quoted values, zero-padding…) or name the bad line and column.
    """

    def __init__(self, directory: Path, name: str, columns: Sequence[str]) -> None:
        self.name = name
        self.columns = tuple(columns)
        path = directory / name
        if not path.is_file():
            raise InvalidArgumentError(name, f"file not found in {directory}")
        self._handle = open(path, "rb")
        header_bytes = self._handle.readline()
        try:
            header = next(csv.reader([header_bytes.decode("utf-8-sig").rstrip("\r\n")]), [])
        except UnicodeDecodeError:
            header = []
        if tuple(column.strip() for column in header) != self.columns:
            self.close()
            raise InvalidArgumentError(
                f"{name}:line 1", f"bad header {header_bytes[:200]!r}; expected {','.join(self.columns)}"
            )

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """(line number of the block's first line, block of whole lines ending in a newline)."""
        line = 2
        while True:
            block = self._handle.read(BLOCK_BYTES)
            if not block:
                return
            block += self._handle.readline()
            if not block.endswith(b"\n"):
                block += b"\n"
            if b"\r" in block:
                block = block.replace(b"\r\n", b"\n")
            yield line, block
            line += block.count(b"\n")

    def rows(self, first_line: int, block: bytes) -> Iterator[tuple[int, list[str]]]:
        """The exact path: (line, values) for every row of a block, checking its shape."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + block[: exc.start].count(b"\n")
            start = block.rfind(b"\n", 0, exc.start) + 1
            before = block[start : exc.start].decode("utf-8", "replace")
            character = len(before) + 1
            fields = len(next(csv.reader([before]), [""]))
            where = _where(self.name, line, self.columns[fields - 1]) if fields <= len(self.columns) else None
            raise InvalidArgumentError(
                where or f"{self.name}:line {line}",
                f"not valid UTF-8 text (byte 0x{block[exc.start]:02x} at character {character}); save the file as UTF-8",
            ) from None
        reader = csv.reader(io.StringIO(text))
        try:
            for row in reader:
                line = first_line + reader.line_num - 1
                if not row:
                    raise InvalidArgumentError(f"{self.name}:line {line}", "blank line")
                if len(row) != len(self.columns):
                    raise InvalidArgumentError(
                        f"{self.name}:line {line}", f"expected {len(self.columns)} columns, got {len(row)}"
                    )
                yield line, row
        except csv.Error as exc:
            raise InvalidArgumentError(f"{self.name}:line {first_line + reader.line_num - 1}", str(exc)) from None

    def parse_rows(self, first_line: int, block: bytes, rules: Sequence[Callable[[str], int]]) -> np.ndarray:
        """The exact path for a whole block: int64 [rows, columns]."""
        parsed = [
            [_parse(self.name, line, column, rule, text) for column, rule, text in zip(self.columns, rules, row)]
            for line, row in self.rows(first_line, block)
        ]
        return np.array(parsed, dtype=np.int64).reshape(-1, len(self.columns))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _BigCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A leading zero in one of the first two columns (ids in both orders.csv and order lines).
_ID_LEADING_ZERO = re.compile(rb"\n(?:0|[0-9]*,0)")
_EMPTY_DAYS = b",-1\n"  # what an empty days_since_prior_order becomes on the fast path


def _numbers(block: bytes, n_columns: int) -> np.ndarray | None:
    """int64 [rows, n_columns] when the block is plain comma-separated whole numbers, else None."""
    rows = block.count(b"\n")
    if block.translate(None, b"0123456789,-\n") or b"\n\n" in block or block.startswith(b"\n"):
        return None
    if _ID_LEADING_ZERO.search(b"\n" + block):
        return None
    try:
        numbers = np.loadtxt(io.BytesIO(block), delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OverflowError):
        return None
    if numbers.shape != (rows, n_columns):
        return None
    return numbers


def _within(values: np.ndarray, low: int, high: int) -> bool:
    return bool(((values >= low) & (values <= high)).all())


MAX_ID = 10**MAX_ID_DIGITS - 1
_ORDERS_RULES = (
    _parse_id,
    _parse_id,
    _parse_eval_set,
    _parse_whole(1, 1_000_000),
    _parse_whole(0, 6),
    _parse_whole(0, 23),
    _parse_days,
)


def _orders_fast(block: bytes) -> np.ndarray | None:
    """The fast path for orders.csv: eval sets become their index, empty days -1, "7.0" 7."""
    if b"-" in block:
        return None
    rows = block.count(b"\n")
    eval_sets = block.count(b",prior,") + block.count(b",train,") + block.count(b",test,")
    if eval_sets != rows:
        return None
    coded = block.replace(b",prior,", b",0,").replace(b",train,", b",1,").replace(b",test,", b",2,")
    coded = coded.replace(b".0\n", b"\n").replace(b",\n", _EMPTY_DAYS)
    numbers = _numbers(coded, len(ORDERS_COLUMNS))
    if numbers is None:
        return None
    order_id, user_id, _, number, dow, hour, days = numbers.T
    ok = (
        _within(order_id, 1, MAX_ID)
        and _within(user_id, 1, MAX_ID)
        and _within(number, 1, 1_000_000)
        and _within(dow, 0, 6)
        and _within(hour, 0, 23)
        and _within(days, -1, 3650)
    )
    return numbers if ok else None


def _read_orders(directory: Path) -> _Orders:
    name = "orders.csv"
    parts: list[np.ndarray] = []
    line_parts: list[np.ndarray] = []
    with _BigCsv(directory, name, ORDERS_COLUMNS) as f:
        for first_line, block in f.blocks():
            numbers = _orders_fast(block)
            if numbers is None:
                numbers = f.parse_rows(first_line, block, _ORDERS_RULES)
            parts.append(numbers)
            line_parts.append(np.arange(first_line, first_line + len(numbers), dtype=np.int64))
    if not parts or not sum(len(p) for p in parts):
        raise InvalidArgumentError(f"{name}:line 2", "no orders")
    # One copy at a time: orders are the import's biggest resident structure.
    table = np.concatenate(parts)
    parts.clear()
    line = np.concatenate(line_parts)
    line_parts.clear()
    chronological = np.lexsort((table[:, 3], table[:, 1]))
    table, line = table[chronological], line[chronological]
    order_id, user, number, hour, days = (np.ascontiguousarray(table[:, k]) for k in (0, 1, 3, 5, 6))
    del table, chronological

    by_order = np.argsort(order_id, kind="stable")
    duplicated = np.flatnonzero(np.diff(order_id[by_order]) == 0)
    if len(duplicated):
        first, second = by_order[duplicated[0]], by_order[duplicated[0] + 1]
        raise InvalidArgumentError(_where(name, int(max(line[first], line[second])), "order_id"), "duplicate order id")
    same_user = user[1:] == user[:-1]
    repeated = np.flatnonzero(same_user & (number[1:] == number[:-1]))
    if len(repeated):
        raise InvalidArgumentError(
            _where(name, int(line[repeated[0] + 1]), "order_number"),
            "this customer already has an order with this number",
        )
    later = np.flatnonzero(same_user) + 1  # orders that have an earlier order of the same customer
    missing = later[days[later] < 0]
    if len(missing):
        raise InvalidArgumentError(
            _where(name, int(line[missing[0]]), "days_since_prior_order"),
            "required on every order but a customer's first",
        )
    return _Orders(order_id=order_id, user=user, order_number=number, hour=hour, days_since_prior=days, line=line)


# --- households (optional) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Household:
    household_size: int
    age_band: str
    dietary_restrictions: tuple[str, ...]
    allergens: tuple[str, ...]
    organic_preference: bool
    days_since_last_order: int


def _read_households(directory: Path, orders: _Orders) -> dict[str, _Household]:
    """households.csv, when present (a retailer's loyalty data; `omnix generate` writes it): each
    customer's profile, and how many days before `as_of` a churned customer's history ends."""
    name = "households.csv"
    if not (directory / name).is_file():
        return {}
    known_users = set(map(str, orders.user_ids.tolist()))
    whole, flag = _parse_whole(0, 3650), _parse_whole(0, 1)
    households: dict[str, _Household] = {}
    with _CsvFile(directory, name, ("user_id",), HOUSEHOLD_COLUMNS[1:]) as f:
        for line, row in f.rows():
            user = row["user_id"]
            _parse(name, line, "user_id", _parse_id, user)
            if user not in known_users:
                raise InvalidArgumentError(_where(name, line, "user_id"), f"user {user} has no order in orders.csv")
            if user in households:
                raise InvalidArgumentError(_where(name, line, "user_id"), f"duplicate user {user}")
            diet = row.get("diet", "").strip()
            if diet not in DIETS:
                diets = ", ".join(d for d in DIETS if d)
                raise InvalidArgumentError(_where(name, line, "diet"), f"expected one of {diets}, got {diet!r}")
            size = row.get("household_size", "")
            organic = row.get("organic_preference", "")
            last = row.get("days_since_last_order", "")
            households[user] = _Household(
                household_size=_parse(name, line, "household_size", _parse_whole(0, 50), size) if size else 0,
                age_band=_text(name, line, "age_band", row.get("age_band", ""), required=False),
                dietary_restrictions=DIETS[diet],
                allergens=_vocabulary(name, line, "allergens", row.get("allergens", ""), ALLERGENS),
                organic_preference=organic != "" and bool(_parse(name, line, "organic_preference", flag, organic)),
                days_since_last_order=_parse(name, line, "days_since_last_order", whole, last) if last else 0,
            )
    return households


# --- the calendar -------------------------------------------------------------------------------


class _OrderClock:
    """When each order happened, and which customer placed it, looked up by order id."""

    def __init__(self, orders: _Orders, households: dict[str, _Household], as_of: date) -> None:
        n = len(orders.order_id)
        user_index = orders.user_index
        # Days before the customer's last order: the sum of the gaps of all later orders.
        gaps = np.where(orders.days_since_prior > 0, orders.days_since_prior, 0)
        gaps[np.r_[True, user_index[1:] != user_index[:-1]]] = 0  # a first order's gap means nothing
        total_per_user = np.bincount(user_index, weights=gaps, minlength=len(orders.user_ids)).astype(np.int64)
        days_before_last = total_per_user[user_index] - np.cumsum(gaps) + _group_start_cumsum(gaps, user_index)
        shift = np.zeros(len(orders.user_ids), dtype=np.int64)
        if households:
            for k, user in enumerate(orders.user_ids.tolist()):
                household = households.get(str(user))
                if household is not None:
                    shift[k] = household.days_since_last_order
        midnight = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())
        at = midnight - (days_before_last + shift[user_index]) * SECONDS_PER_DAY + orders.hour * 3600
        _keep_same_day_order(at, user_index)

        self.orders = orders
        self.purchased_at = at
        self.by_id = np.argsort(orders.order_id)
        self.sorted_ids = orders.order_id[self.by_id]
        self.has_lines = np.zeros(n, dtype=bool)
        self.customer_names = [str(u) for u in orders.user_ids.tolist()]

    def locate(self, order_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in `orders`, whether the order exists) for each order id."""
        position, found = _lookup(self.sorted_ids, order_ids)
        return self.by_id[position], found


def _refuse_another_as_of(store: ImportDestination, clock: _OrderClock, as_of: date, customers: int = 5) -> None:
    """InvalidArgumentError when the store holds this folder's orders at other times: imported
    before with another `as_of`. Importing would add every purchase a second time, shifted."""
    user_index = clock.orders.user_index
    first_rows = np.flatnonzero(np.r_[True, user_index[1:] != user_index[:-1]])
    for row in first_rows[:customers].tolist():
        k = int(user_index[row])
        rows = np.flatnonzero(user_index == k)
        placed = dict(zip(map(str, clock.orders.order_id[rows].tolist()), clock.purchased_at[rows].tolist()))
        customer = clock.customer_names[k]
        for purchase in store.purchases_of(customer):
            at = placed.get(purchase.order_id)
            if at is None or int(purchase.purchased_at.timestamp()) == at:
                continue
            shift_days = round((purchase.purchased_at.timestamp() - at) / SECONDS_PER_DAY)
            earlier = date.fromordinal(as_of.toordinal() + shift_days)
            raise InvalidArgumentError(
                "--as-of",
                f"the store already holds these orders, imported with --as-of {earlier.isoformat()} (order "
                f"{purchase.order_id} of customer {customer} is on {purchase.purchased_at.date().isoformat()}); "
                f"importing with --as-of {as_of.isoformat()} would add every purchase again {abs(shift_days)} days "
                f"apart. Import again with --as-of {earlier.isoformat()} (changes nothing), or into an empty store",
            )


def _group_start_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each row, the running sum of `values` up to the end of the previous group."""
    running = np.cumsum(values)
    starts = np.r_[True, group[1:] != group[:-1]]
    before = np.where(starts, running - values, 0)
    return np.maximum.accumulate(before)


def _keep_same_day_order(at: np.ndarray, user_index: np.ndarray) -> None:
    """An order must be strictly before the customer's next one (same-day orders, earlier hour)."""
    same_user = user_index[:-1] == user_index[1:]
    while True:
        late = np.flatnonzero(same_user & (at[:-1] >= at[1:]))
        if not len(late):
            return
        # Walk back from the last offender so that chains of same-day orders resolve in one pass.
        for k in late[::-1]:
            if at[k] >= at[k + 1]:
                at[k] = at[k + 1] - 60


def _customers(orders: _Orders, clock: _OrderClock, households: dict[str, _Household]) -> list[Customer]:
    user_index = orders.user_index
    first = np.r_[True, user_index[1:] != user_index[:-1]]
    last = np.r_[user_index[1:] != user_index[:-1], True]
    first_at = clock.purchased_at[first].tolist()
    last_at = clock.purchased_at[last].tolist()
    customers = []
    for k, name in enumerate(clock.customer_names):
        customer = Customer(
            customer_id=name,
            created_at=datetime.fromtimestamp(first_at[k], UTC),
            updated_at=datetime.fromtimestamp(last_at[k], UTC),
        )
        household = households.get(name)
        if household is not None:
            customer = replace(
                customer,
                household_size=household.household_size,
                age_band=household.age_band,
                dietary_restrictions=household.dietary_restrictions,
                allergens=household.allergens,
                preferences=Preferences(organic_preference=household.organic_preference),
            )
        customers.append(customer)
    return customers


# --- order lines --------------------------------------------------------------------------------

_LINE_RULES = (_parse_id, _parse_id, _parse_whole(1, 100_000), _parse_whole(0, 1))


def _lines_fast(block: bytes) -> np.ndarray | None:
    if b"-" in block:
        return None
    numbers = _numbers(block, len(ORDER_PRODUCTS_COLUMNS))
    if numbers is None:
        return None
    order_id, product_id, cart, reordered = numbers.T
    ok = (
        _within(order_id, 1, MAX_ID)
        and _within(product_id, 1, MAX_ID)
        and _within(cart, 1, 100_000)
        and _within(reordered, 0, 1)
    )
    return numbers if ok else None


@dataclass(frozen=True)
class _OrderLineShares:
    """`PurchaseShares` of an Instacart directory: share k of n holds the lines of the
    customers whose index is k modulo n. Called in a process of its own, so it reads the
    catalogue and the orders again (seconds, against the minutes of writing its share)."""

    directory: Path
    line_files: tuple[str, ...]
    as_of: date

    def __call__(self, k: int, n: int) -> Iterator[PurchaseColumns]:
        departments = _read_names(self.directory, "departments.csv", ("department_id", "department"))
        aisles = _read_names(self.directory, "aisles.csv", ("aisle_id", "aisle"))
        products = _read_products(self.directory, aisles, departments)
        orders = _read_orders(self.directory)
        clock = _OrderClock(orders, _read_households(self.directory, orders), self.as_of)
        prices = _PriceList(products)
        unseen = progress.Task("", None, progress.BYTES, None)
        for name in self.line_files:
            yield from _read_order_lines(self.directory, name, clock, prices, unseen, share=(k, n))


def _read_order_lines(
    directory: Path,
    name: str,
    clock: _OrderClock,
    prices: _PriceList,
    task: progress.Task,
    share: tuple[int, int] | None = None,
) -> Iterator[PurchaseColumns]:
    """Batches of checked order lines (of the customers of `share` only, when given)."""
    with _BigCsv(directory, name, ORDER_PRODUCTS_COLUMNS) as f:
        for first_line, block in f.blocks():
            numbers = _lines_fast(block)
            if numbers is None:
                numbers = f.parse_rows(first_line, block, _LINE_RULES)
            order_row, order_found = clock.locate(numbers[:, 0])
            if not order_found.all():
                bad = int(np.argmin(order_found))
                raise InvalidArgumentError(
                    _where(name, first_line + bad, "order_id"), f"order {numbers[bad, 0]} is not in orders.csv"
                )
            product_row, product_found = prices.locate(numbers[:, 1])
            if not product_found.all():
                bad = int(np.argmin(product_found))
                raise InvalidArgumentError(
                    _where(name, first_line + bad, "product_id"), f"product {numbers[bad, 1]} is not in products.csv"
                )
            clock.has_lines[order_row] = True
            if share is not None:  # checked whole above: every share reports the same error
                mine = clock.orders.user_index[order_row] % share[1] == share[0]
                numbers, order_row, product_row = numbers[mine], order_row[mine], product_row[mine]
            customers, products = clock.customer_names, prices.product_ids
            yield PurchaseColumns(
                customer_ids=[customers[k] for k in clock.orders.user_index[order_row].tolist()],
                # Ids were checked to be canonical whole numbers, so their text is str(number).
                order_ids=list(map(str, numbers[:, 0].tolist())),
                product_ids=[products[k] for k in product_row.tolist()],
                # The layout has no quantity or price: one unit at the catalogue price (0 if none).
                quantities=[1] * len(numbers),
                unit_prices=prices.prices[product_row].tolist(),
                purchased_at=clock.purchased_at[order_row].tolist(),
            )
            task.advance(len(block))  # once the caller has written the block, not when it is read
