"""A tables batch hands the event loop back while it works (streams/delta_tables.py
``YIELD_EVERY_S``): gathered over FIN_TABLES_LINGER_MS, a batch is tens of ms of work that
must not hold the journal entries' path behind it as one step of the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams import delta_tables
from streams.metrics import Metrics
from tables.store import pack_key


def deltas_record(offset: int) -> Any:
    """A packed deltas record with no rows: the batch's loop runs, nothing is applied."""
    message = SimpleNamespace(
        topic="t.deltas",
        partition=0,
        offset=offset,
        key=pack_key(),
        value=orjson.dumps({"rows": []}),
        timestamp=None,
        headers=[],
    )
    return SimpleNamespace(message=message)


def tables_batch(monkeypatch: pytest.MonkeyPatch, order: list[str]) -> Any:
    """The agent's batch function, taken from the call it makes to ``run_agent``."""
    taken: dict[str, Any] = {}

    async def capture(stream: Any, what: str, process: Any, *args: Any, **kwargs: Any) -> None:
        taken["process"] = process

    async def seal(box: Any, *written: Any) -> Any:
        order.append("sealed")
        return SimpleNamespace(after=None)

    monkeypatch.setattr(delta_tables, "run_agent", capture)
    agent = delta_tables.make_tables_agent(
        {"t.deltas": "budgets"},
        tables={"budgets": object()},  # type: ignore[dict-item]
        encoder=None,  # type: ignore[arg-type]
        chart=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        outbox=object,  # type: ignore[arg-type]
        seal=seal,
        batch_max=500,
        linger=0.25,
        gap=0.25,
    )
    asyncio.run(agent(None))  # type: ignore[arg-type]
    return taken["process"]


def run_beside(process: Any, events: Sequence[Any], order: list[str]) -> None:
    async def other_agent() -> None:
        order.append("other ran")

    async def main() -> None:
        batch = asyncio.ensure_future(process(events))
        other = asyncio.ensure_future(other_agent())
        await asyncio.gather(batch, other)

    asyncio.run(main())


def test_a_long_batch_lets_other_tasks_run_before_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    process = tables_batch(monkeypatch, order)
    monkeypatch.setattr(delta_tables, "YIELD_EVERY_S", -1.0)  # every record is "too long"
    run_beside(process, [deltas_record(n) for n in range(3)], order)
    assert order == ["other ran", "sealed"]


def test_a_short_batch_is_one_step_of_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    process = tables_batch(monkeypatch, order)
    monkeypatch.setattr(delta_tables, "YIELD_EVERY_S", 60.0)
    run_beside(process, [deltas_record(n) for n in range(3)], order)
    assert order == ["sealed", "other ran"]
