"""Writer schemas by id for the decoder, fetched from the registry off the event loop.

The decoder calls ``lookup`` synchronously on its hot path; it must never block the loop on
HTTP. So the agents ``await prefetch(value)`` first: a cache hit costs a dict lookup; a miss asks
the registry in a thread, retrying transient failures with backoff. A 404 is remembered for a
while so a burst of records with an unknown id does not become a burst of registry calls.

Right after an outage a registry can answer before it has loaded everything (Apicurio with its
KafkaSQL storage replays its journal topic after a restart and answers 404 for ids it has not
read yet; seen in the fault suite). So within ``RECOVERY_GRACE_S`` of the last failure a 404 is
treated like an outage: retried with backoff, never dead-lettered. After that a 404 is final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from errors import RegistryUnavailableError
from schemas.registry import SchemaNotFound
from schemas.wire import schema_id_of
from streams.metrics import Metrics
from streams.resilience import Backoff, BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

NOT_FOUND_REMEMBER_S = 30.0
RECOVERY_GRACE_S = 60.0
DEPENDENCY = "schema_registry"


class SchemaNotCachedError(RegistryUnavailableError):
    """The decoder asked for a schema nobody prefetched: treat like an outage (retry)."""


class SchemaCache:
    def __init__(
        self,
        fetch: Callable[[int], str],
        metrics: Metrics,
        *,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._fetch = fetch
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        gauge = metrics.breaker_state.labels(DEPENDENCY)
        gauge.set(int(BreakerState.CLOSED))

        def on_change(state: BreakerState) -> None:
            gauge.set(int(state))
            log.warning("circuit breaker for the schema registry is now %s", state.name)

        self.breaker = breaker or CircuitBreaker(DEPENDENCY, time.monotonic, on_change=on_change)
        self._texts: dict[int, str] = {}
        self._not_found_until: dict[int, float] = {}
        self._last_failure_at: float | None = None
        self._clock = time.monotonic

    def _recovering(self) -> bool:
        """Did the registry fail recently (so a 404 may mean "not loaded yet")?"""
        return (
            self._last_failure_at is not None
            and self._clock() - self._last_failure_at < RECOVERY_GRACE_S
        )

    def lookup(self, schema_id: int) -> str:
        text = self._texts.get(schema_id)
        if text is not None:
            return text
        if self._not_found_until.get(schema_id, 0.0) > time.monotonic():
            raise SchemaNotFound(f"schema id {schema_id} is not registered")
        raise SchemaNotCachedError(f"schema id {schema_id} was not prefetched")

    def is_known(self, schema_id: int) -> bool:
        return schema_id in self._texts

    async def prefetch(self, value: bytes | None) -> None:
        """Make sure the writer schema of ``value`` is cached; wait out registry outages.

        While the registry fails, the calling agent waits here: its record is not acknowledged,
        so no offset past it is committed and nothing is dead-lettered for an outage.
        """
        schema_id = schema_id_of(value)
        if schema_id is None:
            return  # the decoder names this wire_format_invalid
        if schema_id in self._texts or self._not_found_until.get(schema_id, 0.0) > time.monotonic():
            return
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            if not self.breaker.allow():
                await asyncio.sleep(self.breaker.wait_s())
                continue
            try:
                text = await loop.run_in_executor(None, self._fetch, schema_id)
            except SchemaNotFound:
                self.breaker.record_success()  # the registry answered
                if self._recovering():
                    attempt += 1
                    delay = self._backoff.delay_s(attempt)
                    self._metrics.retries.labels(DEPENDENCY).inc()
                    log.warning(
                        "registry answered 'not found' for schema id %d shortly after an outage "
                        "(it may still be loading); retry %d in %.2fs",
                        schema_id,
                        attempt,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                log.warning("schema id %d is unknown to the registry", schema_id)
                self._not_found_until[schema_id] = time.monotonic() + NOT_FOUND_REMEMBER_S
                return
            except RegistryUnavailableError as exc:
                attempt += 1
                self._last_failure_at = self._clock()
                self.breaker.record_failure()
                delay = self._backoff.delay_s(attempt)
                self._metrics.retries.labels(DEPENDENCY).inc()
                log.warning(
                    "registry unavailable fetching schema id %d (%s); retry %d in %.2fs",
                    schema_id,
                    exc,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self.breaker.record_success()
            self._texts[schema_id] = text
            return
