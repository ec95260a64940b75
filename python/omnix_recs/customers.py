"""Customer writes: registration, profile changes, purchases, behaviour, import, export, erasure.

Recommendations and analyses are derived from a customer's data and cached, so each write that
changes what a shopper sees is published here, once, by the code that made it, not by each
caller. Every method blocks (the store, and listeners that may wait on Redis): servers call
them in a worker thread. A profile change is read-modify-write with a conditional put, redone
when another writer got in between, so two changes of one profile at once both count.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from omnix_recs import metrics
from omnix_recs.domain.models import (
    CART_KINDS,
    Consent,
    Customer,
    CustomerChange,
    Feedback,
    Interaction,
    Preferences,
    Purchase,
    ServedRecommendation,
)
from omnix_recs.engine.model_erasure import ModelFiles
from omnix_recs.engine.served_lists import ServedListWriter
from omnix_recs.errors import ConflictError, InvalidArgumentError, NotFoundError, OmnixError, UnavailableError
from omnix_recs.leases import new_holder
from omnix_recs.store import snapshot as training_snapshot
from omnix_recs.store.base import CustomerErasure, Store

log = logging.getLogger(__name__)

# Conditional profile writes that lost a race are tried this often in all before ConflictError.
UPDATE_ATTEMPTS = 5
# "No limit" for the store's list calls when exporting everything about a customer.
_EVERYTHING = 1_000_000_000

# Profile fields a customer may change after registration through `update_demographics`.
DEMOGRAPHIC_FIELDS = ("display_name", "email", "age_band", "household_size", "postcode")

# Told `(customer_id, what changed)` after each write (`AppContext.on_customer_activity`).
Publish = Callable[[str, CustomerChange], None]
ProfileChange = Callable[[Customer], Customer]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PurchaseImport:
    """What an import did: rows received, distinct customers named, rows the store wrote (rows
    already stored are not written again)."""

    rows_received: int
    customers: int
    rows_written: int


@dataclass(frozen=True, slots=True)
class CustomerExport:
    """Everything stored about one customer, as of `exported_at`."""

    exported_at: datetime
    customer: Customer
    purchases: list[Purchase]  # newest first
    interactions: list[Interaction]  # newest first
    recommendations: list[ServedRecommendation]  # newest first
    feedback: list[Feedback]  # on those recommendations
    documents: list[tuple[str, datetime, dict[str, Any]]]  # (kind, created_at, body), newest first


# An erasure runs a second pass this long after the first: another process may have served the
# customer a list just before it and still hold the list in its write-behind queue (written
# within `served_lists.FLUSH_EVERY_S`, later while the store is failing), or be finishing a
# write it validated before the erasure. The second pass also blanks the customer's rows in
# the model files (engine/model_erasure.py), which takes seconds for a large model.
ERASURE_SWEEP_AFTER_S = 5.0
# The second pass is recorded in the store before the erasure starts, as a document of this
# kind (body: {"customer_id": ...}), so that a process killed before running it leaves it to
# the next check of any process: at start and every `ERASURE_CHECK_EVERY_S`. Its owner is not
# a customer id (ids have no "#"): the erasure of the customer does not remove the record.
ERASURE_PENDING = "erasure_pending"
_PENDING_OWNER = "#erasure:"
ERASURE_CHECK_EVERY_S = 60.0
# One process at a time runs second passes (two rewriting one model file would lose a scrub).
ERASURE_LEASE = "privacy:erasures"
ERASURE_LEASE_TTL_S = 120.0  # renewed before each model copy; a crashed holder delays them this long


class CustomerService:
    """Every write about a customer, each followed by `publish(customer_id, change)`.

    Reads that change nothing (a profile, a page of purchases) go to the store directly.
    """

    def __init__(
        self,
        store: Store,
        *,
        publish: Publish,
        served_lists: ServedListWriter | None = None,
        update_attempts: int = UPDATE_ATTEMPTS,
        snapshot_at: tuple[Path, str] | None = None,
        model_files: ModelFiles | None = None,
    ) -> None:
        """`served_lists`: lists served but not yet stored, written out before an export or an
        erasure reads the store (None = lists are stored as they are served). `snapshot_at`:
        the training snapshot an erasure scrubs (`store.snapshot.location`), if any.
        `model_files`: the model versions an erasure's second pass scrubs, if any."""
        self.store = store
        self._snapshot_at = snapshot_at
        self._model_files = model_files
        self._publish = publish
        self._served_lists = served_lists
        self._update_attempts = update_attempts
        # None: the second pass waits for the periodic check (or `close`, or `finish_erasures`).
        self.erasure_sweep_after_s: float | None = ERASURE_SWEEP_AFTER_S
        self.erasure_check_every_s = ERASURE_CHECK_EVERY_S
        self._sweeps: set[threading.Timer] = set()  # second passes this process scheduled
        self._sweeps_lock = threading.Lock()
        self._finishing = threading.Lock()  # one second pass at a time in this process
        self._stopped = threading.Event()
        self._checker: threading.Thread | None = None
        self._next_due: datetime | None = None  # when the next recorded second pass not yet due was recorded

    # --- profile ---------------------------------------------------------------------------

    def register(self, customer: Customer) -> Customer:
        """`AlreadyExistsError` when the id is taken. Publishes nothing: nothing is derived
        from a customer who did not exist."""
        self.store.create_customer(customer)
        return customer

    def update_profile(self, customer_id: str, change: ProfileChange) -> Customer:
        """Store `change(current profile)`, with `updated_at` moved forward; `NotFoundError` for
        an unknown customer, `ConflictError` when other writers won every attempt (nothing
        written). `change` may run more than once, each time on the newest profile."""
        for attempt in range(self._update_attempts):
            customer = self.store.get_customer(customer_id)
            # Strictly later than what it replaces, so the next conditional write sees a change
            # even when the clock that wrote last was ahead of ours.
            updated_at = max(_now(), customer.updated_at + timedelta(microseconds=1))
            updated = dataclasses.replace(change(customer), updated_at=updated_at)
            try:
                self.store.put_customer(updated, replaces=customer.updated_at)
            except ConflictError:
                if attempt + 1 == self._update_attempts:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # let the other writer finish
                continue
            self._publish(customer_id, CustomerChange.DATA)
            return updated
        raise AssertionError("unreachable")

    def update_preferences(self, customer_id: str, preferences: Preferences, fields: Sequence[str] = ()) -> Customer:
        """Replace the named preference `fields` with those of `preferences`; no names = all."""

        def change(customer: Customer) -> Customer:
            given = preferences
            if fields:
                given = dataclasses.replace(customer.preferences, **{f: getattr(preferences, f) for f in fields})
            return dataclasses.replace(customer, preferences=given)

        return self.update_profile(customer_id, change)

    def set_dietary_restrictions(
        self, customer_id: str, restrictions: tuple[str, ...], allergens: tuple[str, ...]
    ) -> Customer:
        return self.update_profile(
            customer_id, lambda c: dataclasses.replace(c, dietary_restrictions=restrictions, allergens=allergens)
        )

    def set_consent(self, customer_id: str, consent: Consent) -> Customer:
        """Published like any profile change, so cached lists built under the old consent go."""
        return self.update_profile(customer_id, lambda c: dataclasses.replace(c, consent=consent))

    def update_demographics(self, customer_id: str, given: Customer, fields: Sequence[str]) -> Customer:
        """Copy the named demographic and contact `fields` (of `DEMOGRAPHIC_FIELDS`) from `given`."""
        unknown = [f for f in fields if f not in DEMOGRAPHIC_FIELDS]
        if unknown:
            raise InvalidArgumentError("fields", f"not demographic fields: {', '.join(unknown)}")
        return self.update_profile(
            customer_id, lambda c: dataclasses.replace(c, **{f: getattr(given, f) for f in fields})
        )

    # --- purchases and behaviour -----------------------------------------------------------

    def record_purchases(self, customer_id: str, purchases: Sequence[Purchase]) -> list[Purchase]:
        """One basket (or a single line), all or nothing, as stored: a unit price of 0 becomes
        the catalog price. `NotFoundError` for an unregistered customer."""
        self.store.get_customer(customer_id)
        priced = self._with_catalog_prices(purchases)
        self.store.add_purchases(priced)
        self._publish(customer_id, CustomerChange.DATA)
        metrics.purchases_recorded(self.store, customer_id, priced)  # revenue served lists earned
        return priced

    def record_interaction(self, interaction: Interaction) -> Interaction:
        """`NotFoundError` for an unregistered customer. A cart event makes the cart stale; a
        view, search or wishlist event only the browsing history."""
        self.store.get_customer(interaction.customer_id)
        self.store.add_interaction(interaction)
        change = CustomerChange.CART if interaction.kind in CART_KINDS else CustomerChange.BROWSING
        self._publish(interaction.customer_id, change)
        return interaction

    def import_purchases(self, purchases: Sequence[Purchase]) -> PurchaseImport:
        """Rows of any customers, written all or nothing. A customer who is not registered
        rejects the whole import, naming the first row (`rows[i]`, i its index) that has them."""
        first_row_of: dict[str, int] = {}
        for row, purchase in enumerate(purchases):
            first_row_of.setdefault(purchase.customer_id, row)
        for customer_id, row in first_row_of.items():
            try:
                self.store.get_customer(customer_id)
            except NotFoundError:
                raise InvalidArgumentError(
                    f"rows[{row}].customer_id", f"customer {customer_id!r} is not registered"
                ) from None
        written = self.store.add_purchases(self._with_catalog_prices(purchases))
        for customer_id in first_row_of:
            self._publish(customer_id, CustomerChange.DATA)
        return PurchaseImport(rows_received=len(purchases), customers=len(first_row_of), rows_written=written)

    def _with_catalog_prices(self, purchases: Sequence[Purchase]) -> list[Purchase]:
        """unit_price 0 means "the catalog price" (common.proto); products not in the catalog keep 0."""
        unpriced = {p.product_id for p in purchases if p.unit_price == 0}
        if not unpriced:
            return list(purchases)
        catalog = self.store.get_products(sorted(unpriced))
        return [
            dataclasses.replace(p, unit_price=catalog[p.product_id].price)
            if p.unit_price == 0 and p.product_id in catalog
            else p
            for p in purchases
        ]

    # --- the customer's rights: export and erasure -----------------------------------------

    def export(self, customer_id: str) -> CustomerExport:
        """`NotFoundError` for an unknown customer. Includes the lists just served to them."""
        self._write_served_lists()
        customer = self.store.get_customer(customer_id)
        served = self.store.list_recommendations(customer_id, limit=_EVERYTHING)
        return CustomerExport(
            exported_at=_now(),
            customer=customer,
            purchases=self.store.purchases_of(customer_id)[::-1],
            interactions=self.store.list_interactions(customer_id, limit=_EVERYTHING),
            recommendations=served,
            feedback=[f for s in served for f in self.store.list_feedback(s.recommendation_id)],
            documents=self.store.customer_documents(customer_id),
        )

    def erase(self, customer_id: str) -> CustomerErasure:
        """The customer and everything derived from them, everywhere it lives: the store's
        tables and, through the published change, every cache; then, in a second pass (see
        `ERASURE_SWEEP_AFTER_S`), what was written after it and their rows in the model files.
        `NotFoundError` if unknown (nothing recorded)."""
        self._write_served_lists()  # none may be written after the erasure
        erased_at = _now()
        # First: once anything is gone, the rest must follow even if this process dies now.
        self.store.put_document(ERASURE_PENDING, _PENDING_OWNER + customer_id, erased_at, {"customer_id": customer_id})
        try:
            erasure = self.store.delete_customer(customer_id)
        except NotFoundError:
            self.store.delete_customer(_PENDING_OWNER + customer_id)  # nothing was erased: nothing to follow
            raise
        if self._snapshot_at is not None:  # their lines must not wait on disk for the next training
            training_snapshot.erase_customer(self.store, self._snapshot_at[0], customer_id)
        self._publish(customer_id, CustomerChange.DATA)
        if self.erasure_sweep_after_s is not None:
            sweep = threading.Timer(self.erasure_sweep_after_s, self._scheduled_sweep)
            sweep.daemon = True
            with self._sweeps_lock:
                self._sweeps.add(sweep)
            sweep.start()
        return erasure

    def start(self) -> None:
        """Check for pending second passes now (those of a process that died before running
        them) and every `erasure_check_every_s`, in a thread, until `close`; with each check,
        bring this host's cached copies of S3 models scrubbed elsewhere up to date."""
        if self._checker is None:
            self._checker = threading.Thread(target=self._check_periodically, name="omnix-erasures", daemon=True)
            self._checker.start()

    def close(self) -> None:
        """Run the second passes of this process's erasures now (at shutdown, after the last
        call); stop the periodic check."""
        self._stopped.set()
        with self._sweeps_lock:
            pending, self._sweeps = self._sweeps, set()
        for sweep in pending:
            sweep.cancel()
        if pending:
            self._finish_logged(due_by=_now() + timedelta(seconds=self.erasure_sweep_after_s or 0.0))
        if self._checker is not None:
            self._checker.join(timeout=5.0)

    def finish_erasures(self, *, due_by: datetime | None = None) -> int:
        """Run the recorded second passes of erasures made before `due_by` (default: more
        than `erasure_sweep_after_s` ago), of every process; returns how many were finished.
        For each: the rows of the erased customer written after the erasure (unless their id
        has been registered again since: what is there is the new customer's) and their rows
        in every model version; then the record goes. Nothing is done while another process
        runs them (it holds the lease). Idempotent: a pass cut short is run whole again.
        `UnavailableError` (and what the model files raise) leaves the records for later."""
        due_by = due_by or _now() - timedelta(seconds=self.erasure_sweep_after_s or 0.0)
        with self._finishing:
            pending = self.store.list_documents(ERASURE_PENDING)
            due = [
                (owner, body["customer_id"], erased_at)
                for owner, erased_at, body in pending
                if erased_at <= due_by and isinstance(body.get("customer_id"), str)
            ]
            self._next_due = min((at for _, at, _ in pending if at > due_by), default=None)
            if not due:
                return 0
            holder = new_holder()

            def keep_lease() -> None:
                now = _now()
                if not self.store.acquire_lease(
                    ERASURE_LEASE, holder, now, now + timedelta(seconds=ERASURE_LEASE_TTL_S)
                ):
                    raise UnavailableError("another process is running the erasures' second passes")

            try:
                keep_lease()
            except UnavailableError:
                return 0  # it will finish these too
            try:
                return self._finish(due, keep_lease)
            finally:
                try:
                    self.store.release_lease(ERASURE_LEASE, holder)
                except (OmnixError, OSError) as error:  # it lapses by itself
                    log.warning("could not release the %s lease: %s", ERASURE_LEASE, error)

    def _finish(self, due: list[tuple[str, str, datetime]], keep_lease: Callable[[], None]) -> int:
        # Versions built before the cutoff may hold the erased customer's row: every version,
        # or for an id registered again, those built before that.
        erased: dict[str, list[datetime]] = {}
        for _, customer_id, erased_at in due:
            erased.setdefault(customer_id, []).append(erased_at)
        cutoffs: dict[str, datetime | None] = {}
        for customer_id, times in erased.items():
            try:
                cutoffs[customer_id] = max(self.store.get_customer(customer_id).created_at, *times)
            except NotFoundError:
                cutoffs[customer_id] = None
        for customer_id, cutoff in cutoffs.items():
            if cutoff is None:
                self._sweep_store(customer_id)
        if self._model_files is not None:
            self._model_files.erase(self.store, cutoffs, keep_going=keep_lease)
        for owner, _, _ in due:
            try:
                self.store.delete_customer(owner)  # the record: all its owner holds
            except NotFoundError:
                pass  # finished by someone else meanwhile
        return len(due)

    def _sweep_store(self, customer_id: str) -> None:
        """Rows of the erased customer that other processes wrote after the erasure, such as
        lists they served just before it and still held in their write-behind queue."""
        try:
            erasure = self.store.delete_customer(customer_id)
        except NotFoundError:
            return  # nothing was left behind
        log.info("erasure's second pass removed rows written after it: %s", erasure.counts)

    def _scheduled_sweep(self) -> None:
        with self._sweeps_lock:
            self._sweeps.discard(threading.current_thread())  # this Timer
        self._finish_logged()

    def _check_periodically(self) -> None:
        while not self._stopped.is_set():
            self._finish_logged()
            self._follow_rewrites_logged()
            wait = self.erasure_check_every_s
            if self._next_due is not None:  # a record not due yet (just made, maybe by a process now dead)
                due_in = (self._next_due - _now()).total_seconds() + (self.erasure_sweep_after_s or 0.0)
                wait = min(wait, max(due_in, 0.1))
            self._stopped.wait(wait)

    def _follow_rewrites_logged(self) -> None:
        """This host's cached model copies, scrubbed in S3 by another host's erasure, follow."""
        if self._model_files is None:
            return
        try:
            self._model_files.follow_rewrites()
        except (OmnixError, OSError, ValueError) as error:  # S3 down, or a bad OMNIX_MODEL_DIR
            log.warning("cached model copies could not follow erasures' rewrites (%s); will retry", error)
        except Exception:
            log.exception("cached model copies could not follow erasures' rewrites; will retry")

    def _finish_logged(self, due_by: datetime | None = None) -> None:
        """`finish_erasures` in a thread of its own (or at shutdown): failures are logged."""
        try:
            self.finish_erasures(due_by=due_by)
        except UnavailableError as error:  # the store or S3 is down: the next check retries
            log.warning("erasures' second passes could not run (%s); they will be retried", error)
        except Exception:
            log.exception("erasures' second passes failed; they will be retried")

    def _write_served_lists(self) -> None:
        if self._served_lists is not None:
            self._served_lists.flush()
