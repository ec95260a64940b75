"""What this gateway process has served: calls, errors and latency per RPC, and per minute.

The console's overview draws from it. It is per process and in memory (recent calls only), so
it shows the REST side as this gateway saw it, not the gRPC server's own totals.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

# Latencies kept per RPC for percentiles, and minutes kept for the traffic chart.
LATENCY_SAMPLES = 2_000
MINUTES_KEPT = 60


@dataclass(slots=True)
class RpcTraffic:
    calls: int = 0
    errors: int = 0  # HTTP status >= 500, or 4xx answered by the server (not the gateway's own 404s)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Minute:
    start: float  # epoch seconds
    calls: int
    errors: int


class TrafficStats:
    def __init__(self) -> None:
        self.by_rpc: dict[str, RpcTraffic] = {}
        self._minutes: deque[list[float]] = deque(maxlen=MINUTES_KEPT)  # [start, calls, errors]
        self.started_at = time.time()

    def record(self, rpc: str, http_status: int, seconds: float) -> None:
        traffic = self.by_rpc.get(rpc)
        if traffic is None:
            traffic = self.by_rpc[rpc] = RpcTraffic()
        failed = http_status >= 400
        traffic.calls += 1
        traffic.errors += failed
        traffic.statuses[http_status] += 1
        traffic.latencies_ms.append(seconds * 1000.0)
        minute = float(int(time.time() // 60) * 60)
        if not self._minutes or self._minutes[-1][0] != minute:
            self._minutes.append([minute, 0.0, 0.0])
        self._minutes[-1][1] += 1
        self._minutes[-1][2] += failed

    def minutes(self) -> list[Minute]:
        """The last `MINUTES_KEPT` minutes up to now, with zero for minutes without calls."""
        now = int(time.time() // 60) * 60
        counts = {int(m[0]): m for m in self._minutes}
        result = []
        for i in range(MINUTES_KEPT - 1, -1, -1):
            start = now - 60 * i
            row = counts.get(start)
            result.append(Minute(start, int(row[1]) if row else 0, int(row[2]) if row else 0))
        return result

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_rpc.values())

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.by_rpc.values())
