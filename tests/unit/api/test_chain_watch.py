"""The ledger chains' verification behind GET /ledger/integrity (``api.integrity.ChainWatch``):
many entries are verified in short steps of the event loop, each exactly once, even when a
request is cancelled halfway or two ask at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

from api.integrity import ChainWatch

STEP_S = 0.001  # each fake entry takes 1 ms to verify


class _Index:
    behind = 0

    def __init__(self, count: int) -> None:
        self._new = [(b"entry-%d" % n, f"entry {n}") for n in range(count)]

    def take_new_entries(self) -> list[tuple[bytes, str]]:
        taken, self._new = self._new, []
        return taken


class _Decoder:
    def __init__(self) -> None:
        self.decoded: list[bytes] = []
        self.order: list[str] = []  # "d" per entry verified, "t" per turn of another task

    def decode(self, topic: str, value: bytes) -> Any:
        time.sleep(STEP_S)
        self.decoded.append(value)
        self.order.append("d")
        return SimpleNamespace(record={})  # an unchained entry: counted, nothing to link


def _watch(count: int) -> tuple[ChainWatch, _Decoder]:
    decoder = _Decoder()

    async def prefetch_schema(value: bytes) -> None:
        return None

    hub: Any = SimpleNamespace(
        entries_index=_Index(count), decoder=decoder, prefetch_schema=prefetch_schema
    )
    return ChainWatch(hub), decoder


def test_a_long_verification_hands_the_event_loop_back_every_few_ms() -> None:
    watch, decoder = _watch(100)  # at least 100 ms of work

    async def ticker() -> None:
        while True:
            decoder.order.append("t")
            await asyncio.sleep(0)

    async def main() -> dict[str, Any] | None:
        running = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        try:
            return await watch.status()
        finally:
            running.cancel()

    report = asyncio.run(main())
    assert report is not None and report["unchained_entries"] == 100
    assert len(decoder.decoded) == 100
    # Each entry takes at least 1 ms and the loop is handed back once 5 ms have passed, so at
    # most 6 entries are verified in one step, however slow the machine (no timing asserted).
    steps = [run for run in "".join(decoder.order).split("t") if run]
    assert len(steps) >= 100 // 6, steps
    assert max(len(run) for run in steps) <= 6, steps


def test_a_request_cancelled_halfway_leaves_the_rest_to_the_next_and_none_twice() -> None:
    watch, decoder = _watch(60)

    async def main() -> dict[str, Any] | None:
        first = asyncio.ensure_future(watch.status())
        await asyncio.sleep(0.02)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert 0 < len(decoder.decoded) < 60, "the cancel did not strike halfway"
        return await watch.status()

    report = asyncio.run(main())
    assert report is not None and report["unchained_entries"] == 60
    assert sorted(decoder.decoded) == sorted(b"entry-%d" % n for n in range(60))


def test_two_requests_at_once_verify_each_entry_once() -> None:
    watch, decoder = _watch(40)

    async def main() -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(watch.status(), watch.status()))

    first, second = asyncio.run(main())
    assert first is not None and second is not None
    assert first["unchained_entries"] == second["unchained_entries"] == 40
    assert len(decoder.decoded) == 40
