"""Keep CPython's cyclic garbage collector off what lives as long as the worker.

A worker holds a large, long-lived heap (faust, aiokafka, the schemas, the chart, the app's
services), and every full collection walks all of it: ~80-130 ms per ``gc.collect()`` on the
benchmark machine, one per table at every rebalance (faust's RocksDB store collects on each
partition revoke) and whenever the collector's own thresholds decide so. ``gc.freeze()`` moves
what exists at that moment into a permanent generation that collections no longer walk; objects
made later are collected as before, so cycles among records, batches and rows still go. The
worker freezes twice: before faust starts (modules, app, configuration) and once the tables
have first recovered (consumer, stores, services). ``FIN_GC_YOUNG_THRESHOLD`` sets how many
allocations start a young collection (CPython's default 700); 0 leaves the collector as
CPython configures it and freezes nothing.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_long_lived(young_threshold: int, *, moment: str) -> None:
    """Collect once, freeze what survives, and set the young generation's threshold."""
    if young_threshold == 0:
        return
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    log.info(
        "garbage collector: %d objects frozen %s in %.0f ms; young threshold %d",
        gc.get_freeze_count(),
        moment,
        (time.perf_counter() - started) * 1000,
        young_threshold,
    )
