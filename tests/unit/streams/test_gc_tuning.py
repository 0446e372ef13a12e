from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.gc_tuning import freeze_long_lived


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector_restored")
def test_what_exists_is_frozen_and_the_young_threshold_set() -> None:
    freeze_long_lived(12_345, moment="in a test")
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 12_345
    # What is made after the freeze is still collected: a cycle made now goes away.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.mark.usefixtures("collector_restored")
def test_zero_leaves_the_collector_as_cpython_set_it() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    freeze_long_lived(0, moment="in a test")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
