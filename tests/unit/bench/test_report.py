"""The benchmark report's write-amplification line: records per input event, from the hub's
last valid drain run only."""

from __future__ import annotations

from typing import Any

from bench.report import write_amplification


def drain(contestant: str, *, valid: bool, written: dict[str, int] | None) -> dict[str, Any]:
    details: dict[str, Any] = {"label": "x"}
    if written is not None:
        details["records_written"] = written
    return {"contestant": contestant, "valid": valid, "events": 100, "details": details}


def test_records_per_event_come_from_the_last_valid_hub_run() -> None:
    data = {
        "drain": [
            drain("hub", valid=True, written={"fin.ledger.postings": 50, "changelogs": 500}),
            drain("baseline", valid=True, written={"fin.ledger.postings": 999}),
            drain("hub", valid=True, written={"fin.ledger.postings": 100, "changelogs": 600}),
            drain("hub", valid=False, written={"fin.ledger.postings": 1, "changelogs": 1}),
        ]
    }
    line = write_amplification(data)
    assert line is not None
    assert "**7.00**" in line
    assert "changelogs 6.00" in line and "fin.ledger.postings 1.00" in line


def test_no_line_without_a_valid_hub_run_that_counted() -> None:
    assert write_amplification({"drain": [drain("hub", valid=True, written=None)]}) is None
    assert write_amplification({"drain": [drain("hub", valid=False, written={"a": 1})]}) is None
