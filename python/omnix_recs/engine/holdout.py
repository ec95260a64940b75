"""Held-out baskets: the protocol every offline judgement of the engine follows.

`omnix evaluate` and `omnix train` judge recommendations the same way: keep a shopper's basket
out of the model, ask for their list at a moment before that basket, and score the list against
what they bought. Sharing one implementation keeps the two honest with each other: the blend
`omnix train` ships is chosen by the rules `omnix evaluate` reports on. Everything works on the
build's `PurchaseLines` arrays, so holding baskets out costs the same at any shop size.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta

import numpy as np

from omnix_recs.domain.purchases import OrderLines
from omnix_recs.engine.blends import Strategy
from omnix_recs.engine.matrix import PurchaseLines

# Shoppers with fewer trips are not judged: one trip to learn from says nothing about habits.
MIN_TRIPS = 3
PERSONALIZATION_PAIRS = 2000
LIST_METRICS = ("recall", "ndcg", "hit", "coverage", "personalization")
BIAS_METRICS = ("popularity", "long_tail", "gini")
# The head of the catalog: the most bought products that together make this share of purchases.
HEAD_SHARE = 0.2


class AskedAt(enum.StrEnum):
    """When, relative to the held-out trip, the shopper asks for their list. A list must be good
    right after a trip and days later alike, so every method is judged at both moments."""

    END_OF_TRIP_DAY = "end_of_trip_day"  # 23:59:59 UTC of the day of the shopper's last trip
    NEXT_TRIP = "next_trip"  # one second before the held-out trip

    @property
    def heading(self) -> str:
        if self is AskedAt.END_OF_TRIP_DAY:
            return "asked at the end of the last trip's day"
        return "asked one second before the next trip"


@dataclass(frozen=True)
class Trips:
    """Every shopper's trips (the baskets of `lines`), oldest first.

    Shopper c's trips are `by_shopper[starts[c]:starts[c + 1]]` (basket codes, ordered by time,
    then code); a trip's time is its first line's. `items_of` gives a basket's products."""

    lines: PurchaseLines
    shopper: np.ndarray  # int32 [n_baskets]
    at: np.ndarray  # int64 [n_baskets], epoch seconds UTC
    by_shopper: np.ndarray  # int64 [n_baskets]
    starts: np.ndarray  # int64 [n_customers + 1]
    _item_order: np.ndarray  # line positions grouped by basket
    _item_starts: np.ndarray  # int64 [n_baskets + 1] into _item_order

    @classmethod
    def of(cls, lines: PurchaseLines) -> Trips:
        n = lines.n_baskets
        shopper = np.zeros(n, dtype=np.int32)
        shopper[lines.basket] = lines.customer
        at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(at, lines.basket, lines.purchased_at)
        by_shopper = np.lexsort((np.arange(n), at, shopper)).astype(np.int64)
        starts = np.zeros(lines.n_customers + 1, dtype=np.int64)
        np.cumsum(np.bincount(shopper, minlength=lines.n_customers), out=starts[1:])
        item_starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(lines.basket, minlength=n), out=item_starts[1:])
        return cls(lines, shopper, at, by_shopper, starts, np.argsort(lines.basket, kind="stable"), item_starts)

    def counts(self) -> np.ndarray:
        """Trips per shopper (customer code)."""
        counts: np.ndarray = np.diff(self.starts)
        return counts

    def eligible(self, min_trips: int = MIN_TRIPS) -> list[int]:
        """Customer codes of the shoppers with at least `min_trips` trips."""
        return [int(c) for c in np.flatnonzero(self.counts() >= min_trips)]

    def of_shopper(self, customer: int) -> np.ndarray:
        trips: np.ndarray = self.by_shopper[self.starts[customer] : self.starts[customer + 1]]
        return trips

    def items_of(self, basket: int) -> np.ndarray:
        """The basket's item codes (a product bought twice appears twice)."""
        items: np.ndarray = self.lines.item[self._item_order[self._item_starts[basket] : self._item_starts[basket + 1]]]
        return items

    def order_lines_of(self, customer: int) -> OrderLines | None:
        """Shopper `customer`'s order lines as the store's `order_lines_of` gives them, made from
        `lines` instead of read, for moments before the lines end (an offline judgement asks
        thousands of shoppers; on DynamoDB each read is a Query, most of a validation's time).

        What a ranking reads of a history is exact: each line's product, trip and time (to the
        second, as `PurchaseLines` keeps it; the moments a judgement asks at are whole seconds,
        so the same lines come before them). `lines` keeps no quantity or price: each line has
        quantity 1 and unit price NaN, so the summary's spend is NaN, and nothing ranks by it.
        The order ids stand in for the store's, numbering the trips oldest first: the store's
        only decide the order of two trips placed in the same second, so for a shopper with
        such trips this answers None, and the store is read."""
        baskets = self.of_shopper(customer)
        if np.any(np.diff(self.at[baskets]) == 0):
            return None
        positions = [self._item_order[self._item_starts[b] : self._item_starts[b + 1]] for b in baskets.tolist()]
        line = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        trip = np.repeat(np.arange(len(positions)), [len(p) for p in positions])
        item_ids = self.lines.item_ids
        return OrderLines(
            order_ids=[f"{t:09d}" for t in trip.tolist()],  # sorted as the trips are: oldest first
            product_ids=[item_ids[i] for i in self.lines.item[line].tolist()],
            quantities=np.ones(len(line), dtype=np.int64),
            unit_prices=np.full(len(line), np.nan),
            purchased_at_s=self.lines.purchased_at[line].astype(np.float64),
        )

    def histories(self, leave_out: np.ndarray, customers: Sequence[int] | None = None) -> list[list[np.ndarray]]:
        """The baskets of `customers` (default: every shopper, row = customer code) as item
        codes, oldest first, without the baskets `leave_out`: what a baseline may learn from."""
        kept = np.ones(self.lines.n_baskets, dtype=bool)
        kept[leave_out] = False
        items = self.lines.item[self._item_order]
        bounds = self._item_starts
        return [
            [items[bounds[b] : bounds[b + 1]] for b in self.of_shopper(c).tolist() if kept[b]]
            for c in (range(self.lines.n_customers) if customers is None else customers)
        ]


@dataclass(frozen=True)
class Split:
    """One held-out basket for each of some shoppers, and what they had bought before it."""

    customers: np.ndarray  # int64 customer codes
    customer_ids: list[str]
    targets: np.ndarray  # int64 basket codes held out
    target_at: list[datetime]
    last_trip_at: list[datetime]  # each shopper's newest trip before the target
    bought: list[frozenset[str]]  # the held-out baskets' products
    new: list[frozenset[str]]  # of those, the ones the shopper had never bought before

    def __len__(self) -> int:
        return len(self.customer_ids)

    def truth(self, task: Strategy) -> list[frozenset[str]]:
        """What a list for `task` should hold: DISCOVER only the products new to the shopper;
        REPLENISH and BALANCED the whole basket."""
        return self.new if task is Strategy.DISCOVER else self.bought

    def asked_at(self, when: AskedAt) -> list[datetime]:
        """Each shopper's moment of asking. The end of the last trip's day is capped at one
        second before the held-out trip, for a shopper who went twice in one day."""
        before = [t - timedelta(seconds=1) for t in self.target_at]
        if when is AskedAt.NEXT_TRIP:
            return before
        return [min(end_of_day(last), b) for last, b in zip(self.last_trip_at, before)]

    def sample(self, n: int, seed: int) -> Split:
        """At most `n` of the shoppers (seeded), in their original order."""
        if len(self) <= n:
            return self
        return self.subset(sorted(random.Random(seed).sample(range(len(self)), n)))

    def subset(self, positions: Sequence[int]) -> Split:
        keep = list(positions)
        return Split(
            customers=self.customers[keep],
            customer_ids=[self.customer_ids[i] for i in keep],
            targets=self.targets[keep],
            target_at=[self.target_at[i] for i in keep],
            last_trip_at=[self.last_trip_at[i] for i in keep],
            bought=[self.bought[i] for i in keep],
            new=[self.new[i] for i in keep],
        )


def known_lines(trips: Trips, split: Split) -> Callable[[str], OrderLines | None]:
    """The split's shoppers' order lines from `trips` (`Trips.order_lines_of`), by customer id;
    None for anyone else (for `cached_reads.repeated_reads`)."""
    code_of = dict(zip(split.customer_ids, split.customers.tolist()))

    def lines_of(customer_id: str) -> OrderLines | None:
        code = code_of.get(customer_id)
        return None if code is None else trips.order_lines_of(code)

    return lines_of


def end_of_day(moment: datetime) -> datetime:
    """23:59:59 UTC of the moment's day."""
    return datetime.combine(moment.astimezone(UTC).date(), time(23, 59, 59), tzinfo=UTC)


def hold_out(trips: Trips, customers: Sequence[int], *, back: int = 1) -> Split:
    """Hold out each shopper's `back`-th trip from the end (1 = the latest); they need at least
    `back + 1` trips, so that something came before it."""
    item_ids = trips.lines.item_ids
    targets, target_at, last_at, bought, new = [], [], [], [], []
    for c in customers:
        shopper_trips = trips.of_shopper(c)
        if len(shopper_trips) <= back:
            raise ValueError(f"customer {trips.lines.customer_ids[c]} has {len(shopper_trips)} trips, needs {back + 1}")
        target, before = int(shopper_trips[-back]), shopper_trips[:-back]
        basket = frozenset(item_ids[i] for i in trips.items_of(target).tolist())
        earlier = {item_ids[i] for b in before.tolist() for i in trips.items_of(b).tolist()}
        targets.append(target)
        target_at.append(_utc(trips.at[target]))
        last_at.append(_utc(trips.at[before[-1]]))
        bought.append(basket)
        new.append(basket - earlier)
    return Split(
        customers=np.asarray(customers, dtype=np.int64),
        customer_ids=[trips.lines.customer_ids[c] for c in customers],
        targets=np.asarray(targets, dtype=np.int64),
        target_at=target_at,
        last_trip_at=last_at,
        bought=bought,
        new=new,
    )


def lines_without(lines: PurchaseLines, baskets: np.ndarray) -> PurchaseLines:
    """The order lines minus the baskets `baskets` (codes renumbered so none is left empty;
    shoppers and items keep theirs, so a model built from them indexes items like `lines`)."""
    kept_baskets = np.ones(lines.n_baskets, dtype=bool)
    kept_baskets[baskets] = False
    kept = kept_baskets[lines.basket]
    new_code = (np.cumsum(kept_baskets) - 1).astype(np.int32)
    return replace(
        lines,
        customer=lines.customer[kept],
        item=lines.item[kept],
        basket=new_code[lines.basket[kept]],
        purchased_at=lines.purchased_at[kept],
        n_baskets=int(kept_baskets.sum()),
    )


def _utc(epoch_seconds: np.integer) -> datetime:
    return datetime.fromtimestamp(int(epoch_seconds), tz=UTC)


# --- metrics -----------------------------------------------------------------------------------


def ndcg(ranked: Sequence[str], truth: frozenset[str], k: int) -> float:
    """NDCG@k with binary relevance."""
    dcg = sum(1.0 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in truth)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(truth))))
    return dcg / ideal if ideal else 0.0


@dataclass(frozen=True)
class ItemPopularity:
    """How popular each product was in the lines the methods learnt from, for popularity bias:
    the share of shoppers who bought it, and the head (the most bought products that together
    make `HEAD_SHARE` of all purchases; the rest is the long tail)."""

    share: dict[str, float]
    head: frozenset[str]

    @classmethod
    def of(cls, trips: Trips, leave_out: np.ndarray) -> ItemPopularity:
        lines = trips.lines
        kept = np.ones(lines.n_baskets, dtype=bool)
        kept[leave_out] = False
        keep = kept[lines.basket]
        item, customer = lines.item[keep].astype(np.int64), lines.customer[keep].astype(np.int64)
        bought = np.unique(customer * lines.n_items + item) % lines.n_items  # one per shopper and item
        shoppers = np.bincount(bought, minlength=lines.n_items) / max(lines.n_customers, 1)
        volume = np.bincount(item, minlength=lines.n_items)
        order = np.argsort(-volume, kind="stable")
        covered = np.cumsum(volume[order]) <= HEAD_SHARE * max(int(volume.sum()), 1)
        head = order[: int(np.count_nonzero(covered)) + 1] if len(order) else order
        ids = lines.item_ids
        return cls({ids[i]: float(shoppers[i]) for i in np.flatnonzero(shoppers)}, frozenset(ids[i] for i in head))


def popularity_bias(
    lists: Sequence[Sequence[str]], k: int, catalog_size: int, popularity: ItemPopularity
) -> dict[str, float]:
    """At K: `popularity@K`, the mean share of shoppers who bought a listed product;
    `long_tail@K`, the share of listed products outside the head; `gini@K`, the Gini coefficient
    of how often each catalog product is listed (0: every product equally, 1: one product only)."""
    shown = [p for ranked in lists for p in ranked[:k]]
    if not shown:
        return {f"popularity@{k}": 0.0, f"long_tail@{k}": 0.0, f"gini@{k}": 0.0}
    exposure = np.zeros(max(catalog_size, len(set(shown))), dtype=np.float64)
    counts = np.unique(np.array(shown, dtype=object), return_counts=True)[1]
    exposure[: len(counts)] = counts
    exposure.sort()
    n = len(exposure)
    gini = float((2 * np.arange(1, n + 1) - n - 1) @ exposure / (n * exposure.sum()))
    return {
        f"popularity@{k}": float(np.mean([popularity.share.get(p, 0.0) for p in shown])),
        f"long_tail@{k}": float(np.mean([p not in popularity.head for p in shown])),
        f"gini@{k}": gini,
    }


def list_metrics(
    lists: Sequence[Sequence[str]],
    truth: Sequence[frozenset[str]],
    k_values: Sequence[int],
    catalog_size: int,
    seed: int = 0,
    popularity: ItemPopularity | None = None,
) -> dict[str, float]:
    """Metrics at each K over the shoppers whose truth is not empty: recall, NDCG, hit rate
    (at least one right), catalog coverage (share of the catalog in any list) and
    personalization (1 - mean overlap of two shoppers' lists, over seeded pairs); with
    `popularity`, the popularity bias of the lists too (`popularity_bias`)."""
    pairs = [(ranked, t) for ranked, t in zip(lists, truth) if t]
    out: dict[str, float] = {"customers": float(len(pairs))}
    if not pairs:
        metrics = (*LIST_METRICS, *(BIAS_METRICS if popularity else ()))
        return out | {f"{m}@{k}": 0.0 for k in k_values for m in metrics}
    rng = random.Random(seed)
    for k in k_values:
        hits = [len(set(r[:k]) & t) for r, t in pairs]
        out[f"recall@{k}"] = float(np.mean([h / len(t) for h, (_, t) in zip(hits, pairs)]))
        out[f"ndcg@{k}"] = float(np.mean([ndcg(r, t, k) for r, t in pairs]))
        out[f"hit@{k}"] = float(np.mean([h > 0 for h in hits]))
        out[f"coverage@{k}"] = len({p for r, _ in pairs for p in r[:k]}) / max(catalog_size, 1)
        sample = [rng.sample(range(len(pairs)), 2) for _ in range(PERSONALIZATION_PAIRS)] if len(pairs) > 1 else []
        overlap = [len(set(pairs[a][0][:k]) & set(pairs[b][0][:k])) / k for a, b in sample]
        out[f"personalization@{k}"] = 1.0 - float(np.mean(overlap)) if overlap else 0.0
        if popularity is not None:
            out |= popularity_bias([r for r, _ in pairs], k, catalog_size, popularity)
    return out
