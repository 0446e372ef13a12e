"""The retry schedule and the circuit breaker, driven by a fake clock."""

from __future__ import annotations

from streams.resilience import Backoff, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_from_the_initial_delay_and_stops_at_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, maximum_s=4.0)
    ceilings = [backoff.delay_s(attempt, rand=lambda: 1.0) for attempt in range(1, 7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_stays_between_zero_and_the_ceiling() -> None:
    backoff = Backoff(initial_s=1.0, maximum_s=8.0)
    assert backoff.delay_s(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay_s(3, rand=lambda: 0.25) == 1.0


def test_breaker_stays_closed_until_the_failure_threshold() -> None:
    breaker = CircuitBreaker("registry", FakeClock(), failures_to_open=3)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("registry", FakeClock(), failures_to_open=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_lets_one_probe_through_after_the_open_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("registry", clock, failures_to_open=1, open_s=5.0)
    breaker.record_failure()
    clock.now += 4.0
    assert not breaker.allow()
    assert breaker.wait_s() == 1.0
    clock.now += 1.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_failed_probe_opens_the_breaker_again_and_a_good_one_closes_it() -> None:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        "registry", clock, failures_to_open=1, open_s=5.0, on_change=changes.append
    )
    breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state.name == "CLOSED"  # (mypy narrows the attribute to OPEN)
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
