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
from omnix_recs.engine.served_lists import ServedListWriter
from omnix_recs.errors import ConflictError, InvalidArgumentError, NotFoundError, UnavailableError
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
# write it validated before the erasure.
ERASURE_SWEEP_AFTER_S = 5.0


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
    ) -> None:
        """`served_lists`: lists served but not yet stored, written out before an export or an
        erasure reads the store (None = lists are stored as they are served). `snapshot_at`:
        the training snapshot an erasure scrubs (`store.snapshot.location`), if any."""
        self.store = store
        self._snapshot_at = snapshot_at
        self._publish = publish
        self._served_lists = served_lists
        self._update_attempts = update_attempts
        self.erasure_sweep_after_s: float | None = ERASURE_SWEEP_AFTER_S  # None: no second pass
        self._sweeps: dict[str, threading.Timer] = {}  # erased customer -> their pending second pass
        self._sweeps_lock = threading.Lock()

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
        tables and, through the published change, every cache. `NotFoundError` if unknown."""
        self._write_served_lists()  # none may be written after the erasure
        erasure = self.store.delete_customer(customer_id)
        if self._snapshot_at is not None:  # their lines must not wait on disk for the next training
            training_snapshot.erase_customer(self.store, self._snapshot_at[0], customer_id)
        self._publish(customer_id, CustomerChange.DATA)
        if self.erasure_sweep_after_s is not None:
            sweep = threading.Timer(self.erasure_sweep_after_s, self._sweep_erased, args=(customer_id,))
            sweep.daemon = True
            with self._sweeps_lock:
                self._sweeps[customer_id] = sweep
            sweep.start()
        return erasure

    def close(self) -> None:
        """Run the erasures' pending second passes now (at shutdown, after the last call)."""
        with self._sweeps_lock:
            pending = list(self._sweeps.items())
        for customer_id, sweep in pending:
            sweep.cancel()
            self._sweep_erased(customer_id)

    def _sweep_erased(self, customer_id: str) -> None:
        """The erasure's second pass (see `ERASURE_SWEEP_AFTER_S`): rows of the erased customer
        that other processes wrote after it, such as lists they served just before it and still
        held in their write-behind queue. Skipped when the id has been registered again since."""
        with self._sweeps_lock:
            if self._sweeps.pop(customer_id, None) is None:
                return  # already done (by `close`)
        try:
            self.store.get_customer(customer_id)
            return  # someone registered under this id since: what is there is theirs
        except NotFoundError:
            pass
        except UnavailableError as error:  # the store is closed or down: nothing to trace
            log.warning("the second pass of an erasure could not run (%s); rows written after it may remain", error)
            return
        except Exception:  # a thread of its own: nobody else would see the error
            log.exception("the second pass of an erasure failed; rows written after it may remain")
            return
        try:
            erasure = self.store.delete_customer(customer_id)
        except NotFoundError:
            return  # nothing was left behind
        except UnavailableError as error:
            log.warning("the second pass of an erasure could not run (%s); rows written after it may remain", error)
            return
        except Exception:
            log.exception("the second pass of an erasure failed; rows written after it may remain")
            return
        log.info("erasure's second pass removed rows written after it: %s", erasure.counts)

    def _write_served_lists(self) -> None:
        if self._served_lists is not None:
            self._served_lists.flush()
