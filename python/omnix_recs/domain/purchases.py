"""Order lines in columnar form: how purchase history travels in bulk.

A model build, an import or a shopper's history read moves thousands of lines at a time, and
one object per line would cost more than the work done on it. These are plain data types that
every store produces and the domain, the engine and the importers consume, so they live here,
below all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from omnix_recs.domain.models import Purchase
from omnix_recs.errors import InvalidArgumentError


def basket_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct basket keys numbered in order of first sight, each line's code): lines
    `keys` (one per line, e.g. a hash of customer and order id) grouped into baskets numbered
    0, 1, ... as they first appear. The numbering must not follow the keys' values: those come
    from `hash()` of order ids, salted per process, and a shopper's trips at the same moment are
    ordered by basket code, so hash-ordered codes made two trainings on the same data differ."""
    distinct, first, codes = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[codes.reshape(-1)]


@dataclass(frozen=True, slots=True)
class PurchaseColumns:
    """A batch of order lines in columnar form, for model builds and analysis scans.

    `purchased_at` is in epoch seconds (UTC). All lists have the same length, but `store_ids`
    may be empty: no line's store is known (the same as "" for every line).
    """

    customer_ids: list[str]
    order_ids: list[str]
    product_ids: list[str]
    quantities: list[int]
    unit_prices: list[float]
    purchased_at: list[int]
    store_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.product_ids)

    def without_customers(self, customer_ids: AbstractSet[str]) -> PurchaseColumns:
        """The same batch without the lines of `customer_ids`."""
        keep = [i for i, c in enumerate(self.customer_ids) if c not in customer_ids]
        if len(keep) == len(self.customer_ids):
            return self
        customers, orders, products, quantities, prices, times = (
            [column[i] for i in keep] for column in self._columns()
        )
        stores = [self.store_ids[i] for i in keep] if self.store_ids else []
        return PurchaseColumns(customers, orders, products, quantities, prices, times, stores)

    def _columns(self) -> tuple[list[Any], ...]:
        return (
            self.customer_ids,
            self.order_ids,
            self.product_ids,
            self.quantities,
            self.unit_prices,
            self.purchased_at,
        )

    def rows(self) -> Iterator[tuple[str, str, str, int, float, int]]:
        """(customer_id, order_id, product_id, quantity, unit_price, purchased_at) per line;
        `InvalidArgumentError("columns")` when the columns differ in length."""
        columns = self._columns()
        lengths = {len(column) for column in columns}
        if len(lengths) != 1:
            raise InvalidArgumentError(
                "columns", f"all columns must have the same length, got lengths {sorted(lengths)}"
            )
        return zip(*columns)

    def rows_with_stores(self) -> Iterator[tuple[str, str, str, int, float, int, str]]:
        """`rows()` with each line's store id last ("" when not known)."""
        rows = self.rows()
        if self.store_ids and len(self.store_ids) != len(self.product_ids):
            raise InvalidArgumentError(
                "columns", f"store_ids has {len(self.store_ids)} entries for {len(self.product_ids)} lines"
            )
        stores = self.store_ids or [""] * len(self.product_ids)
        return ((*row, store) for row, store in zip(rows, stores))


@dataclass(frozen=True, slots=True)
class OrderLines:
    """One customer's order lines as columns, in no particular order (`Store.order_lines_of`).

    The request path's read of a shopper's history: a miss of the shopper cache summarises it
    at once (`engine.features.summarize_lines`), so no `Purchase` or `datetime` is built per
    line. `purchased_at_s` is float64 epoch seconds (UTC), equal to `purchased_at.timestamp()`
    of the same line: the nearest float to the exact microsecond, so until the year 2242
    distinct microseconds stay distinct and comparing with a request's `as_of.timestamp()`
    agrees with comparing the datetimes.
    """

    order_ids: Sequence[str]
    product_ids: Sequence[str]
    quantities: np.ndarray  # int64
    unit_prices: np.ndarray  # float64
    purchased_at_s: np.ndarray  # float64 epoch seconds

    def __post_init__(self) -> None:
        lengths = {
            len(self.order_ids),
            len(self.product_ids),
            len(self.quantities),
            len(self.unit_prices),
            len(self.purchased_at_s),
        }
        if len(lengths) != 1:
            raise InvalidArgumentError(
                "order_lines", f"all columns must have the same length, got lengths {sorted(lengths)}"
            )

    def __len__(self) -> int:
        return len(self.purchased_at_s)

    def bought_before(self, moment: datetime) -> OrderLines:
        """The lines bought before `moment`, in their order: what `Store.order_lines_of(customer,
        before=moment)` answers when these are all the customer's lines."""
        kept = self.purchased_at_s < moment.timestamp()
        if kept.all():
            return self
        return OrderLines(
            order_ids=[o for o, k in zip(self.order_ids, kept.tolist()) if k],
            product_ids=[p for p, k in zip(self.product_ids, kept.tolist()) if k],
            quantities=self.quantities[kept],
            unit_prices=self.unit_prices[kept],
            purchased_at_s=self.purchased_at_s[kept],
        )

    @classmethod
    def from_purchases(cls, purchases: Sequence[Purchase]) -> OrderLines:
        return cls(
            order_ids=[p.order_id for p in purchases],
            product_ids=[p.product_id for p in purchases],
            quantities=np.array([p.quantity for p in purchases], dtype=np.int64),
            unit_prices=np.array([p.unit_price for p in purchases], dtype=np.float64),
            purchased_at_s=np.array([p.purchased_at.timestamp() for p in purchases], dtype=np.float64),
        )
