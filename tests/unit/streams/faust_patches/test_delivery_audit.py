"""The delivery audit's own logic (its faust wrappers run in the fault suite, on every worker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.faust_patches import delivery_audit

TP0 = TP("t.fin.internal.by-event-id", 0)


def message(offset: int, tp: TP = TP0) -> Any:
    return SimpleNamespace(tp=tp, offset=offset)


@pytest.fixture
def audit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_audit._State, "enabled", True)
    monkeypatch.setattr(delivery_audit._State, "last_processed", {})


@pytest.mark.usefixtures("audit_on")
def test_an_agent_skipping_an_offset_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    for offset in (49, 50, 52):
        delivery_audit.processed(message(offset))
    jumps = [r.getMessage() for r in caplog.records if "AUDIT processing jump" in r.getMessage()]
    assert jumps == ["AUDIT processing jump t.fin.internal.by-event-id[0]: 50 -> 52"]


@pytest.mark.usefixtures("audit_on")
def test_replays_and_other_partitions_are_not_jumps(caplog: pytest.LogCaptureFixture) -> None:
    for offset in (10, 11, 7, 8, 9, 10, 11, 12):  # a seek back re-reads 7..: not a hole
        delivery_audit.processed(message(offset))
    delivery_audit.processed(message(500, TP("other", 1)))  # first sight of a partition
    assert not [r for r in caplog.records if "AUDIT" in r.getMessage()]


def test_when_off_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_audit._State, "last_processed", {})
    taken = message(5)
    delivery_audit.processed(taken)
    assert delivery_audit._State.last_processed == {}
    assert not hasattr(taken, "_fin_audit_processed")


def test_install_when_off_changes_nothing() -> None:
    app = SimpleNamespace()  # no signal to connect to: install must not touch it
    delivery_audit.install(app, enabled=False)
    assert delivery_audit._State.enabled is False


def test_the_delivery_log_names_jumps_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    delivered: list[int] = []

    async def callback(m: Any) -> None:
        delivered.append(m.offset)

    consumer = SimpleNamespace(_read_offset={TP0: 3}, _committed_offset={TP0: 2})
    deliver = delivery_audit._audited_callback(consumer, callback)

    async def run() -> None:
        for offset in (2, 3, 4, 2):
            await deliver(message(offset))

    asyncio.run(run())
    assert delivered == [2, 3, 4, 2]
    steps = [r.getMessage() for r in caplog.records if "AUDIT deliver" in r.getMessage()]
    assert len(steps) == 2  # the first record, and the step back to 2
    assert "None -> 2" in steps[0] and "4 -> 2" in steps[1]
