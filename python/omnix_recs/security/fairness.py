"""Per-client limits: one client may not take the capacity every other caller needs.

A client is the token's subject when the call is authenticated, else the peer's IP address.
Each client may hold `max_inflight` calls at once in this process (streams count for as long
as they are open) and, optionally, start `rate_per_s` calls per second (a token bucket with a
burst of one second's worth). Past either, the call answers RESOURCE_EXHAUSTED with a
`google.rpc.RetryInfo` saying when to try again. Unauthenticated callers on loopback (this
machine: the health prober, the REST gateway, load generators) are not limited: the process's
own `max_inflight` still bounds them. Health and reflection are never limited.

The limits are per process: with N workers a client may hold N times as much. Everything here
runs on the event loop, so no locks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from omnix_recs.errors import OmnixError, ResourceExhaustedError

# Clients remembered at most (idle ones are forgotten first).
MAX_CLIENTS = 100_000


class ClientLimitError(ResourceExhaustedError):
    """A client went past its share; `retry_after_s` says when a retry may succeed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IdleStreamError(OmnixError):
    """A client stream sent nothing for too long (gRPC DEADLINE_EXCEEDED)."""


@dataclass(slots=True)
class _Client:
    inflight: int = 0
    tokens: float = 0.0
    refilled_at: float = 0.0


@dataclass(eq=False)
class ClientLimiter:
    max_inflight: int  # 0 = no per-client bound on calls in flight
    rate_per_s: float = 0.0  # 0 = no rate limit
    _clients: dict[str, _Client] = field(default_factory=dict, repr=False)

    def acquire(self, client: str) -> None:
        """Count a call for `client`; ClientLimitError when past its share. Pair with `release`."""
        state = self._clients.get(client)
        if state is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._forget_idle()
            state = self._clients[client] = _Client(tokens=max(1.0, self.rate_per_s), refilled_at=time.monotonic())
        if self.max_inflight and state.inflight >= self.max_inflight:
            raise ClientLimitError(
                f"too many calls in flight for this client (at most {self.max_inflight} at once); "
                "finish or cancel some, then retry",
                retry_after_s=1.0,
            )
        if self.rate_per_s:
            now = time.monotonic()
            capacity = max(1.0, self.rate_per_s)
            state.tokens = min(capacity, state.tokens + (now - state.refilled_at) * self.rate_per_s)
            state.refilled_at = now
            if state.tokens < 1.0:
                wait = (1.0 - state.tokens) / self.rate_per_s
                raise ClientLimitError(
                    f"too many calls from this client (at most {self.rate_per_s:g} per second); "
                    f"retry in {math.ceil(wait * 1000)} ms",
                    retry_after_s=wait,
                )
            state.tokens -= 1.0
        state.inflight += 1

    def release(self, client: str) -> None:
        state = self._clients.get(client)
        if state is not None and state.inflight > 0:
            state.inflight -= 1

    def inflight(self, client: str) -> int:
        state = self._clients.get(client)
        return state.inflight if state else 0

    def _forget_idle(self) -> None:
        for key in [k for k, s in self._clients.items() if s.inflight == 0]:
            del self._clients[key]


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string ("ipv4:10.0.0.7:51234" -> "10.0.0.7")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def is_loopback_peer(peer: str) -> bool:
    host = peer_host(peer)
    return host.startswith("127.") or host in ("::1", "0:0:0:0:0:0:0:1") or peer.startswith("unix:")
