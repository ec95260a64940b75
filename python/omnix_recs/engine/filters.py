"""Hard filters: which of the model's products a shopper may be shown at all.

The catalog changes without retraining (stock, prices, tags), so filters read the catalog, not
the model. `CatalogIndex` lays it out as arrays aligned with the model's items and turns a
shopper's restrictions into the mask the kernel applies, cached per set of restrictions (most
shoppers share a handful); `CatalogCache` keeps that snapshot current in a server.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from omnix_recs.blocking import ensure_may_block
from omnix_recs.domain.models import ALLERGENS, DIETARY_TAGS, Customer, Product
from omnix_recs.store.base import Store

log = logging.getLogger(__name__)

# How often a server process asks the store whether the catalog changed (one O(1) read): how
# stale, plus a rebuild, a server's lists may be about stock and price (`Recommender` trusts the
# snapshot when serving; without a server it re-checks lists against the live rows).
CATALOG_CHECK_EVERY_S = 1.0
# Distinct restriction sets whose masks are kept (a mask is one byte per product).
MASK_CACHE_SIZE = 256
# What a shared mask depends on: dietary, allergens, max price, included and excluded departments.
MaskKey = tuple[frozenset[str], frozenset[str], float | None, frozenset[str], frozenset[str]]


@dataclass(frozen=True, slots=True)
class ShopperFilters:
    """The hard restrictions for one request: the profile's merged with the request's."""

    dietary: frozenset[str] = frozenset()
    allergens: frozenset[str] = frozenset()
    max_price: float | None = None
    include_departments: frozenset[str] = frozenset()
    exclude_departments: frozenset[str] = frozenset()
    disliked_products: frozenset[str] = frozenset()

    @classmethod
    def for_customer(
        cls,
        customer: Customer | None,
        *,
        dietary: Iterable[str] = (),
        allergens: Iterable[str] = (),
        max_price: float | None = None,
        include_departments: Iterable[str] = (),
        exclude_departments: Iterable[str] = (),
    ) -> ShopperFilters:
        """The request's filters plus what the shopper's profile says about them."""
        ceiling = max_price
        if customer is not None:
            dietary = (*dietary, *customer.dietary_restrictions)
            allergens = (*allergens, *customer.allergens)
            budget = customer.preferences.budget_per_trip
            if budget is not None and budget > 0:
                ceiling = budget if ceiling is None else min(ceiling, budget)
        return cls(
            dietary=frozenset(dietary),
            allergens=frozenset(allergens),
            max_price=ceiling,
            include_departments=frozenset(d.lower() for d in include_departments),
            exclude_departments=frozenset(d.lower() for d in exclude_departments),
            disliked_products=frozenset(customer.preferences.disliked_products) if customer else frozenset(),
        )

    def admits(self, product: Product) -> bool:
        """The same rules on one live catalog row (for the final check of a served list)."""
        department = product.department.lower()
        return (
            product.in_stock
            and self.dietary <= set(product.dietary_tags)
            and not (self.allergens & set(product.allergens))
            and (self.max_price is None or product.price <= self.max_price)
            and (not self.include_departments or department in self.include_departments)
            and department not in self.exclude_departments
            and product.product_id not in self.disliked_products
        )


def _bits(values: Iterable[str], vocabulary: Sequence[str]) -> int:
    position = {word: bit for bit, word in enumerate(vocabulary)}
    mask = 0
    for value in values:
        if value in position:
            mask |= 1 << position[value]
    return mask


@dataclass
class CatalogIndex:
    """The catalog as arrays over the model's item indices (read-only once built)."""

    item_ids: Sequence[str]
    present: np.ndarray  # bool: the product is still in the catalog
    in_stock: np.ndarray  # bool
    price: np.ndarray  # float32
    dietary_bits: np.ndarray  # int32, bit b = DIETARY_TAGS[b]
    allergen_bits: np.ndarray  # int32, bit b = ALLERGENS[b]
    department_ids: np.ndarray  # int32 into `departments`, -1 = unknown
    aisle_ids: np.ndarray  # int32 into `aisles`, -1 = unknown
    brand_ids: np.ndarray  # int32 into `brands`, -1 = unbranded
    departments: list[str]
    aisles: list[str]
    brands: list[str]
    names: list[str]
    _masks: OrderedDict[MaskKey, np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, item_ids: Sequence[str], products: Iterable[Product]) -> CatalogIndex:
        n = len(item_ids)
        position = {product_id: i for i, product_id in enumerate(item_ids)}
        present = np.zeros(n, dtype=bool)
        in_stock = np.zeros(n, dtype=bool)
        price = np.zeros(n, dtype=np.float32)
        dietary_bits = np.zeros(n, dtype=np.int32)
        allergen_bits = np.zeros(n, dtype=np.int32)
        department_ids = np.full(n, -1, dtype=np.int32)
        aisle_ids = np.full(n, -1, dtype=np.int32)
        brand_ids = np.full(n, -1, dtype=np.int32)
        names = list(item_ids)
        departments: dict[str, int] = {}
        aisles: dict[str, int] = {}
        brands: dict[str, int] = {}
        for product in products:
            i = position.get(product.product_id)
            if i is None:
                continue  # new since the model was built: not rankable until the next training
            present[i] = True
            in_stock[i] = product.in_stock
            price[i] = product.price
            dietary_bits[i] = _bits(product.dietary_tags, DIETARY_TAGS)
            allergen_bits[i] = _bits(product.allergens, ALLERGENS)
            department_ids[i] = departments.setdefault(product.department.lower(), len(departments))
            # Aisles are identified with their department: "frozen/desserts" is not "bakery/desserts".
            aisle_ids[i] = aisles.setdefault(f"{product.department.lower()}/{product.aisle}", len(aisles))
            if product.brand:
                brand_ids[i] = brands.setdefault(product.brand, len(brands))
            names[i] = product.name
        return cls(
            item_ids=item_ids,
            present=present,
            in_stock=in_stock,
            price=price,
            dietary_bits=dietary_bits,
            allergen_bits=allergen_bits,
            department_ids=department_ids,
            aisle_ids=aisle_ids,
            brand_ids=brand_ids,
            departments=list(departments),
            aisles=[a.split("/", 1)[1] for a in aisles],
            brands=list(brands),
            names=names,
        )

    def department_of(self, item: int) -> str:
        d = int(self.department_ids[item])
        return self.departments[d] if d >= 0 else ""

    def aisle_of(self, item: int) -> str:
        a = int(self.aisle_ids[item])
        return self.aisles[a] if a >= 0 else ""

    def brand_of(self, item: int) -> str:
        b = int(self.brand_ids[item])
        return self.brands[b] if b >= 0 else ""

    def department_mask(self, departments: Iterable[str]) -> np.ndarray:
        wanted = {self.departments.index(d) for d in (d.lower() for d in departments) if d in self.departments}
        return np.isin(self.department_ids, list(wanted))

    def allowed(self, filters: ShopperFilters, index_of: dict[str, int]) -> np.ndarray:
        """Boolean mask over model items: True = may be shown. Do not modify the result.

        A dietary restriction ("vegan") keeps only products tagged with it (every restriction
        must hold); an allergen excludes every product that contains it; out-of-stock products,
        products the shopper disliked and products no longer in the catalog are never shown; a
        price ceiling (the request's, or the shopper's whole-trip budget: a product dearer than
        the trip cannot be in it) excludes dearer products; departments can be required or
        excluded, compared case-insensitively."""
        key: MaskKey = (
            filters.dietary,
            filters.allergens,
            filters.max_price,
            filters.include_departments,
            filters.exclude_departments,
        )
        with self._lock:
            mask = self._masks.get(key)
            if mask is not None:
                self._masks.move_to_end(key)
        if mask is None:
            mask = self._shared_mask(filters)
            with self._lock:
                self._masks[key] = mask
                while len(self._masks) > MASK_CACHE_SIZE:
                    self._masks.popitem(last=False)
        if filters.disliked_products:
            disliked = [index_of[p] for p in filters.disliked_products if p in index_of]
            if disliked:
                mask = mask.copy()
                mask[disliked] = False
        return mask

    def _shared_mask(self, filters: ShopperFilters) -> np.ndarray:
        mask: np.ndarray = self.present & self.in_stock
        required = _bits(filters.dietary, DIETARY_TAGS)
        if len(filters.dietary) > bin(required).count("1"):
            # A restriction outside the vocabulary can never be satisfied by a tag.
            return np.zeros_like(mask)
        if required:
            mask &= (self.dietary_bits & required) == required
        forbidden = _bits(filters.allergens, ALLERGENS)
        if forbidden:
            mask &= (self.allergen_bits & forbidden) == 0
        if filters.max_price is not None:
            mask &= self.price <= filters.max_price
        if filters.include_departments:
            mask &= self.department_mask(filters.include_departments)
        if filters.exclude_departments:
            mask &= ~self.department_mask(filters.exclude_departments)
        mask.flags.writeable = False
        return mask


class CatalogCache:
    """The current `CatalogIndex` for the active model, rebuilt only when the catalog changed.

    A rebuild reads the whole catalog and holds the GIL for about 100 ms at 5k products (a
    second at 50k), stalling every call of the process, so requests never rebuild a snapshot
    that exists: `index_for` only builds when there is none for the model yet (the first
    request after start-up or a model swap). Changes are noticed through the store's
    `catalog_version` (one O(1) read): `refresh()` rebuilds when it moved. The server runs
    `refresh()` every `check_every_s` on a background thread (`start()`/`close()`), so other
    processes' catalog writes show within about that long, and its UpsertProducts calls
    `refresh()` before answering, so a caller sees its own write. Requests in flight keep the
    snapshot they hold: a rebuild swaps in a new object, never mutates one.
    """

    def __init__(self, store: Store, check_every_s: float = CATALOG_CHECK_EVERY_S) -> None:
        self._store = store
        self._check_every_s = check_every_s
        # (snapshot, the model item ids it was built for, the catalog version it reflects)
        self._current: tuple[CatalogIndex, Sequence[str], int] | None = None
        self._build_lock = threading.Lock()  # one rebuild at a time
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def index_for(self, item_ids: Sequence[str]) -> CatalogIndex:
        current = self._current
        if current is not None and current[1] is item_ids:
            return current[0]
        ensure_may_block()  # a build reads the catalog, and another may hold the lock
        with self._build_lock:
            current = self._current
            if current is None or current[1] is not item_ids:
                current = self._build(item_ids)
            return current[0]

    @property
    def version(self) -> int:
        """The store's catalog version the current snapshot reflects (-1 before the first build):
        what a cache of lists built from the snapshot keys them by."""
        current = self._current
        return -1 if current is None else current[2]

    def refresh(self) -> bool:
        """Rebuild the snapshot if the catalog changed since it was built; True if it did."""
        current = self._current
        if current is None or self._store.catalog_version() == current[2]:
            return False
        with self._build_lock:
            current = self._current
            if current is None or self._store.catalog_version() == current[2]:
                return False
            self._build(current[1])
            return True

    def _build(self, item_ids: Sequence[str]) -> tuple[CatalogIndex, Sequence[str], int]:
        version = self._store.catalog_version()  # read first: a write during the build shows next time
        built = (CatalogIndex.build(item_ids, self._store.iter_products()), item_ids, version)
        self._current = built  # one reference assignment: readers see the old or the new snapshot
        return built

    def start(self) -> None:
        """Check for catalog changes every `check_every_s` on a daemon thread until `close()`."""
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_until_closed, name="omnix-catalog", daemon=True)
            self._refresher.start()

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
            self._refresher = None

    def _refresh_until_closed(self) -> None:
        while not self._stop.wait(self._check_every_s):
            try:
                self.refresh()
            except Exception:  # the store is briefly unavailable: keep serving the snapshot, try again
                log.warning("catalog refresh failed; serving the previous snapshot", exc_info=True)
