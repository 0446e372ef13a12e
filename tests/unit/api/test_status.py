"""The status page: real numbers, stable element ids, nothing from outside."""

from __future__ import annotations

from typing import Any

from api.status import render_status_page
from streams.lag import Throughput


def snapshot(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "worker": "http://127.0.0.1:6066",
        "uptime_s": 12.0,
        "ready": True,
        "consumed_per_second": 2.5,
        "consumed_by_topic": {"hr.events": 3.0, "fin.commands": 2.0},
        "posted_by_type": {"hr.payroll.processed": 3.0},
        "duplicates_by_type": {},
        "rejected_by_reason": {"reference_unknown": 1.0},
        "dead_letters_by_reason": {"reference_unknown": 1.0},
        "retries_by_dependency": {},
        "integrity_failures": {},
        "lag": [{"topic": "hr.events", "partition": 0, "lag": 1234}],
    }
    return {**base, **overrides}


def test_the_page_shows_the_consumed_total_lag_and_throughput() -> None:
    page = render_status_page(snapshot())

    assert "<b id=consumed-total>5</b>" in page
    assert "<b id=total-lag>1,234</b>" in page
    assert "<b id=throughput>2.5</b>" in page
    assert "<table id=lag>" in page and "reference_unknown" in page


def test_the_page_loads_nothing_from_elsewhere_and_sends_no_referrer() -> None:
    page = render_status_page(snapshot())

    assert "http" not in page.replace("http://127.0.0.1:6066", "").replace("http-equiv", "")
    assert "<meta name=referrer content=no-referrer>" in page


def test_names_on_the_page_are_escaped() -> None:
    page = render_status_page(snapshot(rejected_by_reason={"<script>": 1.0}))

    assert "<script>" not in page and "&lt;script&gt;" in page


def test_throughput_is_the_rate_between_the_last_two_samples() -> None:
    throughput = Throughput()

    throughput.sample(100.0, now_s=10.0)
    assert throughput.per_second == 0.0
    throughput.sample(150.0, now_s=15.0)
    assert throughput.per_second == 10.0
    throughput.sample(150.0, now_s=20.0)
    assert throughput.per_second == 0.0
