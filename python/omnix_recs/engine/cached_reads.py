"""What a recommendation request reads from the store, through the cache.

Besides ranking, a request's time goes to the shopper's side: profile, purchase history turned
into kernel features, recent cart events. `ShopperReads` keeps them in two per-customer cache
entries, because they change at different rates: the "shopper" entry (profile and purchase
summary, aged per request so "days since last bought" stays exact) changes when the shopper
buys; the "cart" entry, owned by `cart_owner(customer_id)` like the served lists that depend on
it, changes with every cart event. `forget` drops only what a change made stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import orjson

from omnix_recs.domain.models import (
    CART_KINDS,
    Consent,
    Customer,
    CustomerChange,
    Interaction,
    InteractionKind,
    Preferences,
)
from omnix_recs.domain.purchases import OrderLines
from omnix_recs.engine.features import (
    CART_WINDOW,
    HABIT_DECAY,
    HistoryFeatures,
    PurchaseSummary,
    cart_from_interactions,
    summarize_lines,
)
from omnix_recs.errors import OmnixError
from omnix_recs.store.base import Store
from omnix_recs.store.cache import Cache, Codec

T = TypeVar("T")
S = TypeVar("S", bound=Store)

# Interactions read to rebuild a cart: far more than a real cart sees in CART_WINDOW.
RECENT_EVENTS_LIMIT = 200
# Requests `read_ahead` keeps in flight: enough to hide DynamoDB's round trips behind each other.
READ_AHEAD_THREADS = 8
# Profiles `read_ahead` asks for at once: DynamoDB's BatchGetItem takes 100 keys.
PROFILES_PER_READ = 100


class NoCache(Cache):
    """A cache that keeps nothing: every fetch loads. For callers without a server's cache
    (tests, the CLI), so they take the server's code path and only miss where it would hit."""

    def __init__(self) -> None:
        super().__init__(ttl_s=0.0)  # `Cache.fetch` loads at once when nothing may be kept

    def forget_customers(self, customer_ids: Sequence[str]) -> None:
        return None

    def _read(self, customer_id: str, name: str, codec: Codec[T]) -> tuple[None, None]:
        return None, None

    def _write(self, customer_id: str, name: str, generation: int, entry: object, codec: Codec[T]) -> None:
        return None


NO_CACHE = NoCache()


def cart_owner(customer_id: str) -> str:
    """The cache owner of a customer's cart-dependent entries ('|' is no id character, so no
    customer has this id)."""
    return f"{customer_id}|cart"


def forget(cache: Cache, customer_id: str, change: CustomerChange) -> None:
    """Drop, in every server process, the customer's entries that `change` made stale: a
    purchase, a profile change or an erasure drops both (so a purchase counts for the very next
    list), a cart event only the cart (shoppers add to carts far more often than they buy), a
    view, search or wishlist event nothing."""
    if change is CustomerChange.DATA:
        cache.forget_customers([customer_id, cart_owner(customer_id)])
    elif change is CustomerChange.CART:
        cache.forget_customers([cart_owner(customer_id)])


@dataclass(frozen=True, slots=True)
class CartEvents:
    """Cart additions and removals since `loaded_as_of - CART_WINDOW` (no upper bound), read at
    `loaded_as_of`: enough to rebuild the cart at any later moment, until the next interaction."""

    loaded_as_of_s: float
    events: tuple[Interaction, ...]


@dataclass(frozen=True, slots=True)
class ShopperSnapshot:
    """The cached "shopper" entry: the profile and purchase history, as of when it was read."""

    customer: Customer
    purchases: PurchaseSummary | None  # None: no consent to personalisation, so not derived at all


class Shopper:
    """One request's view of a shopper: the profile, and history and cart at any moment."""

    def __init__(
        self,
        store: Store,
        index_of: dict[str, int],
        customer: Customer,
        snapshot: ShopperSnapshot | None,
        cart: CartEvents | None,
        *,
        habit_decay: float = HABIT_DECAY,
    ) -> None:
        self._store = store
        self._index_of = index_of
        self._habit_decay = habit_decay
        self.customer = customer
        self._snapshot = snapshot
        self._cart = cart

    def history(self, as_of: datetime) -> HistoryFeatures:
        summary = self._snapshot.purchases if self._snapshot else None
        if summary is not None and summary.covers(as_of):
            return summary.at(as_of)
        # Purchases dated after `as_of` (a backtest, or lines an import dated later today): only
        # the lines before it count, so they are read again, in columns (the fast read).
        lines = self._store.order_lines_of(self.customer.customer_id, before=as_of)
        return summarize_lines(lines, self._index_of, habit_decay=self._habit_decay).at(as_of)

    def cart(self, as_of: datetime) -> list[str]:
        """The products in the shopper's cart at `as_of` (see `cart_from_interactions`)."""
        if self._cart is not None and as_of.timestamp() >= self._cart.loaded_as_of_s:
            return cart_from_interactions(self._cart.events, as_of)
        return cart_from_interactions(_recent_interactions(self._store, self.customer.customer_id, as_of), as_of)


class ShopperReads:
    def __init__(self, store: Store, cache: Cache) -> None:
        """`cache`: the server's, or `NO_CACHE` (the same code path, nothing kept)."""
        self._store = store
        self._cache = cache

    def shopper(
        self,
        customer_id: str,
        model_version: str,
        index_of: dict[str, int],
        as_of: datetime | None = None,
        *,
        habit_decay: float = HABIT_DECAY,
    ) -> Shopper:
        """The shopper, for a request about `as_of` (default now), their habits summarised at the
        model's `habit_decay`. `NotFoundError` for an unknown customer (never cached)."""
        # Both loads only read, so the cache reloads them in the background before they expire.
        snapshot = self._cache.fetch(
            customer_id,
            f"shopper:{model_version}",
            SNAPSHOT_CODEC,
            lambda: self._snapshot(customer_id, index_of, habit_decay),
            refresh_ahead=True,
        )
        # The cart is read from `as_of` on, so the request that fills the cache can use it too.
        since = min(as_of or _now(), _now())
        cart = self._cache.fetch(
            cart_owner(customer_id), "cart", CART_CODEC, lambda: self._cart(customer_id, since), refresh_ahead=True
        )
        return Shopper(self._store, index_of, snapshot.customer, snapshot, cart, habit_decay=habit_decay)

    def shopper_as_of(
        self, customer_id: str, index_of: dict[str, int], as_of: datetime, *, habit_decay: float = HABIT_DECAY
    ) -> Shopper:
        """The shopper for a moment in the past, read from the store alone (an offline
        evaluation's backtest): a snapshot holds the later purchases too, so a backtest reads the
        lines before `as_of` in any case, and one that asks about each shopper once would only
        pay for a snapshot it never uses."""
        customer = self._store.get_customer(customer_id)
        return Shopper(self._store, index_of, customer, None, None, habit_decay=habit_decay)

    def _snapshot(self, customer_id: str, index_of: dict[str, int], habit_decay: float) -> ShopperSnapshot:
        customer = self._store.get_customer(customer_id)
        purchases = None
        if customer.consent.personalization:
            purchases = summarize_lines(self._store.order_lines_of(customer_id), index_of, habit_decay=habit_decay)
        return ShopperSnapshot(customer, purchases)

    def _cart(self, customer_id: str, as_of: datetime) -> CartEvents:
        events = tuple(e for e in _recent_interactions(self._store, customer_id, as_of) if e.kind in CART_KINDS)
        return CartEvents(as_of.timestamp(), events)


@dataclass(frozen=True, slots=True)
class _EventsSince:
    """A customer's events since a moment, newest first; `complete`: all of them (the read
    returned fewer than its limit)."""

    since: datetime
    complete: bool
    events: list[Interaction]


class _RepeatedReads:
    """`repeated_reads`' proxy: the reads a backtest repeats, kept; everything else forwarded."""

    def __init__(self, store: Store, known_lines: Callable[[str], OrderLines | None] | None) -> None:
        self._store = store
        self._known_lines = known_lines
        self._kept: dict[tuple[object, ...], object] = {}
        self._events_since: dict[str, _EventsSince] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def get_customer(self, customer_id: str) -> Customer:
        return self._keep(("customer", customer_id), lambda: self._store.get_customer(customer_id))

    def keep_customers(self, customer_ids: Sequence[str]) -> list[str]:
        """Read these profiles in one `get_customers` and keep them; the ids found."""
        found = self._store.get_customers(customer_ids)
        for customer_id, customer in found.items():
            self._kept[("customer", customer_id)] = customer
        return list(found)

    def order_lines_of(self, customer_id: str, before: datetime | None = None) -> OrderLines:
        # All of them, read once, answer every moment: a shopper is asked at two.
        lines = self._keep(("lines", customer_id), lambda: self._whole_lines(customer_id))
        return lines if before is None else lines.bought_before(before)

    def _whole_lines(self, customer_id: str) -> OrderLines:
        known = self._known_lines(customer_id) if self._known_lines else None
        return self._store.order_lines_of(customer_id) if known is None else known

    def list_interactions(
        self, customer_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[Interaction]:
        return self._keep(("interactions", customer_id, since, limit), lambda: self._events(customer_id, since, limit))

    def keep_events_since(self, customer_id: str, since: datetime, limit: int) -> None:
        """Read the customer's events since `since` once (newest first, at most `limit`), to
        answer the later reads of events since any moment after it (`_events`)."""
        events = self._store.list_interactions(customer_id, since=since, limit=limit)
        self._events_since[customer_id] = _EventsSince(since, len(events) < limit, events)

    def has_interactions(self) -> bool:
        return self._store.has_interactions()

    def keep_no_events_since(self, customer_id: str, since: datetime) -> None:
        """What `keep_events_since` keeps when the store holds no events at all."""
        self._events_since[customer_id] = _EventsSince(since, True, [])

    def _events(self, customer_id: str, since: datetime | None, limit: int) -> list[Interaction]:
        kept = self._events_since.get(customer_id)
        if kept is not None and since is not None and kept.complete and kept.since <= since:
            return [e for e in kept.events if e.occurred_at >= since][:limit]  # all of them are there
        return self._store.list_interactions(customer_id, since=since, limit=limit)

    def _keep(self, key: tuple[object, ...], read: Callable[[], T]) -> T:
        if key not in self._kept:
            self._kept[key] = read()  # an error (an unknown customer) is raised, not kept
        return self._kept[key]  # type: ignore[return-value]


def repeated_reads(store: S, known_lines: Callable[[str], OrderLines | None] | None = None) -> S:
    """`store` for one offline evaluation, which prepares the same shoppers at the same moments
    several times (per habit decay, per setting compared, per moment of asking): their profile,
    order lines and recent events are read from the store once and then answered from memory;
    every other call goes to `store`. Only for reading a past no one changes meanwhile; what it
    returns is shared, so callers must not modify it.

    `known_lines(customer_id)`: a shopper's whole order lines when the caller already holds
    them (`holdout.Trips.order_lines_of`), None to read them from the store."""
    return _RepeatedReads(store, known_lines)  # type: ignore[return-value]


def read_ahead(
    store: object,
    customer_ids: Sequence[str],
    moments: Sequence[Sequence[datetime]] = (),
    threads: int = READ_AHEAD_THREADS,
) -> None:
    """Read these shoppers into `repeated_reads`' memory now (a store that is not
    `repeated_reads`' is left alone): their profiles, a batch per `PROFILES_PER_READ`; then for
    each one found, their whole order lines (unless known) and, given `moments` (each shopper's
    moments of asking, in `customer_ids`' order), in one read the events their carts at all of
    those moments are rebuilt from (none when the store holds no events at all); `threads`
    requests at a time. A store across a network
    (DynamoDB) answers many requests at once, where one shopper after another waits a round
    trip each. What fails here (an erased customer) is left for the read that needs it to
    raise, in its place."""
    if not isinstance(store, _RepeatedReads):
        return
    asked_at: dict[str, list[datetime]] = {customer_id: [] for customer_id in customer_ids}
    for customer_id, at in zip(customer_ids, moments):
        asked_at[customer_id] += at
    ids = list(asked_at)
    # A shop that records no events (its purchase history imported alone) has no carts to
    # rebuild: one read says so for every shopper, where each would cost a request of its own
    # (at 200,000 households on DynamoDB, 8,000 Queries and about 10 s of training).
    events_recorded = any(asked_at.values()) and store.has_interactions()

    def profiles(start: int) -> list[str]:
        with contextlib.suppress(OmnixError):
            return store.keep_customers(ids[start : start + PROFILES_PER_READ])
        return []

    def history(customer_id: str) -> None:
        with contextlib.suppress(OmnixError):
            store.order_lines_of(customer_id)
            if asked_at[customer_id]:  # one read for the carts at every moment
                since = min(asked_at[customer_id]) - CART_WINDOW
                if events_recorded:
                    store.keep_events_since(customer_id, since, RECENT_EVENTS_LIMIT)
                else:
                    store.keep_no_events_since(customer_id, since)

    with ThreadPoolExecutor(threads, thread_name_prefix="omnix-read-ahead") as pool:
        found = [c for batch in pool.map(profiles, range(0, len(ids), PROFILES_PER_READ)) for c in batch]
        list(pool.map(history, found))


def _now() -> datetime:
    return datetime.now(UTC)


def _recent_interactions(store: Store, customer_id: str, as_of: datetime) -> list[Interaction]:
    return store.list_interactions(customer_id, since=as_of - CART_WINDOW, limit=RECENT_EVENTS_LIMIT)


# --- how a snapshot travels through Redis ----------------------------------------------------------

# Length of the profile JSON; the purchase summary (binary, absent = None) follows it.
_SNAPSHOT_HEADER = struct.Struct("<I")
# Purchase summary: items, trips, spend, newest line; then the arrays in PurchaseSummary's order.
_SUMMARY_HEADER = struct.Struct("<IIdd")


def _encode_snapshot(s: ShopperSnapshot) -> bytes:
    profile = _customer_json(s.customer)
    summary = b"" if s.purchases is None else _encode_summary(s.purchases)
    return b"".join([_SNAPSHOT_HEADER.pack(len(profile)), profile, summary])


def _decode_snapshot(raw: bytes) -> ShopperSnapshot:
    (profile_len,) = _SNAPSHOT_HEADER.unpack_from(raw)
    start = _SNAPSHOT_HEADER.size
    customer = _customer_from_json(raw[start : start + profile_len])
    rest = raw[start + profile_len :]
    return ShopperSnapshot(customer, _decode_summary(rest) if rest else None)


def _encode_cart(cart: CartEvents) -> bytes:
    events = [[e.occurred_at.timestamp(), str(e.kind), e.product_id] for e in cart.events]
    return orjson.dumps([cart.loaded_as_of_s, events])


def _decode_cart(raw: bytes) -> CartEvents:
    loaded_as_of_s, events = orjson.loads(raw)
    return CartEvents(
        loaded_as_of_s,
        tuple(
            Interaction("", "", InteractionKind(kind), datetime.fromtimestamp(at, UTC), product_id)
            for at, kind, product_id in events
        ),
    )


def _customer_json(c: Customer) -> bytes:
    # Field by field: dataclasses.asdict deep-copies and costs more than the rest of a cache hit.
    body = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    body["created_at"], body["updated_at"] = c.created_at.timestamp(), c.updated_at.timestamp()
    body["preferences"] = {f.name: getattr(c.preferences, f.name) for f in dataclasses.fields(c.preferences)}
    body["consent"] = {f.name: getattr(c.consent, f.name) for f in dataclasses.fields(c.consent)}
    return orjson.dumps(body)


def _customer_from_json(raw: bytes) -> Customer:
    body = orjson.loads(raw)
    prefs = body.pop("preferences")
    for name in ("favorite_departments", "favorite_brands", "disliked_products"):
        prefs[name] = tuple(prefs[name])
    body.update(
        created_at=datetime.fromtimestamp(body["created_at"], UTC),
        updated_at=datetime.fromtimestamp(body["updated_at"], UTC),
        dietary_restrictions=tuple(body["dietary_restrictions"]),
        allergens=tuple(body["allergens"]),
        consent=Consent(**body["consent"]),
    )
    return Customer(**body, preferences=Preferences(**prefs))


def _encode_summary(s: PurchaseSummary) -> bytes:
    return b"".join(
        [
            _SUMMARY_HEADER.pack(len(s.items), len(s.trip_times_s), s.spend, s.newest_line_s),
            np.ascontiguousarray(s.items, dtype="<i4").tobytes(),
            np.ascontiguousarray(s.last_bought_s, dtype="<f8").tobytes(),
            np.ascontiguousarray(s.mean_gap_days, dtype="<f4").tobytes(),
            np.ascontiguousarray(s.orders, dtype="<f4").tobytes(),
            np.ascontiguousarray(s.habit, dtype="<f4").tobytes(),
            np.ascontiguousarray(s.trip_times_s, dtype="<f8").tobytes(),
        ]
    )


def _decode_summary(raw: bytes) -> PurchaseSummary:
    n, trips, spend, newest = _SUMMARY_HEADER.unpack_from(raw)
    offset = _SUMMARY_HEADER.size

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal offset
        array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)  # read-only views
        offset += array.nbytes
        return array

    summary = PurchaseSummary(
        items=take("<i4", n),
        last_bought_s=take("<f8", n),
        mean_gap_days=take("<f4", n),
        orders=take("<f4", n),
        habit=take("<f4", n),
        trip_times_s=take("<f8", trips),
        spend=spend,
        newest_line_s=newest,
    )
    if offset != len(raw):
        raise ValueError(f"a purchase summary of {len(raw)} bytes with {len(raw) - offset} bytes left over")
    return summary


SNAPSHOT_CODEC: Codec[ShopperSnapshot] = Codec(_encode_snapshot, _decode_snapshot)
CART_CODEC: Codec[CartEvents] = Codec(_encode_cart, _decode_cart)
