"""The `Store` protocol: everything the product persists, behind one interface.

Two implementations: `sqlite.SqliteStore` (embedded default) and, later, `dynamodb.DynamoStore`.
One contract test suite (`tests/store/`) runs against every implementation.

Rules every implementation follows:
- Methods are synchronous and thread-safe; the async server calls them through
  `asyncio.to_thread` (or inline when they are index look-ups of a few rows).
- Every multi-row write is atomic: it happens whole or not at all.
- Missing entities raise `NotFoundError`; creating a taken key raises `AlreadyExistsError`.
- Lists come back newest first where they have a time, with opaque page tokens.
- Timestamps go in and come out as timezone-aware UTC datetimes; a naive one is an
  `InvalidArgumentError` naming the field.
- A `page_size` or `limit` below 1, or a page token not returned by the same listing, is an
  `InvalidArgumentError` naming `page_size`, `limit` or `page_token`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ContextManager, Iterable, Iterator, Protocol, Sequence

import numpy as np

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.domain.models import (
    Customer,
    Feedback,
    Interaction,
    Page,
    Product,
    ProductFilter,
    Purchase,
    ServedRecommendation,
)


@dataclass(frozen=True, slots=True)
class PurchaseColumns:
    """A batch of order lines in columnar form, for model builds and analysis scans.

    `purchased_at` is in epoch seconds (UTC). All lists have the same length.
    """

    customer_ids: list[str]
    order_ids: list[str]
    product_ids: list[str]
    quantities: list[int]
    unit_prices: list[float]
    purchased_at: list[int]

    def __len__(self) -> int:
        return len(self.product_ids)

    def rows(self) -> Iterator[tuple[str, str, str, int, float, int]]:
        """(customer_id, order_id, product_id, quantity, unit_price, purchased_at) per line;
        `InvalidArgumentError("columns")` when the columns differ in length."""
        columns = (
            self.customer_ids, self.order_ids, self.product_ids, self.quantities, self.unit_prices, self.purchased_at
        )
        lengths = {len(column) for column in columns}
        if len(lengths) != 1:
            raise InvalidArgumentError("columns", f"all columns must have the same length, got lengths {sorted(lengths)}")
        return zip(*columns)


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
        lengths = {len(self.order_ids), len(self.product_ids), len(self.quantities), len(self.unit_prices),
                   len(self.purchased_at_s)}
        if len(lengths) != 1:
            raise InvalidArgumentError("order_lines", f"all columns must have the same length, got lengths {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.purchased_at_s)

    @classmethod
    def from_purchases(cls, purchases: Sequence[Purchase]) -> "OrderLines":
        return cls(
            order_ids=[p.order_id for p in purchases],
            product_ids=[p.product_id for p in purchases],
            quantities=np.array([p.quantity for p in purchases], dtype=np.int64),
            unit_prices=np.array([p.unit_price for p in purchases], dtype=np.float64),
            purchased_at_s=np.array([p.purchased_at.timestamp() for p in purchases], dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A trained model version: where its artifact lives and how it scored offline."""

    version: str
    created_at: datetime
    artifact_uri: str
    metrics: dict[str, float]
    active: bool = False
    notes: str = ""


@dataclass(frozen=True, slots=True)
class CustomerErasure:
    """How many rows an erasure removed, per kind (for the caller's audit trail)."""

    counts: dict[str, int]


class ImportSession(Protocol):
    """A bulk write that becomes visible whole at `commit()` and leaves nothing if abandoned.

    Used as a context manager: leaving the `with` block by an exception rolls back. Rows
    whose keys already exist are overwritten with the same values, so re-importing the same
    data changes nothing (idempotent).
    """

    def add_customers(self, customers: Iterable[Customer]) -> None: ...
    def add_products(self, products: Iterable[Product]) -> None: ...
    def add_purchases(self, purchases: Iterable[Purchase]) -> None: ...
    def add_purchase_columns(self, columns: PurchaseColumns) -> None: ...
    def commit(self) -> None: ...
    def __enter__(self) -> "ImportSession": ...
    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None: ...

    # --- customers -----------------------------------------------------------------------
    def create_customer(self, customer: Customer) -> None:
        """Insert; `AlreadyExistsError` when the id is taken."""

    def get_customer(self, customer_id: str) -> Customer:
        """`NotFoundError` when absent."""

    def put_customer(self, customer: Customer, *, replaces: datetime | None = None) -> None:
        """Replace an existing customer; `NotFoundError` when absent. With `replaces` (the
        `updated_at` of the profile the change was computed from) the write is conditional:
        `ConflictError` if the stored profile has been updated since, and nothing is written.
        That is how concurrent read-modify-write updates avoid losing each other's changes."""

    def list_customer_ids(self, page_size: int, page_token: str = "") -> Page[str]:
        """Ids of every customer with a profile, ascending (for batch jobs)."""

    def delete_customer(self, customer_id: str) -> CustomerErasure:
        """Erase the customer and everything derived from them, in one transaction.

        `counts` has the keys profile, purchases, interactions, recommendations, feedback
        (including feedback on the customer's served lists) and documents.
        `NotFoundError` when there is nothing to erase (no profile and no rows)."""

    # --- catalog -------------------------------------------------------------------------
    def upsert_products(self, products: Sequence[Product]) -> int:
        """Insert or replace, atomically; returns the number written."""

    def get_product(self, product_id: str) -> Product: ...
    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        """The ones that exist; missing ids are simply absent from the result."""

    def list_products(
        self, product_filter: ProductFilter, page_size: int, page_token: str = ""
    ) -> Page[Product]:
        """Ordered by product id."""

    def iter_products(self) -> Iterator[Product]:
        """The whole catalog, for model builds."""

    def catalog_version(self) -> int:
        """A number that changes whenever a product is written (upserts, imports), in O(1):
        lets serving processes keep a catalog snapshot until the catalog really changed."""

    # --- purchases -----------------------------------------------------------------------
    def add_purchases(self, purchases: Sequence[Purchase]) -> int:
        """Atomic and idempotent on (customer, purchased_at, order, product)."""

    def list_purchases(
        self,
        customer_id: str,
        page_size: int,
        page_token: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Page[Purchase]:
        """Newest first; `start` inclusive, `end` exclusive."""

    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]:
        """The customer's whole history (oldest first), optionally only before a moment."""

    def order_lines_of(self, customer_id: str, before: datetime | None = None) -> OrderLines:
        """The lines `purchases_of` returns, as columns in no particular order (see `OrderLines`):
        the history read of a recommendation request, a few times cheaper. Empty for an
        unknown customer."""

    def scan_purchases(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        """Every order line, in batches ordered by (customer, purchased_at), for model builds."""

    def count_purchases(self) -> int: ...

    # --- behaviour -----------------------------------------------------------------------
    def add_interaction(self, interaction: Interaction) -> None:
        """Idempotent on (customer, occurred_at, interaction_id)."""

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        """Newest first; `since` inclusive."""

    # --- served recommendations and feedback -------------------------------------------------
    def save_recommendation(self, served: ServedRecommendation) -> None:
        """Record a served list as it was; `AlreadyExistsError` when its id is taken."""

    def save_recommendations(self, served: Sequence[ServedRecommendation]) -> None:
        """Record many served lists in one batch write (the server's write-behind queue flushes
        through this). Idempotent: saving the same lists again changes nothing, so a failed
        batch can be retried. Ids are random (`uuid4`), so unlike `save_recommendation` the
        batch does not check that they are new."""

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation: ...
    def list_recommendations(self, customer_id: str, limit: int = 20) -> list[ServedRecommendation]:
        """Newest first."""

    def add_feedback(self, feedback: Feedback) -> None:
        """Idempotent on (recommendation, occurred_at, product, event)."""

    def list_feedback(self, recommendation_id: str) -> list[Feedback]:
        """Newest first."""

    # --- models --------------------------------------------------------------------------
    def save_model(self, record: ModelRecord) -> None:
        """`AlreadyExistsError` when the version exists. Saving a record with `active=True`
        makes it the single active version (as `activate_model` would), atomically."""

    def list_models(self) -> list[ModelRecord]:
        """Newest first."""

    def activate_model(self, version: str) -> ModelRecord:
        """Make `version` the single active one; `NotFoundError` when unknown."""

    def active_model(self) -> ModelRecord | None: ...

    # --- derived documents (predictions, analyses) -----------------------------------------
    def put_document(self, kind: str, customer_id: str, created_at: datetime, body: dict[str, Any]) -> None:
        """Store a JSON document derived from a customer's data (predictions, AI analyses).
        The same (kind, customer, created_at) replaces the earlier body. Erased with the customer."""

    def latest_document(self, kind: str, customer_id: str) -> tuple[datetime, dict[str, Any]] | None: ...
    def customer_documents(self, customer_id: str) -> list[tuple[str, datetime, dict[str, Any]]]:
        """(kind, created_at, body) of every document of the customer, newest first (for export)."""

    def list_documents(
        self, kind: str, since: datetime | None = None, limit: int = 10_000
    ) -> list[tuple[str, datetime, dict[str, Any]]]:
        """(customer_id, created_at, body), newest first, across customers; `since` inclusive."""

    # --- bulk ----------------------------------------------------------------------------
    def import_session(self) -> ContextManager[ImportSession]:
        """Open an all-or-nothing bulk write (see `ImportSession`)."""


def open_store(url: str) -> Store:
    """Open the store named by an `OMNIX_STORE` URL (`sqlite:///path` or `dynamodb://?...`)."""
    if url.startswith("sqlite://"):
        from omnix_recs.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if url.startswith("dynamodb://"):
        try:
            from omnix_recs.store.dynamodb import DynamoStore
        except ImportError:
            raise InvalidArgumentError("OMNIX_STORE", "the DynamoDB store is not available in this build") from None
        return DynamoStore.from_url(url)
    raise InvalidArgumentError("OMNIX_STORE", f"unknown store URL scheme in {url!r} (use sqlite:/// or dynamodb://)")
