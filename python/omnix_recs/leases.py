"""Admin work one at a time across every process sharing the store: a lease held in the store.

RetrainModel and BatchAnalyze are refused while another process (a sibling worker, or another
host on the same store) runs one. The store is the one thing all of them share whatever the
deployment (Redis is optional), and it already makes writes atomic: the lease is one row taken
by a conditional write (`Store.acquire_lease`: an SQLite upsert with a WHERE, a DynamoDB
conditional PutItem). The holder renews it every third of its lifetime while the work runs, so
a crashed holder's lease lapses within `LEASE_TTL_S` and the work can be started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from omnix_recs.errors import OmnixError, ResourceExhaustedError
from omnix_recs.store.base import Store

log = logging.getLogger("omnix.leases")

LEASE_TTL_S = 60.0  # a crashed holder blocks the work at most this long
RETRAIN_LEASE = "admin:retrain"
BATCH_ANALYZE_LEASE = "admin:batch-analyze"


def _now() -> datetime:
    return datetime.now(UTC)


def new_holder() -> str:
    """Who holds a lease: this host and process, and a nonce (one process may hold several)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


@contextlib.asynccontextmanager
async def held_lease(
    store: Store,
    name: str,
    refusal: str,
    *,
    ttl_s: float = LEASE_TTL_S,
    clock: Callable[[], datetime] = _now,
) -> AsyncIterator[None]:
    """Hold the lease `name` for the block, renewed while it runs; `ResourceExhaustedError`
    with `refusal` when another holder has it."""
    holder = new_holder()
    ttl = timedelta(seconds=ttl_s)
    now = clock()
    if not await asyncio.to_thread(store.acquire_lease, name, holder, now, now + ttl):
        raise ResourceExhaustedError(refusal)
    renewing = asyncio.create_task(_renew(store, name, holder, ttl, clock))
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        # Shielded: a caller that goes away must not leave the lease to lapse on its own.
        with contextlib.suppress(asyncio.CancelledError, OmnixError, OSError):
            await asyncio.shield(asyncio.to_thread(store.release_lease, name, holder))


async def _renew(store: Store, name: str, holder: str, ttl: timedelta, clock: Callable[[], datetime]) -> None:
    while True:
        await asyncio.sleep(ttl.total_seconds() / 3)
        now = clock()
        try:
            kept = await asyncio.to_thread(store.acquire_lease, name, holder, now, now + ttl)
        except (OmnixError, OSError) as error:  # the store will be tried again at the next renewal
            log.warning("could not renew the %s lease (%s); retrying", name, error)
            continue
        if not kept:
            log.error("the %s lease lapsed and another process took it: the work may now run twice", name)
            return
