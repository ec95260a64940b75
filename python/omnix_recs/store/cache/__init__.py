"""The cache in front of hot per-shopper reads: in-process, or Redis shared by every process.

Serving reads a shopper's history and profile on every request; the cache keeps what was
derived from them until the shopper buys or changes something (`forget_customer`), in every
process. `open_cache` picks Redis when `OMNIX_REDIS_URL` is set. Modules: `base` (`Cache`:
generations, single-flight loads, early and background refresh), `generations` (counters shared
by a server's workers), `local` (`LocalCache`, an LRU in this process), `redis` (`RedisCache`),
`near` (what each process keeps of Redis, kept fresh by Redis's invalidations).
"""

from __future__ import annotations

from omnix_recs.config import Settings
from omnix_recs.store.cache.base import Cache, CacheStats, Codec
from omnix_recs.store.cache.generations import GenerationTable
from omnix_recs.store.cache.local import LocalCache
from omnix_recs.store.cache.redis import REDIS_KEY_PREFIX, RedisCache


def open_cache(settings: Settings, *, generations: GenerationTable | None = None) -> Cache:
    """The cache the settings ask for: Redis at `settings.redis_url`, else in-process (sharing
    `generations` with sibling workers when given)."""
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            ttl_s=settings.cache_ttl_s,
            timeout_s=settings.redis_timeout_ms / 1000,
            failure_threshold=settings.redis_failure_threshold,
            near_cache_bytes=settings.redis_near_cache_mb << 20,
            near_cache_entries=settings.cache_max_entries,
        )
    return LocalCache(ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries, generations=generations)


__all__ = [
    "REDIS_KEY_PREFIX",
    "Cache",
    "CacheStats",
    "Codec",
    "GenerationTable",
    "LocalCache",
    "RedisCache",
    "open_cache",
]
