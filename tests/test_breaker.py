"""The circuit breaker's state machine, on a hand-driven clock."""

from __future__ import annotations

import pytest

from omnix_recs.breaker import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_consecutive_failures_only(clock):
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # a success in between resets the count
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()


def test_record_failure_says_whether_the_circuit_is_open(clock):
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=10, clock=clock)
    assert [breaker.record_failure(), breaker.record_failure()] == [False, True]
    clock.now = 10.0
    assert breaker.allow()
    assert breaker.record_failure()  # a failed trial opens it again at once


def test_half_open_lets_one_trial_through(clock):
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=10, clock=clock)
    breaker.record_failure()
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # the trial is still running


@pytest.mark.parametrize(("trial_succeeds", "state"), [(True, CircuitState.CLOSED), (False, CircuitState.OPEN)])
def test_the_trial_decides(trial_succeeds, state, clock):
    breaker = CircuitBreaker(failure_threshold=5, cool_down_s=10, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now = 10.0
    assert breaker.allow()
    breaker.record_success() if trial_succeeds else breaker.record_failure()
    assert breaker.state is state
    assert breaker.allow() is trial_succeeds  # a failed trial opens it for another cool-down


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, -1.0)])
def test_rejects_nonsense_settings(threshold, cool_down):
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, cool_down_s=cool_down)
