"""Retry schedule and circuit breaker for dependencies that fail transiently (the registry).

Pure and clock-injected, so tests drive them without sleeping. A transient failure is never a
rejection: the record waits (its offset is not committed) while the breaker keeps the worker from
hammering a dependency that is down, probing it now and then until it answers again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class BreakerState(IntEnum):
    # Values are what the fin_circuit_breaker_state gauge shows.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped: attempt 1 waits up to initial_s, then x2."""

    initial_s: float = 0.2
    maximum_s: float = 10.0

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        assert attempt >= 1
        ceiling = min(self.maximum_s, self.initial_s * 2.0 ** (attempt - 1))
        return ceiling * rand()


@dataclass
class CircuitBreaker:
    """Opens after ``failures_to_open`` consecutive failures; after ``open_s`` lets one probe
    through (half-open); a successful probe closes it, a failed one opens it again."""

    name: str
    clock: Callable[[], float]
    failures_to_open: int = 5
    open_s: float = 5.0
    on_change: Callable[[BreakerState], None] | None = None
    state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    consecutive_failures: int = field(default=0, init=False)
    opened_at: float = field(default=0.0, init=False)

    def allow(self) -> bool:
        """May a call go through now? In half-open only the probe does."""
        if self.state is BreakerState.OPEN and self.clock() - self.opened_at >= self.open_s:
            self._become(BreakerState.HALF_OPEN)
            return True
        return self.state is not BreakerState.OPEN

    def wait_s(self) -> float:
        """How long until the next probe may go (0 when calls are allowed)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.open_s - (self.clock() - self.opened_at))

    def record_success(self) -> None:
        self.consecutive_failures = 0
        if self.state is not BreakerState.CLOSED:
            self._become(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.consecutive_failures >= self.failures_to_open
        ):
            self.opened_at = self.clock()
            self._become(BreakerState.OPEN)

    def _become(self, state: BreakerState) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)
