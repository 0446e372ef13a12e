"""Long work on the event loop in short steps: ``LoopShare.turn()`` hands the loop back once a
few milliseconds have passed since it last did, so the journal entries' path (and faust's
heartbeats) run in between. Used by the tables agent's batches and by the ledger chains'
verification behind ``GET /ledger/integrity``."""

from __future__ import annotations

import asyncio
import time

DEFAULT_EVERY_S = 0.005


class LoopShare:
    """Hands the event loop back (``turn``) once ``every_s`` has passed since it last did."""

    def __init__(self, every_s: float = DEFAULT_EVERY_S) -> None:
        self._every = every_s
        self._since = time.perf_counter()

    async def turn(self) -> None:
        if time.perf_counter() - self._since > self._every:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
