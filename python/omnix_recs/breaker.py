"""A circuit breaker: stop calling a dependency that keeps failing, try again after a pause.

closed → (N consecutive failures) → open → (cool-down elapsed) → half-open: one trial call is
let through; its success closes the circuit, its failure opens it for another cool-down.
While open, callers skip the dependency at once instead of spending their deadline on it.
Callers make the call themselves (`allow`, then `record_success` or `record_failure`), so no
lock is held while a call is in flight and concurrent callers never queue behind each other.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, *, failure_threshold: int = 5, cool_down_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1 or cool_down_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cool_down_s >= 0")
        self._threshold = failure_threshold
        self._cool_down_s = cool_down_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at < self._cool_down_s:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial at a time may."""
        with self._lock:
            state = self._state()
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> bool:
        """Count a failed call; True when the circuit is open after it (callers that log an
        outage log it then, not on a failure the threshold tolerates)."""
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self._threshold:
                self._opened_at = self._clock()
            self._trial_running = False
            return self._opened_at is not None
