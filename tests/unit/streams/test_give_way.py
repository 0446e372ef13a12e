"""The tables agent gives way to the journal entries' path (FIN_TABLES_GIVE_WAY_MS)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from errors import ConfigurationError
from settings import Settings
from streams import inflight
from streams.inflight import BatchDelivery, _after_giving_way, give_way


def test_a_batch_goes_at_once_when_nothing_waits() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await give_way(lambda: False, 1.0)
        return loop.time() - began

    assert asyncio.run(run()) < 0.01


def test_a_batch_waits_while_the_entries_path_has_records_and_goes_once_it_has_none() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        busy_until = loop.time() + 0.05
        began = loop.time()
        await give_way(lambda: loop.time() < busy_until, 1.0)
        return loop.time() - began

    waited = asyncio.run(run())
    assert 0.05 <= waited < 0.5


def test_a_batch_waits_no_longer_than_the_setting_however_busy_the_path() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await give_way(lambda: True, 0.05)
        return loop.time() - began

    waited = asyncio.run(run())
    assert 0.05 <= waited < 0.5


def test_without_the_setting_nothing_is_waited_for() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await give_way(lambda: True, 0.0)
        return loop.time() - began

    assert asyncio.run(run()) < 0.01


def test_a_batch_taken_is_processed_even_if_the_agent_is_cancelled_while_it_gives_way() -> None:
    processed: list[list[int]] = []

    async def process(events: Any) -> BatchDelivery:
        processed.append(list(events))
        return None  # type: ignore[return-value]  # run_batch only hands it back

    async def run() -> None:
        loop = asyncio.get_running_loop()
        busy_until = loop.time() + 0.1

        def work() -> Any:
            events: Any = [1, 2]  # stand-ins: process only records what it was given
            return _after_giving_way(process, events, lambda: loop.time() < busy_until, 1.0)

        agent = asyncio.ensure_future(inflight.run_batch(work, "tables"))
        await asyncio.sleep(0.02)
        agent.cancel()  # a stop or a rebalance while the batch gives way
        with pytest.raises(asyncio.CancelledError):
            await agent

    asyncio.run(run())
    assert processed == [[1, 2]]


def test_the_setting_is_read_in_milliseconds_and_bounded() -> None:
    assert Settings.from_env({}).tables_give_way_s == 0.2
    assert Settings.from_env({"FIN_TABLES_GIVE_WAY_MS": "0"}).tables_give_way_s == 0.0
    assert Settings.from_env({"FIN_TABLES_GIVE_WAY_MS": "200"}).tables_give_way_s == 0.2
    with pytest.raises(ConfigurationError, match="FIN_TABLES_GIVE_WAY_MS"):
        Settings.from_env({"FIN_TABLES_GIVE_WAY_MS": "9000"})


def test_the_entries_path_is_busy_while_handed_records_wait_to_be_posted() -> None:
    from types import SimpleNamespace

    from streams.batched import BatchedRuntime

    def busy(handoff: Any) -> bool:
        return BatchedRuntime.entries_busy(SimpleNamespace(handoff=handoff))  # type: ignore[arg-type]

    assert busy([object()]) is True
    assert busy([]) is False
    assert busy(None) is False  # no hand-over (FIN_LOCAL_HANDOFF=0): the tables never wait
