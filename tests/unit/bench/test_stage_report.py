"""The benchmark's issue-13 additions to its report: the runtime in the labels, the two-worker
ratio, and the per-stage table read from the hub's /metrics and the baseline's own timings."""

from __future__ import annotations

from typing import Any

import pytest

from bench.context import Context
from bench.measure import DrainResult
from bench.report import markdown, ratio, stage_table, summarise_drain, summary_lines
from bench.scrape import merge_metrics, parse_metrics, stage_us_per_event
from settings import Settings

METRICS = """\
# HELP fin_events_consumed_total Records consumed.
# TYPE fin_events_consumed_total counter
fin_events_consumed_total{topic="crm.events"} 60.0
fin_events_consumed_total{topic="fin.commands"} 40.0
# HELP fin_processing_seconds Time inside the worker per record and stage.
# TYPE fin_processing_seconds histogram
fin_processing_seconds_bucket{le="0.001",stage="ingest"} 100.0
fin_processing_seconds_bucket{le="+Inf",stage="ingest"} 100.0
fin_processing_seconds_count{stage="ingest"} 100.0
fin_processing_seconds_sum{stage="ingest"} 0.02
fin_processing_seconds_bucket{le="+Inf",stage="table_periods"} 7.0
fin_processing_seconds_count{stage="table_periods"} 7.0
fin_processing_seconds_sum{stage="table_periods"} 0.0005
fin_processing_seconds_bucket{le="+Inf",stage="posting"} 100.0
fin_processing_seconds_count{stage="posting"} 100.0
fin_processing_seconds_sum{stage="posting"} 0.03
"""


def test_stage_time_per_input_event_summed_over_workers() -> None:
    one = parse_metrics(METRICS)
    assert one.counters["fin_events_consumed_total"] == 100
    assert one.stage_records == {"ingest": 100, "table_periods": 7, "posting": 100}
    both = merge_metrics([one, one])
    assert both.counters["fin_events_consumed_total"] == 200
    # 2 x 0.02 s over 200 input events = 200 µs; ingest and posting first, then the tables.
    assert stage_us_per_event(both, 200) == {
        "ingest": 200.0,
        "posting": 300.0,
        "table_periods": 5.0,
    }


def run(contestant: str, seconds: float, stages: dict[str, float], *, valid: bool = True) -> Any:
    return DrainResult(
        contestant, 1000, seconds, 1.0, 1024, valid, details={"stage_us_per_event": stages}
    )


def data(**config: Any) -> dict[str, Any]:
    hub = summarise_drain(
        [run("hub", 2.0, {"ingest": 100.0, "posting": 50.0}), run("hub", 4.0, {"ingest": 300.0})]
    )
    hub2 = summarise_drain([run("hub2", 1.0, {"ingest": 120.0, "posting": 60.0})])
    baseline = summarise_drain(
        [
            run("baseline", 0.5, {"decode": 10.0, "validate": 5.0, "send": 1.0}),
            run("baseline", 0.1, {"decode": 99.0}, valid=False),
        ]
    )
    summary = {
        "hub": hub,
        "hub2": hub2,
        "baseline": baseline,
        "hub_to_baseline": ratio(hub, baseline),
        "two_workers_to_one": ratio(hub2, hub),
    }
    return {
        "command": "python -m bench",
        "started_at": "now",
        "duration_s": 1.0,
        "machine": {
            "cpus": 2,
            "cpu_model": "x",
            "memory_gb": 1.0,
            "python": "3.11",
            "kafka": "k",
            "registry": "r",
            "loadavg_start": "1 1 1",
            "loadavg_end": "2 2 2",
        },
        "config": {
            "events": 1000,
            "seed": 7,
            "mean_value_bytes": 100.0,
            "partitions": 4,
            "runs": 2,
            "runtime": "batched",
            "two_workers": True,
            **config,
        },
        "summary": summary,
        "drain": [],
    }


def test_medians_of_valid_runs_and_the_two_ratios() -> None:
    found = data()
    summary = found["summary"]
    # hub: 500 and 250 events/s -> median 375; only valid baseline runs count (2,000/s).
    assert summary["hub"]["stage_us_per_event"] == {"ingest": 200.0, "posting": 50.0}
    assert summary["baseline"]["stage_us_per_event"] == {
        "decode": 10.0,
        "validate": 5.0,
        "send": 1.0,
    }
    assert summary["hub_to_baseline"] == pytest.approx(375 / 2000)
    assert summary["two_workers_to_one"] == pytest.approx(1000 / 375, rel=1e-3)
    lines = summary_lines(found)
    assert "**0.188**" in lines[0]
    assert "1,000 events/s" in lines[1] and "**2.67**" in lines[1] and "1.5" in lines[1]


def test_the_stage_table_puts_hub_and_baseline_side_by_side() -> None:
    table = stage_table(data())
    header = next(line for line in table if line.startswith("| hub stage"))
    assert "2 workers" in header and "baseline stage" in header
    rows = [line for line in table if line.startswith("| ingest")]
    assert rows == ["| ingest | 200.0 | 120.0 | decode | 10.0 |"]
    assert any(line.startswith("| **sum of stages** | 250.0 | 180.0 |") for line in table)
    assert any(line.startswith("| process CPU |") for line in table)
    assert any(line.startswith("| | | | send | 1.0 |") for line in table)


def test_one_worker_only_and_the_runtime_in_the_labels() -> None:
    without = data(two_workers=False, runtime="classic")
    text = markdown(without, [])
    assert "hub: 1 worker, classic runtime" in text
    assert "2 workers" not in text
    assert "Two workers" not in text
    assert "| ingest | 200.0 | decode | 10.0 |" in text
    assert "hub: 2 workers, batched runtime" in markdown(data(), [])


def test_the_runtime_is_set_for_the_workers_only_when_asked(monkeypatch) -> None:
    monkeypatch.delenv("FIN_RUNTIME", raising=False)
    ctx = Context("b", "r", None, None)  # type: ignore[arg-type]
    assert ctx.worker_env() == {}
    assert ctx.effective_runtime == Settings.runtime  # the worker's own default
    monkeypatch.setenv("FIN_RUNTIME", "batched")
    assert ctx.worker_env() == {}
    assert ctx.effective_runtime == "batched"
    ctx.runtime = "classic"
    assert ctx.worker_env() == {"FIN_RUNTIME": "classic"}
    assert ctx.effective_runtime == "classic"


def test_recovery_names_the_entries_index_only_when_it_was_measured() -> None:
    recovery: dict[str, Any] = {
        "changelog_records": 3000,
        "changelog_topics": 9,
        "recovery_seconds": 1.5,
        "records_per_s": 2000,
        "seconds_per_million_records": 500.0,
        "seconds_to_ready_wiped": 9.0,
        "seconds_to_ready_intact": 5.0,
        "ledger_records": None,
        "seconds_to_entries_index_wiped": None,
    }
    assert "entries index" not in markdown({**data(), "recovery": recovery}, [])
    recovery.update(ledger_records=1861, seconds_to_entries_index_wiped=9.5)
    text = markdown({**data(), "recovery": recovery}, [])
    assert "2,000 records/s" in text
    assert "1,861 records, rebuilt after /ready" in text and "9.5 s after the wiped start" in text
    recovery.update(seconds_to_entries_index_wiped=None, problems=["no index"])
    assert "PROBLEM: no index." in markdown({**data(), "recovery": recovery}, [])
