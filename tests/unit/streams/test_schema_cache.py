"""The schema cache: outages are waited out, and so is a registry still loading after one."""

from __future__ import annotations

import asyncio
import struct

import pytest

from errors import RegistryUnavailableError
from schemas.registry import SchemaNotFound
from streams import schema_cache
from streams.metrics import Metrics
from streams.resilience import Backoff
from streams.schema_cache import SchemaCache

NO_WAIT = Backoff(initial_s=0.0, maximum_s=0.0)


def wire(schema_id: int) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + b"\x02"


class ScriptedRegistry:
    """Answers fetches from a script: an exception to raise or the schema text to return."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, schema_id: int) -> str:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_an_outage_then_a_404_from_the_recovering_registry_is_retried_until_it_answers() -> None:
    registry = ScriptedRegistry(
        RegistryUnavailableError("connection refused"),
        SchemaNotFound("40403"),  # back up, journal not read yet
        SchemaNotFound("40403"),
        '"string"',
    )
    metrics = Metrics()
    cache = SchemaCache(registry, metrics, backoff=NO_WAIT)
    asyncio.run(cache.prefetch(wire(29)))
    assert cache.lookup(29) == '"string"'
    assert registry.calls == 4
    assert metrics.retries.labels("schema_registry")._value.get() == 3


def test_a_404_long_after_any_outage_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ScriptedRegistry(RegistryUnavailableError("down"), '"string"', SchemaNotFound("x"))
    cache = SchemaCache(registry, Metrics(), backoff=NO_WAIT)
    asyncio.run(cache.prefetch(wire(1)))
    now = [0.0]
    cache._clock = lambda: now[0]
    cache._last_failure_at = 0.0
    now[0] = schema_cache.RECOVERY_GRACE_S + 1
    asyncio.run(cache.prefetch(wire(77)))
    with pytest.raises(SchemaNotFound):
        cache.lookup(77)
    assert registry.calls == 3


def test_a_404_with_no_outage_seen_is_final_at_once() -> None:
    registry = ScriptedRegistry(SchemaNotFound("x"))
    cache = SchemaCache(registry, Metrics(), backoff=NO_WAIT)
    asyncio.run(cache.prefetch(wire(2147483632)))
    with pytest.raises(SchemaNotFound):
        cache.lookup(2147483632)
    assert registry.calls == 1
