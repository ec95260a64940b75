"""Per-client limits counted in Redis, so every worker and host gives a client one budget.

With `OMNIX_REDIS_URL` set, `SharedClientLimiter` counts a client's calls in flight and its call
rate in Redis (one Lua script per call: atomic across processes, and timed by Redis's clock so
hosts with skewed clocks agree). `--workers 2`, or two hosts, then give a client the budget of
one process, not twice it.

Calls in flight are members of a sorted set scored by a lease expiry: a process that dies while
holding calls cannot leak them for longer than `lease_s`. A call running longer than the lease
(a long stream) stops counting then; idle streams are closed long before (`stream_idle_timeout_s`).

Redis trouble never fails a call: on an error the call is counted by this process's own
`ClientLimiter` instead (the per-process limits); `failure_threshold` failures in a row open a
circuit breaker that skips Redis for a while before one trial call probes it again, and the
switch is logged once each way. A lone failure does not switch: under CPU overload a timeout may
be this process's own starvation, and per-process limits would then give each client a budget
per process exactly when the budget matters most.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from omnix_recs.breaker import CircuitBreaker
from omnix_recs.config import DEFAULT_REDIS_FAILURE_THRESHOLD
from omnix_recs.security.fairness import ClientLimiter, ClientLimitError

log = logging.getLogger("omnix.security")

KEY_PREFIX = "omnix:v1:limits"
# How long an in-flight call counts at most (seconds): a crashed holder's calls expire then.
LEASE_S = 300
# After `failure_threshold` Redis failures in a row, calls are counted per process this long
# before Redis is tried again.
RETRY_AFTER_S = 5.0

# KEYS: in-flight set, rate bucket. ARGV: call id, max in flight (0 = none), calls per second
# (0 = none), lease seconds. Returns {0, 0} when counted, {1, retry_ms} past the in-flight
# bound, {2, retry_ms} past the rate. Nothing is counted when the call is refused.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_inflight = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
if max_inflight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= max_inflight then return {1, 1000} end
end
if rate > 0 then
  local capacity = math.max(1, rate)
  local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or capacity
  local at = tonumber(bucket[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then return {2, math.ceil((1 - tokens) / rate * 1000)} end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[2], math.ceil(capacity / rate) + 1)
end
if max_inflight > 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('EXPIRE', KEYS[1], lease)
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Ticket:
    """One counted call: where it was counted, so `release` undoes it in the same place."""

    client: str
    call_id: str | None = None  # its member of the in-flight set in Redis (None: not there)
    local: bool = False  # counted by this process's own limiter instead (Redis unreachable)


class SharedClientLimiter:
    """`ClientLimiter`'s limits over every process sharing one Redis (see the module doc)."""

    def __init__(
        self,
        url: str,
        local: ClientLimiter,
        *,
        timeout_s: float,
        lease_s: int = LEASE_S,
        retry_after_s: float = RETRY_AFTER_S,
        failure_threshold: int = DEFAULT_REDIS_FAILURE_THRESHOLD,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        # Imported here: redis takes a third of a second to import, and only Redis set-ups need it.
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)

        self.local = local
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._lease_s = lease_s
        self._prefix = key_prefix
        self._breaker = CircuitBreaker(failure_threshold=failure_threshold, cool_down_s=retry_after_s)
        self._degraded = False
        self._releases: set[asyncio.Task[None]] = set()

    def keys(self, client: str) -> tuple[str, str]:
        """The client's in-flight set and rate bucket in Redis."""
        return f"{self._prefix}:inflight:{client}", f"{self._prefix}:rate:{client}"

    async def acquire(self, client: str) -> Ticket:
        """Count a call for `client`; ClientLimitError when past its share. Pair with `release`."""
        if self._breaker.allow():
            call_id = os.urandom(12).hex()
            try:
                outcome, retry_ms = await self._acquire(
                    keys=self.keys(client),
                    args=[call_id, self.local.max_inflight, self.local.rate_per_s, self._lease_s],
                )
            except self._errors as error:
                self._failed(error)
            else:
                self._recovered()
                if outcome == 1:
                    raise ClientLimitError(
                        f"too many calls in flight for this client (at most {self.local.max_inflight} at once "
                        "across the service); finish or cancel some, then retry",
                        retry_after_s=int(retry_ms) / 1000,
                    )
                if outcome == 2:
                    raise ClientLimitError(
                        f"too many calls from this client (at most {self.local.rate_per_s:g} per second "
                        f"across the service); retry in {int(retry_ms)} ms",
                        retry_after_s=int(retry_ms) / 1000,
                    )
                return Ticket(client, call_id if self.local.max_inflight else None)
        self.local.acquire(client)
        return Ticket(client, local=True)

    def release(self, ticket: Ticket) -> None:
        """Uncount the call; Redis's part runs in the background (the answer does not wait)."""
        if ticket.local:
            self.local.release(ticket.client)
        if ticket.call_id is None:
            return
        task = asyncio.get_running_loop().create_task(self._release(ticket))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        await self._redis.aclose()

    async def _release(self, ticket: Ticket) -> None:
        inflight, _ = self.keys(ticket.client)
        try:
            await self._redis.zrem(inflight, ticket.call_id)  # type: ignore[arg-type]
        except self._errors as error:
            self._failed(error)  # the lease expires it

    def _failed(self, error: BaseException) -> None:
        if self._breaker.record_failure() and not self._degraded:
            self._degraded = True
            log.warning(
                "shared client limits: Redis is unreachable (%s); counting per process until it answers",
                type(error).__name__,
            )

    def _recovered(self) -> None:
        self._breaker.record_success()
        if self._degraded:
            self._degraded = False
            log.warning("shared client limits: Redis answers again; counting across processes")
