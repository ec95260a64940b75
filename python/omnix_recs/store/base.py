"""The `Store` protocol: everything the product persists, behind one interface.

Serving, imports and model builds are written once against this protocol, and the embedded
SQLite store and the DynamoDB store both keep it; one contract suite (`tests/store/`) holds
them to it. Only the protocol and its record types live here, so that importing it loads
neither implementation (`omnix_recs.store.open_store` picks one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from omnix_recs.config import SERVED_LIST_RETENTION_SETTING
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
from omnix_recs.domain.purchases import OrderLines, PurchaseColumns
from omnix_recs.errors import FailedPreconditionError


def served_lists_kept_since(retention: timedelta | None, now: datetime | None = None) -> datetime | None:
    """The oldest moment whose served lists a store with this retention still returns (None:
    every list is kept)."""
    return None if retention is None else (now or datetime.now(UTC)) - retention


def refuse_pruned_period(start: datetime, retention: timedelta | None, now: datetime | None = None) -> None:
    """`FailedPreconditionError` when lists served from `start` on are no longer all kept: a
    reader of a period (a report, an experiment's results) must not count a part of it as all."""
    kept_since = served_lists_kept_since(retention, now)
    if retention is not None and kept_since is not None and start < kept_since:
        raise FailedPreconditionError(
            f"served lists are kept {retention.days} days ({SERVED_LIST_RETENTION_SETTING}): those served"
            f" before {kept_since.isoformat(timespec='seconds')} are deleted, so a period starting"
            f" {start.isoformat(timespec='seconds')} cannot be read whole; ask for a later start"
            f" or keep served lists longer"
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
class ExperimentArm:
    """One arm of an A/B experiment: its share of customers and how their lists are made."""

    arm_id: str
    traffic_percent: int  # of the customers outside the holdout; the arms sum to 100
    model_version: str = ""  # empty = the active version
    strategy: str = ""  # an `engine.blends.Strategy` value; empty = as the request asks


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An A/B experiment on one surface (a kind of list). Running until `stopped_at` is set.

    `salt` makes each experiment's assignment independent of every other's; customers keep
    their arm for the experiment's life because assignment is a pure function of it."""

    experiment_id: str
    surface: str
    arms: tuple[ExperimentArm, ...]
    salt: str
    created_at: datetime
    description: str = ""
    primary_metric: str = "click_through_rate"
    holdout_percent: int = 0  # of all customers: served the non-personalised list
    attribution_window_days: int = 7
    stopped_at: datetime | None = None
    # Runs side by side with the other experiments on its surface (it must set no lever they
    # set); an experiment not declared independent has its surface to itself among those.
    independent: bool = False

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def levers(self) -> dict[str, str]:
        """What the experiment changes about its lists, each with the field that sets it:
        two running experiments on one surface must not share a lever."""
        levers: dict[str, str] = {}
        for i, arm in enumerate(self.arms):
            if arm.model_version:
                levers.setdefault("model_version", f"arms[{i}].model_version")
            if arm.strategy:
                levers.setdefault("strategy", f"arms[{i}].strategy")
        if self.holdout_percent:
            levers["holdout"] = "holdout_percent"
        return levers

    def conflict_with(self, running: Sequence[ExperimentRecord]) -> str | None:
        """Why this experiment cannot start beside `running` (the experiments running now),
        naming the field; None when it can. Each store applies it atomically."""
        for other in running:
            if not other.running or other.surface != self.surface or other.experiment_id == self.experiment_id:
                continue
            if not self.independent and not other.independent:
                return (
                    f"experiment {other.experiment_id!r} is running on the {self.surface} surface: stop it first,"
                    " or declare this one independent (one experiment per surface unless independent)"
                )
            shared = self.levers().keys() & other.levers().keys()
            if shared:
                lever = sorted(shared)[0]
                return (
                    f"{self.levers()[lever]}: experiment {other.experiment_id!r}, running on the {self.surface}"
                    f" surface, already sets {lever}; experiments on one surface must set different levers"
                )
        return None

    def body(self) -> dict[str, Any]:
        """The fields stores keep as one JSON document (everything but id and times)."""
        return {
            "surface": self.surface,
            "arms": [
                {
                    "arm_id": a.arm_id,
                    "traffic_percent": a.traffic_percent,
                    "model_version": a.model_version,
                    "strategy": a.strategy,
                }
                for a in self.arms
            ],
            "salt": self.salt,
            "description": self.description,
            "primary_metric": self.primary_metric,
            "holdout_percent": self.holdout_percent,
            "attribution_window_days": self.attribution_window_days,
            "independent": self.independent,
        }

    @classmethod
    def from_body(
        cls, experiment_id: str, created_at: datetime, stopped_at: datetime | None, body: dict[str, Any]
    ) -> ExperimentRecord:
        return cls(
            experiment_id=experiment_id,
            surface=body["surface"],
            arms=tuple(ExperimentArm(**arm) for arm in body["arms"]),
            salt=body["salt"],
            created_at=created_at,
            description=body.get("description", ""),
            primary_metric=body.get("primary_metric", "click_through_rate"),
            holdout_percent=int(body.get("holdout_percent", 0)),
            attribution_window_days=int(body.get("attribution_window_days", 7)),
            stopped_at=stopped_at,
            independent=bool(body.get("independent", False)),
        )


@dataclass(frozen=True, slots=True)
class CustomerErasure:
    """How many rows an erasure removed, per kind (for the caller's audit trail)."""

    counts: dict[str, int]


@dataclass(frozen=True, slots=True, order=True)
class PurchaseWatermark:
    """Where the purchase history stands, for copies of it (the training snapshot).

    `sequence` grows with every `add_purchases`; `epoch` with every write a copy cannot follow
    line by line (an import session that wrote purchases, an erasure): a copy taken at another
    epoch must be rebuilt. `shards`: where a store whose journal has several independent
    sequences (DynamoDB) stands in each; `sequence` is then their sum."""

    epoch: int
    sequence: int
    shards: tuple[int, ...] = ()

    def text(self) -> str:
        """`EPOCH:SEQUENCE`, then `:S0,S1,...` with shards (what `parse` reads)."""
        head = f"{self.epoch}:{self.sequence}"
        return f"{head}:{','.join(map(str, self.shards))}" if self.shards else head

    @classmethod
    def parse(cls, text: str) -> PurchaseWatermark:
        """`ValueError` for anything `text()` does not write."""
        epoch, _, rest = text.partition(":")
        sequence, _, shards = rest.partition(":")
        if not (epoch.isdigit() and sequence.isdigit()):
            raise ValueError(f"expected EPOCH:SEQUENCE[:SHARDS], got {text!r}")
        parts = shards.split(",") if shards else []
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"expected EPOCH:SEQUENCE[:SHARDS], got {text!r}")
        positions = tuple(map(int, parts))
        if positions and sum(positions) != int(sequence):
            raise ValueError(f"the shards of {text!r} do not add up to its sequence")
        return cls(int(epoch), int(sequence), positions)

    def covers(self, other: PurchaseWatermark) -> bool:
        """Whether every journaled write `other` counts, this one counts too (same epoch)."""
        if self.epoch != other.epoch or len(self.shards) != len(other.shards):
            return False
        return self.sequence >= other.sequence and all(a >= b for a, b in zip(self.shards, other.shards))


@dataclass(frozen=True, slots=True)
class ImportedPurchases:
    """What an import session's lines did to the purchase watermark, so that a copy of the
    history (the training snapshot) can add the lines it heard of rather than read the store.

    `before`: the watermark just before the session wrote its first line, `held_none` whether
    the store held no line then; `after`: the watermark it left, or None when something else
    (an erasure, another import) also moved the epoch meanwhile."""

    before: PurchaseWatermark
    held_none: bool
    after: PurchaseWatermark | None


class ImportFollower(Protocol):
    """Hears of the lines an import session writes (store/snapshot.py's `ImportedLines`)."""

    def add(self, lines: PurchaseColumns) -> None:
        """Lines given to the session, as they are given (not necessarily written yet)."""

    def imported(self, moved: ImportedPurchases) -> None:
        """The session committed: every line given is in the store."""


class PurchaseShares(Protocol):
    """Share k of n of an import's order lines, in batches (`ImportSession.add_purchase_shares`):
    picklable, as it may cross to another process, and the same for the same import each run."""

    def __call__(self, k: int, n: int) -> Iterable[PurchaseColumns]: ...


def purchase_columns(purchases: Sequence[Purchase]) -> PurchaseColumns:
    """`purchases` as columns (times in whole epoch seconds, as the stores' scans give them)."""
    columns = PurchaseColumns([], [], [], [], [], [], [])
    for p in purchases:
        columns.customer_ids.append(p.customer_id)
        columns.order_ids.append(p.order_id)
        columns.product_ids.append(p.product_id)
        columns.quantities.append(p.quantity)
        columns.unit_prices.append(p.unit_price)
        columns.purchased_at.append(int(p.purchased_at.timestamp()))
        columns.store_ids.append(p.store_id)
    return columns


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
    def add_purchase_shares(self, shares: PurchaseShares, workers: int, lines: Iterable[PurchaseColumns]) -> None:
        """The import's order lines: `lines` (all of them) are read here meanwhile, and written
        here too unless the store has `workers` processes write them, the k-th `shares(k,
        workers)` (DynamoDB, resumable sessions)."""

    def commit(self) -> None: ...
    def __enter__(self) -> ImportSession: ...
    def __exit__(self, *exc: object) -> None: ...


class ImportDestination(Protocol):
    """What an import writes into: a `Store`, or a new table set's files for DynamoDB's
    ImportTable (store/dynamodb/bulk.py's `BulkLoad`)."""

    def import_session(self, follower: ImportFollower | None = None) -> AbstractContextManager[ImportSession]: ...
    def purchases_of(self, customer_id: str, before: datetime | None = None) -> list[Purchase]: ...


class Store(Protocol):
    """What every implementation promises:

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

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None: ...

    # --- customers -----------------------------------------------------------------------
    def create_customer(self, customer: Customer) -> None:
        """Insert; `AlreadyExistsError` when the id is taken."""

    def get_customer(self, customer_id: str) -> Customer:
        """`NotFoundError` when absent."""

    def get_customers(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        """The ones that exist, in few round trips (an offline judgement reads thousands);
        missing ids are simply absent from the result."""

    def put_customer(self, customer: Customer, *, replaces: datetime | None = None) -> None:
        """Replace an existing customer; `NotFoundError` when absent. With `replaces` (the
        `updated_at` of the profile the change was computed from) the write is conditional:
        `ConflictError` if the stored profile has been updated since, and nothing is written.
        That is how concurrent read-modify-write updates avoid losing each other's changes."""

    def list_customer_ids(self, page_size: int, page_token: str = "") -> Page[str]:
        """Ids of every customer with a profile, ascending (for batch jobs)."""

    def customers_without_personalization(self) -> frozenset[str]:
        """Ids of the customers who refused personalisation (`Consent.personalization` false):
        training leaves their purchases out of what it learns for everyone."""

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

    def list_products(self, product_filter: ProductFilter, page_size: int, page_token: str = "") -> Page[Product]:
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

    def scan_purchases_unordered(self, batch_rows: int = 500_000) -> Iterator[PurchaseColumns]:
        """Every order line, in batches in no particular order: the store's fastest whole read
        (DynamoDB: a parallel Scan), for copies that do not need the order (store/snapshot.py)."""

    def count_purchases(self) -> int: ...

    def purchases_between(self, start: datetime, end: datetime) -> Iterator[Purchase]:
        """Every order line bought in [start, end), in no particular order, read through a time
        index: what a report over a period reads, never the whole history. SQLite reads its
        purchased_at index; DynamoDB the productId-purchaseDate index, product by product of
        the catalog."""

    def purchase_watermark(self) -> PurchaseWatermark:
        """The history's current watermark, in O(1) (see `PurchaseWatermark`)."""

    def purchases_appended_since(
        self, watermark: PurchaseWatermark
    ) -> tuple[PurchaseColumns, PurchaseWatermark] | None:
        """The lines `add_purchases` wrote after `watermark` and the watermark they bring a copy
        to; None when the store cannot say (another epoch, or no journal that far back)."""

    # --- behaviour -----------------------------------------------------------------------
    def add_interaction(self, interaction: Interaction) -> None:
        """Idempotent on (customer, occurred_at, interaction_id)."""

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        """Newest first; `since` inclusive."""

    def has_interactions(self) -> bool:
        """Whether any shopper's event is recorded at all, in one small read. A shop that
        imports its purchase history alone has none, and an offline evaluation then need not
        ask for each shopper's (engine/cached_reads.py `read_ahead`)."""

    # --- served recommendations and feedback -------------------------------------------------
    def save_recommendation(self, served: ServedRecommendation) -> None:
        """Record a served list as it was; `AlreadyExistsError` when its id is taken."""

    def save_recommendations(self, served: Sequence[ServedRecommendation]) -> None:
        """Record many served lists in one batch write (the server's write-behind queue flushes
        through this). Idempotent: saving the same lists again changes nothing, so a failed
        batch can be retried. Ids are random (`uuid4`), so unlike `save_recommendation` the
        batch does not check that they are new."""

    def get_recommendation(self, recommendation_id: str) -> ServedRecommendation:
        """`NotFoundError` when unknown or older than `served_list_retention`."""

    def list_recommendations(self, customer_id: str, limit: int = 20) -> list[ServedRecommendation]:
        """Newest first; none older than `served_list_retention`."""

    # How long served lists are kept (None: forever), from `OMNIX_SERVED_LIST_RETENTION_DAYS`.
    # No read returns a list served longer ago than this, whether or not it was deleted yet
    # (SQLite deletes in `prune_served_lists`, run periodically; DynamoDB expires items by TTL,
    # up to days late); `served_lists_between` refuses a period starting before it.
    served_list_retention: timedelta | None

    def prune_served_lists(self, before: datetime, batch_rows: int = 1_000) -> int:
        """Delete up to `batch_rows` lists served before `before`, oldest first, with the
        feedback on them, in one transaction read through a time index; returns how many.
        Call again until it returns fewer than `batch_rows`. A store whose database expires
        lists itself (DynamoDB's TTL on the items' `expiresAt`) deletes nothing and returns 0."""

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

    def delete_model(self, version: str) -> None:
        """Forget an inactive version's record (its artifact is the caller's to delete);
        `NotFoundError` when unknown, `FailedPreconditionError` when it is the active one,
        checked atomically with the delete."""

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
    def import_session(self, follower: ImportFollower | None = None) -> AbstractContextManager[ImportSession]:
        """Open an all-or-nothing bulk write (see `ImportSession`); `follower` hears of its
        purchase lines and, once it committed, of how they moved the watermark."""

    # --- experiments and the served lists they are judged on ---------------------------------
    def create_experiment(self, experiment: ExperimentRecord) -> None:
        """`AlreadyExistsError` when the id is taken; `FailedPreconditionError` when it is
        running and another experiment runs on its surface (checked atomically)."""

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        """`NotFoundError` when unknown."""

    def list_experiments(self) -> list[ExperimentRecord]:
        """Newest first (experiments are few: tens, not millions)."""

    def stop_experiment(self, experiment_id: str, stopped_at: datetime) -> ExperimentRecord:
        """Mark it stopped at `stopped_at`; a stopped experiment keeps its first stop time.
        `NotFoundError` when unknown."""

    def served_lists_between(
        self, start: datetime, end: datetime, experiment_id: str = ""
    ) -> list[ServedRecommendation]:
        """Lists served in [start, end), oldest first; when given, only those the experiment
        shaped, whether as their primary experiment or beside another (`other_assignments`).
        `FailedPreconditionError` naming the retention setting when `start` is older than
        `served_list_retention` (see `refuse_pruned_period`)."""

    def feedback_on(self, recommendation_ids: Sequence[str]) -> list[Feedback]:
        """Feedback on any of these lists, in no particular order."""

    # --- leases: work one process at a time across every process sharing the store ------------
    def acquire_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold the lease `name` for `holder` until `until`: True when taken (free, expired by
        `now`, or already `holder`'s: renewed), False while another holder's has not expired.
        Atomic across processes and hosts sharing the store."""

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it; otherwise nothing."""
