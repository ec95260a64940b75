"""The recommender: every recommendation question of the API, answered from the active model.

Per request it reads the shopper through the cache (engine/cached_reads.py), so a purchase
counts at once, masks the catalog with the shopper's hard filters (engine/filters.py), ranks
with the Rust kernel over the model's tables and words the reasons (engine/reasons.py). Callers
without a server's cache run the same code with `NO_CACHE`; anything else a test or the CLI does
differently from a server (`recheck_live_catalog`) is asked for by name.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import numpy as np

from omnix_recs._core import RANK_SIGNALS, CandidateSignals, rank_candidates
from omnix_recs.blocking import guard_store
from omnix_recs.domain.models import Customer, Feedback, RecommendedItem, ServedRecommendation
from omnix_recs.engine.artifact import LoadedModel, top_items
from omnix_recs.engine.blends import COMPLEMENT_BLEND, DEFAULT_BLENDS, SIMILAR_BLEND, Blend, Strategy
from omnix_recs.engine.cached_reads import NO_CACHE, ShopperReads, cart_owner
from omnix_recs.engine.features import HistoryFeatures
from omnix_recs.engine.filters import CatalogCache, CatalogIndex, ShopperFilters
from omnix_recs.engine.reasons import ReasonWriter
from omnix_recs.engine.served_lists import (
    LIST_REUSE_S,
    LIST_REUSE_SPREAD,
    RECOMMENDATIONS_CODEC,
    SERVED_LIST_TTL_S,
    Recommendations,
    ServedLists,
    new_recommendation_id,
)
from omnix_recs.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from omnix_recs.store.base import Store
from omnix_recs.store.cache import Cache

NO_MODEL_MESSAGE = "no active model: run `omnix train`"
# Shoppers with fewer trips than this get the cold-start list (stated preferences, diet, shop-wide signals).
NEW_CUSTOMER_TRIPS = 3
# Shoppers with at least this many trips in the last 90 days (about weekly) are VIPs.
VIP_TRIPS_90_DAYS = 12
# Share of a VIP's personalised list given to products they have never bought.
VIP_DISCOVERY_SHARE = 0.4
# Extra products ranked beyond the limit, to refill after the live catalog re-check drops some.
REFILL_MARGIN = 10
# GetRecommendations requests whose list digests are remembered (`Recommender._list_digest`).
MAX_REMEMBERED_DIGESTS = 4096


class Lifecycle(enum.StrEnum):
    NEW = "new"
    REGULAR = "regular"
    VIP = "vip"


class ModelSource(Protocol):
    """What the recommender needs from `engine.registry.ModelHolder`."""

    def reload_if_changed(self, *, force: bool = False) -> object: ...

    @property
    def model(self) -> LoadedModel | None: ...


class NoActiveModel:
    """The model source of a server without a model registry: every answer is "run omnix train"."""

    model = None

    def reload_if_changed(self, *, force: bool = False) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RequestFilters:
    """Hard filters a caller adds to the shopper's profile (all optional)."""

    max_price: float | None = None
    include_departments: tuple[str, ...] = ()
    exclude_departments: tuple[str, ...] = ()
    dietary: tuple[str, ...] = ()
    allergens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedShopper:
    """A shopper's kernel inputs as of a moment (offline evaluation: prepared once, ranked often)."""

    customer: Customer
    history: HistoryFeatures
    basket: np.ndarray
    filters: ShopperFilters
    as_of: datetime


def week_column(moment: datetime) -> int:
    """Column of `seasonal_lift` for a moment: ISO week 1..53 -> 0..52."""
    return moment.isocalendar().week - 1


# Offline ranking (tuning, evaluation) spreads shoppers over this many threads: the kernel
# releases the GIL, so each one keeps a core busy.
RANKING_THREADS = min(os.cpu_count() or 1, 8)
T = TypeVar("T")


def in_threads(work: Callable[[PreparedShopper], T], shoppers: Sequence[PreparedShopper]) -> list[T]:
    """`work` for each shopper, the shoppers dealt out round-robin to the ranking threads (the
    kernel releases the GIL): offline ranking."""
    shares = [shoppers[i::RANKING_THREADS] for i in range(RANKING_THREADS)]
    with ThreadPoolExecutor(RANKING_THREADS) as pool:
        done = list(pool.map(lambda share: [work(s) for s in share], shares))
    # Undo the interleaving: shopper i is entry i // threads of share i % threads.
    return [done[i % RANKING_THREADS][i // RANKING_THREADS] for i in range(len(shoppers))]


# A product kept for a list: (model item, score, confidence, [(reason code, anchor item)]).
Picked = tuple[int, float, float, list[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class _Ranked:
    items: np.ndarray
    scores: np.ndarray
    confidence: np.ndarray
    reasons: np.ndarray
    anchors: np.ndarray
    features: np.ndarray | None = None  # [k, RANK_FEATURES] when asked (offline only)


class Recommender:
    def __init__(
        self,
        store: Store,
        models: ModelSource,
        *,
        catalog: CatalogCache | None = None,
        blends: dict[str, Blend] | None = None,
        cache: Cache = NO_CACHE,
        served_lists: ServedLists | None = None,
        recheck_live_catalog: bool = False,
        popularity_discount: float = 0.0,
    ) -> None:
        """`cache`: the server's; `NO_CACHE` (the default) runs the same code keeping nothing.
        `recheck_live_catalog`: re-read the listed products' catalog rows and drop those the
        shopper may no longer see, for a caller whose catalog snapshot nothing keeps fresh
        (a server refreshes it, `CatalogCache.start`, and trusts it). `blends`: serve these
        instead of the blends each model carries (which fall back to `DEFAULT_BLENDS`)."""
        # Guarded: `run_memory_first` answers calls on the event loop until they would block.
        self._store = store = guard_store(store)
        # Where served lists go (for feedback): the store itself, or the server's write-behind
        # queue in front of it (engine/served_lists.py).
        self._served_lists = served_lists or store
        self._models = models
        self._cache = cache
        self._reads = ShopperReads(store, cache)
        self._recheck_live_catalog = recheck_live_catalog
        self.catalog = catalog or CatalogCache(store)
        self._blends = None if blends is None else dict(blends)
        # The operator's popularity-bias knob, applied over every blend that asks for less.
        self._popularity_discount = popularity_discount
        self._discounted: dict[tuple[int, str], Blend] = {}
        self._digests: dict[tuple[Any, ...], str] = {}  # `_list_digest`'s; dict operations are atomic

    # --- the questions --------------------------------------------------------------------------

    def recommend(
        self,
        customer_id: str,
        *,
        strategy: Strategy = Strategy.BALANCED,
        limit: int = 10,
        as_of: datetime | None = None,
        basket: Sequence[str] = (),
        filters: RequestFilters = RequestFilters(),
        exclude_purchased: bool = False,
    ) -> Recommendations:
        """GetRecommendations: the shopper's list for a strategy, as of a moment (default now)."""
        model = self._active()

        def answer() -> Recommendations:
            return self._recommend(
                model, customer_id, strategy, limit, as_of or _now(), basket, filters, exclude_purchased
            )

        if as_of is not None:  # a backtest: never answered from, or kept in, the cache
            return answer()
        # The snapshot's version is read before the list is ranked: a list ranked on a newer
        # catalog under an older version is harmless, the other way round would keep a stale one.
        self.catalog.index_for(model.item_ids)  # built for this model first (the first call)
        digest = self._list_digest(
            (model.version, self.catalog.version, str(strategy), limit, tuple(basket), filters, exclude_purchased)
        )
        # Under the cart's owner: a list changes with the cart as well as with purchases.
        owner = cart_owner(customer_id)
        ranked: list[Recommendations] = []

        def rank() -> Recommendations:
            ranked.append(answer())  # served and recorded by `_serve`
            return ranked[-1]

        def reuse_or_rank() -> Recommendations:
            ttl_s = min(LIST_REUSE_S, self._cache.ttl_s)
            listed = self._cache.fetch(
                owner, f"list:{digest}", RECOMMENDATIONS_CODEC, rank, ttl_s=ttl_s, expiry_spread=LIST_REUSE_SPREAD
            )
            return listed if ranked else self._serve_again(customer_id, listed)

        ttl_s = min(SERVED_LIST_TTL_S, self._cache.ttl_s)
        served = f"served:{digest}"
        if self._cache.in_memory:  # reads cost no round trip: nothing to read ahead
            return self._cache.fetch(owner, served, RECOMMENDATIONS_CODEC, reuse_or_rank, ttl_s=ttl_s)
        # Both entries in one read: with Redis, one round trip instead of two on a re-serving.
        with self._cache.reading_ahead(owner, (served, f"list:{digest}")):
            return self._cache.fetch(owner, served, RECOMMENDATIONS_CODEC, reuse_or_rank, ttl_s=ttl_s)

    def _list_digest(self, request: tuple[Any, ...]) -> str:
        """The cache name part of a GetRecommendations request: the same for the same request.
        Remembered per request, because nearly every call asks one of a few (no basket, no filters)."""
        digest = self._digests.get(request)
        if digest is None:
            digest = hashlib.blake2b(repr(request).encode(), digest_size=12).hexdigest()
            if len(self._digests) >= MAX_REMEMBERED_DIGESTS:  # baskets make requests many: start over
                self._digests.clear()
            self._digests[request] = digest
        return digest

    def _recommend(
        self,
        model: LoadedModel,
        customer_id: str,
        strategy: Strategy,
        limit: int,
        as_of: datetime,
        basket: Sequence[str],
        filters: RequestFilters,
        exclude_purchased: bool,
    ) -> Recommendations:
        customer, history, basket_items = self._shopper(model, customer_id, as_of, basket)
        blend = self.blend_for(model, strategy)
        if exclude_purchased:
            blend = replace(blend, exclude_history=True)
        shopper = self._filters(customer, filters)
        index = self.catalog.index_for(model.item_ids)
        items = self._rank_and_check(
            model,
            index,
            shopper,
            limit,
            lambda k: self._rank(model, index, shopper, history, basket_items, blend, as_of, k),
        )
        return self._serve(customer_id, str(strategy), model, index, history, items, as_of)

    def personalized(
        self,
        customer_id: str,
        *,
        limit: int = 10,
        as_of: datetime | None = None,
        filters: RequestFilters = RequestFilters(),
    ) -> Recommendations:
        """GetPersonalizedRecommendations: the list fitted to where the shopper is in their lifecycle."""
        model = self._active()
        as_of = as_of or _now()
        customer, history, basket = self._shopper(model, customer_id, as_of, ())
        shopper = self._filters(customer, filters)
        index = self.catalog.index_for(model.item_ids)
        stage = lifecycle(history)
        balanced, discover_blend = self.blend_for(model, Strategy.BALANCED), self.blend_for(model, Strategy.DISCOVER)
        if stage is Lifecycle.NEW or not customer.consent.personalization:
            items = self._rank_and_check(
                model, index, shopper, limit, lambda k: self._cold_start(model, index, shopper, customer, as_of, k)
            )
            history = HistoryFeatures.empty()
        elif stage is Lifecycle.REGULAR:
            items = self._rank_and_check(
                model,
                index,
                shopper,
                limit,
                lambda k: self._rank(model, index, shopper, history, basket, balanced, as_of, k),
            )
        else:
            discover = max(1, round(limit * VIP_DISCOVERY_SHARE))
            familiar = self._rank_and_check(
                model,
                index,
                shopper,
                limit - discover,
                lambda k: self._rank(model, index, shopper, history, basket, balanced, as_of, k),
            )
            new = self._rank_and_check(
                model,
                index,
                shopper,
                limit,
                lambda k: self._rank(model, index, shopper, history, basket, discover_blend, as_of, k),
            )
            items = _interleave(familiar, new, limit)
        served = self._serve(customer_id, f"personalized:{stage}", model, index, history, items, as_of)
        return replace(served, lifecycle=str(stage))

    def similar_products(
        self, product_id: str, *, limit: int = 10, customer_id: str = "", filters: RequestFilters = RequestFilters()
    ) -> Recommendations:
        """GetSimilarProducts: content and co-purchase neighbours of one product."""
        model = self._active()
        index = self.catalog.index_for(model.item_ids)
        self._require_products(model, index, [product_id])
        item = model.index_of.get(product_id)
        customer = self._customer(model, customer_id)
        shopper = self._filters(customer, filters)
        items: list[Picked] = []
        if item is not None:  # None: in the catalog but newer than the model, so nothing is known about it
            anchor = np.array([item], dtype=np.int32)
            items = self._rank_and_check(
                model,
                index,
                shopper,
                limit,
                lambda k: self._rank(model, index, shopper, HistoryFeatures.empty(), anchor, SIMILAR_BLEND, _now(), k),
            )
        return self._serve(customer_id, "similar", model, index, HistoryFeatures.empty(), items, _now())

    def frequently_bought_together(
        self,
        basket: Sequence[str],
        *,
        limit: int = 10,
        customer_id: str = "",
        filters: RequestFilters = RequestFilters(),
    ) -> Recommendations:
        """GetFrequentlyBoughtTogether: what completes this basket."""
        model = self._active()
        index = self.catalog.index_for(model.item_ids)
        self._require_products(model, index, basket)
        customer = self._customer(model, customer_id)
        shopper = self._filters(customer, filters)
        items_in_model = np.array([model.index_of[p] for p in basket if p in model.index_of], dtype=np.int32)
        items = self._rank_and_check(
            model,
            index,
            shopper,
            limit,
            lambda k: self._rank(
                model, index, shopper, HistoryFeatures.empty(), items_in_model, COMPLEMENT_BLEND, _now(), k
            ),
        )
        return self._serve(
            customer_id, "frequently_bought_together", model, index, HistoryFeatures.empty(), items, _now()
        )

    def trending(
        self,
        *,
        limit: int = 10,
        department: str = "",
        window_days: int = 0,
        customer_id: str = "",
        filters: RequestFilters = RequestFilters(),
    ) -> tuple[Recommendations, int]:
        """GetTrending: fastest-growing products, and the window (days) the model measured them over.

        The window is fixed when the model is built; `window_days` 0 means that one."""
        window = int(self._active().parameters.get("trending_window_days", 0))
        if window_days and window_days != window:
            raise InvalidArgumentError(
                "window_days", f"the active model measures trends over {window} days: use 0 or {window}"
            )
        return self._shop_wide("trending", limit, department, customer_id, filters, None), window

    def seasonal(
        self,
        *,
        limit: int = 10,
        as_of: datetime | None = None,
        department: str = "",
        customer_id: str = "",
        filters: RequestFilters = RequestFilters(),
    ) -> Recommendations:
        """GetSeasonal: products that sell above their usual level in this week of the year."""
        return self._shop_wide("seasonal", limit, department, customer_id, filters, as_of or _now())

    def record_feedback(self, feedback: Feedback) -> None:
        """RecordFeedback: tie a shopper's reaction to a product of a served list."""
        served = self._served_lists.get_recommendation(feedback.recommendation_id)
        if served.customer_id and feedback.customer_id and served.customer_id != feedback.customer_id:
            raise InvalidArgumentError("customer_id", "does not match the customer the list was served to")
        if feedback.product_id not in {item.product_id for item in served.items}:
            raise InvalidArgumentError(
                "product_id", f"{feedback.product_id!r} was not in recommendation {served.recommendation_id!r}"
            )
        self._store.add_feedback(replace(feedback, customer_id=feedback.customer_id or served.customer_id))

    def blend_for(self, model: LoadedModel, strategy: Strategy) -> Blend:
        """The blend a list of `strategy` is ranked with: the one tuned with the model, else the default."""
        blend = self._blends[strategy] if self._blends is not None else None
        blend = blend or model.blends.get(strategy) or DEFAULT_BLENDS[strategy]
        if blend.popularity_discount >= self._popularity_discount:
            return blend
        key = (id(model), strategy)  # one discounted copy per model and strategy, not per request
        discounted = self._discounted.get(key)
        if discounted is None or discounted.weights is not blend.weights:
            discounted = self._discounted[key] = replace(blend, popularity_discount=self._popularity_discount)
        return discounted

    @property
    def model_version(self) -> str:
        return self._active().version

    def shopper_at(self, customer_id: str, as_of: datetime) -> PreparedShopper:
        """A shopper's kernel inputs as of a past moment, read past the cache (for offline
        evaluation: prepare once, rank many)."""
        model = self._active()
        customer, history, basket = self._shopper(model, customer_id, as_of, (), backtest=True)
        return PreparedShopper(customer, history, basket, self._filters(customer, RequestFilters()), as_of)

    def rank_ids(self, shopper: PreparedShopper, blend: Blend, k: int) -> list[str]:
        """Product ids of the top k for a prepared shopper: the kernel's list after the cached
        catalog filters, without the live re-check and without storing the list."""
        model = self._active()
        index = self.catalog.index_for(model.item_ids)
        ranked = self._rank(model, index, shopper.filters, shopper.history, shopper.basket, blend, shopper.as_of, k)
        return [model.item_ids[i] for i in ranked.items.tolist()]

    def candidate_signals(self, shopper: PreparedShopper, blend: Blend) -> CandidateSignals:
        """A prepared shopper's candidates and their signals under `blend`'s rules (all of it
        but its weights, aisle cap and trees): what `rank_candidates` ranks under many blends."""
        model = self._active()
        index = self.catalog.index_for(model.item_ids)
        request = self._request(model, index, shopper.filters, shopper.history, shopper.basket, blend, shopper.as_of)
        return model.tables.candidate_signals(**request)

    def rank_candidates(self, candidates: Sequence[CandidateSignals], blend: Blend, k: int) -> list[list[str]]:
        """`rank_ids` of the shoppers whose `candidate_signals` (under blends of `blend`'s rules)
        these are, under `blend`'s weights and aisle cap, all at once. Not for a blend with trees."""
        if blend.reranker is not None:
            raise InvalidArgumentError("blend", "ranking gathered candidates applies no re-ranking trees")
        item_ids = self._active().item_ids
        lists = rank_candidates(list(candidates), weights=blend.vector, k=k, per_category_cap=blend.per_category_cap)
        return [[item_ids[i] for i in items.tolist()] for items in lists]

    def listed_with_features(self, shopper: PreparedShopper, blend: Blend, k: int) -> tuple[list[str], np.ndarray]:
        """`rank_ids` with each listed product's re-ranking features (float32 [k', n_features]):
        what a re-ranker is trained on (engine/reranking.py)."""
        model = self._active()
        index = self.catalog.index_for(model.item_ids)
        ranked = self._rank(
            model, index, shopper.filters, shopper.history, shopper.basket, blend, shopper.as_of, k, with_features=True
        )
        assert ranked.features is not None
        return [model.item_ids[i] for i in ranked.items.tolist()], ranked.features

    def shown(self, shopper: PreparedShopper) -> np.ndarray:
        """Which of the model's items the cached catalog filters let a prepared shopper see (a
        read-only mask), so that offline comparisons hold every method to the same shelf."""
        model = self._active()
        return self.catalog.index_for(model.item_ids).allowed(shopper.filters, model.index_of)

    # --- pieces ---------------------------------------------------------------------------------

    def _active(self) -> LoadedModel:
        self._models.reload_if_changed()
        model = self._models.model
        if model is None:
            raise FailedPreconditionError(NO_MODEL_MESSAGE)
        return model

    def _require_products(self, model: LoadedModel, index: CatalogIndex, product_ids: Sequence[str]) -> None:
        """`NotFoundError` for the first id that is not in the catalog. The snapshot knows the
        model's products (it never forgets one: products are not deleted); only others, such as
        products added since, are looked up in the store."""
        unknown = [p for p in product_ids if (i := model.index_of.get(p)) is None or not index.present[i]]
        found = self._store.get_products(unknown) if unknown else {}
        for product_id in unknown:
            if product_id not in found:
                raise NotFoundError("product", product_id)

    def _customer(self, model: LoadedModel, customer_id: str) -> Customer | None:
        """The profile of the shopper a shop-wide list is for, if any."""
        return self._reads.shopper(customer_id, model.version, model.index_of).customer if customer_id else None

    def _shopper(
        self, model: LoadedModel, customer_id: str, as_of: datetime, basket: Sequence[str], *, backtest: bool = False
    ) -> tuple[Customer, HistoryFeatures, np.ndarray]:
        """The shopper's profile, history features and basket (the cart when none is given);
        `backtest`: read past the cache (`ShopperReads.shopper_as_of`)."""
        if backtest:
            shopper = self._reads.shopper_as_of(customer_id, model.index_of, as_of, habit_decay=model.habit_decay)
        else:
            shopper = self._reads.shopper(
                customer_id, model.version, model.index_of, as_of, habit_decay=model.habit_decay
            )
        if shopper.customer.consent.personalization:
            like_you = model.shoppers_like(customer_id, registered_at=shopper.customer.created_at)
            history = shopper.history(as_of).with_shoppers_like_you(*like_you)
        else:
            history = HistoryFeatures.empty()
        if not basket:
            basket = shopper.cart(as_of)
        in_model = [model.index_of[p] for p in dict.fromkeys(basket) if p in model.index_of]
        return shopper.customer, history, np.array(in_model, dtype=np.int32)

    @staticmethod
    def _filters(customer: Customer | None, request: RequestFilters) -> ShopperFilters:
        return ShopperFilters.for_customer(
            customer,
            dietary=request.dietary,
            allergens=request.allergens,
            max_price=request.max_price,
            include_departments=request.include_departments,
            exclude_departments=request.exclude_departments,
        )

    def _rank(
        self,
        model: LoadedModel,
        index: CatalogIndex,
        shopper: ShopperFilters,
        history: HistoryFeatures,
        basket: np.ndarray,
        blend: Blend,
        as_of: datetime,
        k: int,
        *,
        with_features: bool = False,
    ) -> _Ranked:
        return _Ranked(
            *model.tables.rank(
                **self._request(model, index, shopper, history, basket, blend, as_of),
                weights=blend.vector,
                k=k,
                per_category_cap=blend.per_category_cap,
                reranker=blend.reranker,
                with_features=with_features,
            )
        )

    def _request(
        self,
        model: LoadedModel,
        index: CatalogIndex,
        shopper: ShopperFilters,
        history: HistoryFeatures,
        basket: np.ndarray,
        blend: Blend,
        as_of: datetime,
    ) -> dict[str, Any]:
        """The kernel's request but for what only ranking takes (weights, k, aisle cap, trees)."""
        week = week_column(as_of)
        return {
            "history_items": history.items,
            "days_since_last": history.days_since_last,
            "mean_gap_days": history.mean_gap_days,
            "orders": history.orders,
            "habit": history.habit,
            "basket": basket,
            "allowed": index.allowed(shopper, model.index_of),
            "category_ids": index.aisle_ids,
            "brand_ids": index.brand_ids,
            "extra_candidates": model.shop_wide_candidates(week),
            "week": week,
            "exclude_history": blend.exclude_history,
            "neighbours_per_item": blend.neighbours_per_item,
            "days_to_next_trip": history.days_to_next_trip,
            "like_you_items": history.like_you_items,
            "like_you_scores": history.like_you_scores,
            "replaced_weight": blend.replaced_weight,
            "popularity_discount": blend.popularity_discount,
        }

    def _cold_start(
        self,
        model: LoadedModel,
        index: CatalogIndex,
        shopper: ShopperFilters,
        customer: Customer,
        as_of: datetime,
        k: int,
    ) -> _Ranked:
        """Shop-wide signals, lifted by the departments and brands the shopper says they like."""
        week = week_column(as_of)
        popularity = np.nan_to_num(model.popularity)
        trending = _squash(model.trending)
        seasonal = _squash(model.seasonal_lift[:, week] - 1.0)
        prefs = customer.preferences
        liked_department = index.department_mask(prefs.favorite_departments)
        liked_brand = np.isin(
            index.brand_ids, [index.brands.index(b) for b in prefs.favorite_brands if b in index.brands]
        )
        score = popularity + 0.3 * trending + 0.3 * seasonal + 1.0 * liked_department + 0.5 * liked_brand
        return _shop_wide_ranked(
            score,
            index.allowed(shopper, model.index_of),
            k,
            [
                ("popularity", popularity),
                ("trending", 0.3 * trending),
                ("seasonal", 0.3 * seasonal),
                ("category_affinity", 1.0 * liked_department),
                ("brand_affinity", 0.5 * liked_brand),
            ],
        )

    def _shop_wide(
        self, kind: str, limit: int, department: str, customer_id: str, filters: RequestFilters, as_of: datetime | None
    ) -> Recommendations:
        model = self._active()
        customer = self._customer(model, customer_id)
        if department:
            filters = replace(filters, include_departments=(*filters.include_departments, department))
        shopper = self._filters(customer, filters)
        index = self.catalog.index_for(model.item_ids)
        if kind == "trending":
            signal = np.nan_to_num(model.trending, nan=0.0)
        else:
            assert as_of is not None
            signal = np.nan_to_num(model.seasonal_lift[:, week_column(as_of)] - 1.0, nan=0.0)
        # Popularity breaks near-ties so that a spike on three sales does not top the list.
        score = np.where(signal > 0, _squash(signal) + 0.1 * np.nan_to_num(model.popularity), 0.0)
        items = self._rank_and_check(
            model,
            index,
            shopper,
            limit,
            lambda k: _shop_wide_ranked(score, index.allowed(shopper, model.index_of), k, [(kind, score)]),
        )
        return self._serve(customer_id, kind, model, index, HistoryFeatures.empty(), items, as_of or _now())

    def _rank_and_check(
        self,
        model: LoadedModel,
        index: CatalogIndex,
        shopper: ShopperFilters,
        limit: int,
        rank: Callable[[int], _Ranked],
    ) -> list[Picked]:
        """The top `limit`; re-checked against the live catalog when the snapshot may be old
        (rank `limit + margin`, drop what the live rows no longer admit, keep `limit`)."""
        ranked: _Ranked = rank(limit + REFILL_MARGIN if self._recheck_live_catalog else limit)
        items, reasons, anchors = ranked.items.tolist(), ranked.reasons.tolist(), ranked.anchors.tolist()
        scores, confidence = ranked.scores.tolist(), ranked.confidence.tolist()
        keep: Sequence[int] = range(len(items))
        if self._recheck_live_catalog:
            live = self._store.get_products([model.item_ids[i] for i in items])
            keep = [
                pos for pos in keep if (p := live.get(model.item_ids[items[pos]])) is not None and shopper.admits(p)
            ]
        return [
            (items[pos], scores[pos], confidence[pos], [(c, a) for c, a in zip(reasons[pos], anchors[pos]) if c >= 0])
            for pos in keep[:limit]
        ]

    def _serve(
        self,
        customer_id: str,
        strategy: str,
        model: LoadedModel,
        index: CatalogIndex,
        history: HistoryFeatures,
        items: list[Picked],
        as_of: datetime,
    ) -> Recommendations:
        explain = ReasonWriter(model, index, history, as_of, [item for item, *_ in items])
        recommended = tuple(
            RecommendedItem(
                product_id=model.item_ids[item],
                score=round(score, 6),
                confidence=round(confidence, 4),
                reasons=tuple(explain(item, code, anchor) for code, anchor in reasons),
            )
            for item, score, confidence, reasons in items
        )
        served = ServedRecommendation(
            recommendation_id=new_recommendation_id(),
            customer_id=customer_id,
            generated_at=_now(),
            strategy=strategy,
            model_version=model.version,
            items=recommended,
        )
        self._served_lists.save_recommendation(served)
        return Recommendations(
            served.recommendation_id, model.version, strategy, recommended, ranking_id=served.recommendation_id
        )

    def _serve_again(self, customer_id: str, listed: Recommendations) -> Recommendations:
        """A list ranked earlier (`LIST_REUSE_S`), served as a new one: its own id, recorded."""
        served = ServedRecommendation(
            recommendation_id=new_recommendation_id(),
            customer_id=customer_id,
            generated_at=_now(),
            strategy=listed.strategy,
            model_version=listed.model_version,
            items=listed.items,
        )
        self._served_lists.save_recommendation(served)
        # Built directly rather than by `dataclasses.replace`, which costs several times more.
        return Recommendations(
            served.recommendation_id,
            listed.model_version,
            listed.strategy,
            listed.items,
            listed.lifecycle,
            listed.ranking_id,
        )


def lifecycle(history: HistoryFeatures) -> Lifecycle:
    if history.trips < NEW_CUSTOMER_TRIPS:
        return Lifecycle.NEW
    if history.trips_last_90_days >= VIP_TRIPS_90_DAYS:
        return Lifecycle.VIP
    return Lifecycle.REGULAR


def _now() -> datetime:
    return datetime.now(UTC)


def _squash(x: np.ndarray) -> np.ndarray:
    x = np.maximum(np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0), 0.0)
    return x / (1.0 + x)


def _shop_wide_ranked(score: np.ndarray, allowed: np.ndarray, k: int, parts: list[tuple[str, np.ndarray]]) -> _Ranked:
    """Top-k of a dense score (numpy: these lists have no per-shopper candidates to gather)."""
    masked = np.where(allowed & (score > 0), score, -np.inf)
    top = top_items(masked, k)
    top = top[np.isfinite(masked[top])]
    contributions = np.stack([np.broadcast_to(v, score.shape)[top] for _, v in parts], axis=1)
    codes = np.array([RANK_SIGNALS.index(name) for name, _ in parts])
    best = np.argmax(contributions, axis=1)
    reasons = np.full((len(top), 2), -1, dtype=np.int8)
    reasons[:, 0] = np.where(contributions[np.arange(len(top)), best] > 0, codes[best], -1)
    scores = score[top].astype(np.float32)
    total = float(np.max(score)) if len(score) else 1.0
    confidence = (1.0 - np.exp(-4.0 * scores / max(total, 1e-9))).astype(np.float32)
    return _Ranked(top.astype(np.int32), scores, confidence, reasons, np.full((len(top), 2), -1, dtype=np.int32))


def _interleave(first: list[Picked], second: list[Picked], limit: int) -> list[Picked]:
    """Alternate two ranked lists (first leads), skipping repeats, up to `limit`."""
    out: list[Picked] = []
    seen: set[int] = set()
    for pair in zip(first, second):
        for entry in pair:
            if entry[0] not in seen and len(out) < limit:
                out.append(entry)
                seen.add(entry[0])
    for entry in (*first, *second):
        if entry[0] not in seen and len(out) < limit:
            out.append(entry)
            seen.add(entry[0])
    return out
