"""The objects every servicer shares, built once per server process.

`AppContext.create(settings, store)` is the single place where long-lived collaborators are
constructed; servicers receive the context and take what they need from it. To add one (the
model holder, the insights service, ...), add an attribute with a default here and build it in
`create`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omnix_recs.blocking import guard_store
from omnix_recs.config import Settings
from omnix_recs.customers import CustomerService
from omnix_recs.domain.models import CustomerChange
from omnix_recs.engine import cached_reads
from omnix_recs.engine.cached_reads import NO_CACHE
from omnix_recs.engine.filters import CatalogCache
from omnix_recs.engine.model_erasure import ModelFiles
from omnix_recs.engine.recommender import ModelSource, NoActiveModel
from omnix_recs.engine.registry import ModelHolder
from omnix_recs.engine.served_lists import ServedListWriter
from omnix_recs.store import snapshot as training_snapshot
from omnix_recs.store.base import Store
from omnix_recs.store.cache import Cache, GenerationTable, open_cache

if TYPE_CHECKING:
    from omnix_recs.insights.bedrock import BedrockAnalyst

# Called with a customer id and what changed, after something about that customer changed (a
# purchase or an interaction was recorded, the profile changed, or the customer was erased).
CustomerActivityListener = Callable[[str, CustomerChange], None]


@dataclass(eq=False)
class AppContext:
    settings: Settings
    store: Store
    # The active recommendation model (`create` gives an `engine.registry.ModelHolder`, which
    # follows activations made by any process; the default serves no model).
    models: ModelSource = field(default_factory=NoActiveModel)
    # Hot per-shopper reads (store/cache/); `NO_CACHE` keeps nothing, so every read goes to the store.
    cache: Cache = NO_CACHE
    # The catalog snapshot serving filters with, rebuilt off the request path when the catalog
    # changes (engine/filters.py); None = each `Recommender` keeps its own.
    catalog: CatalogCache | None = None
    # Served lists written behind the answers (engine/served_lists.py); None = written at once.
    served_lists: ServedListWriter | None = None
    _activity_listeners: list[CustomerActivityListener] = field(default_factory=list, repr=False)
    # Called (in a thread) after this process created or stopped an A/B experiment, so that its
    # lists follow at once rather than at the next periodic check (omnix_recs.experiments).
    experiment_listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # Customer writes, each published to the listeners below (customers.py). Built from this
    # context's own store and served lists, so every context has one and it cannot disagree.
    customers: CustomerService = field(init=False, repr=False)
    # Bedrock's client and circuit breaker, one per process for every caller (insights, campaign
    # texts): a Bedrock failing for one is skipped by all. Built on first use (`bedrock()`).
    _bedrock: BedrockAnalyst | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.customers = CustomerService(
            self.store,
            publish=self.on_customer_activity,
            served_lists=self.served_lists,
            snapshot_at=training_snapshot.location(self.store, self.settings.snapshot_dir, self.settings.store_url),
            model_files=ModelFiles.from_settings(self.settings),
        )

    @classmethod
    def create(cls, settings: Settings, store: Store, *, generations: GenerationTable | None = None) -> AppContext:
        """`generations`: the cache generations shared with sibling worker processes, if any."""
        # Guarded so that a call answered on the event loop cannot block on it (blocking.py).
        store = guard_store(store)
        cache = open_cache(settings, generations=generations)
        models = ModelHolder(store, settings=settings, check_every_s=settings.follow_interval_s)
        models.reload_if_changed(force=True)  # load the active version before the first request
        app = cls(
            settings=settings,
            store=store,
            models=models,
            cache=cache,
            catalog=CatalogCache(store),
            served_lists=ServedListWriter(store),
        )
        app.subscribe_customer_activity(functools.partial(cached_reads.forget, cache))
        return app

    def start(self) -> None:
        """Start the background work: catalog change checks, served-list writing, erasures'
        second passes left pending (customers.py)."""
        if self.catalog is not None:
            self.catalog.start()
        if self.served_lists is not None:
            self.served_lists.start()
        self.customers.start()

    def bedrock(self) -> BedrockAnalyst | None:
        """The process's Bedrock client, or None when Bedrock is disabled."""
        if not self.settings.bedrock_enabled:
            return None
        if self._bedrock is None:
            from omnix_recs.insights.bedrock import BedrockAnalyst  # boto3, only when enabled

            self._bedrock = BedrockAnalyst(self.settings)
        return self._bedrock

    def close(self) -> None:
        """Stop the background work, writing the served lists still queued (after the last call)."""
        if self._bedrock is not None:
            self._bedrock.close()
        if self.served_lists is not None:
            self.served_lists.close()
        self.customers.close()  # erasures' second passes, after the last served list is written
        if self.catalog is not None:
            self.catalog.close()

    def write_served_lists(self) -> None:
        """Write queued served lists now: before reading or erasing a customer's stored data."""
        if self.served_lists is not None:
            self.served_lists.flush()

    def subscribe_customer_activity(self, listener: CustomerActivityListener) -> None:
        """Call `listener(customer_id, change)` whenever that customer's data changes.

        For caches of per-customer results: drop the customer's entries that `change` made
        stale, so the next request sees the change. Listeners run in the thread that wrote
        (`CustomerService`, never the event loop), so they may wait briefly (a Redis delete);
        an exception fails the call that triggered it (the write itself is kept, and retrying
        it is harmless because writes are idempotent).
        """
        self._activity_listeners.append(listener)

    def on_customer_activity(self, customer_id: str, change: CustomerChange = CustomerChange.DATA) -> None:
        for listener in self._activity_listeners:
            listener(customer_id, change)
