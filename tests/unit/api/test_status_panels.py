"""The status page's history, charts and business panel, from plain inputs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from api.status_business import business_panel
from api.status_charts import line_chart
from api.status_history import (
    History,
    Sample,
    Series,
    dead_letters,
    histogram_quantile,
    latency,
    take_sample,
    throughput,
)
from ledger import reducers
from ledger.reducers import OpenItem
from streams.metrics import Metrics
from tests.unit.api.fixtures import chart

INF = float("inf")


def sample(at_s: float, consumed: float, posted: float, **changes: Any) -> Sample:
    fields: dict[str, Any] = {
        "at_s": at_s,
        "consumed": consumed,
        "posted": posted,
        "rejected": 0.0,
        "dead_letters_by_reason": {},
        "lag_by_topic": {},
        "latency_buckets": ((0.1, 0.0), (1.0, 0.0), (INF, 0.0)),
        **changes,
    }
    return Sample(**fields)


def test_throughput_is_records_per_second_between_consecutive_samples() -> None:
    lines = {
        line.name: line.points
        for line in throughput([sample(0, 0, 0), sample(5, 100, 90), sample(10, 100, 100)])
    }

    assert lines["in"] == ((5, 20.0), (10, 0.0))
    assert lines["posted"] == ((5, 18.0), (10, 2.0))
    assert lines["rejected"] == ((5, 0.0), (10, 0.0))


def test_the_history_keeps_only_the_window_and_its_sample_has_the_workers_counters() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.events_consumed.labels("hr.events").inc(3)
    metrics.events_posted.labels("hr.events", "hr.payroll.processed").inc(2)
    metrics.dead_letters.labels("schema_unknown").inc()
    metrics.record_to_posting_seconds.observe(0.15)
    metrics.event_to_posting_seconds.observe(9.0)  # the business age is not what is charted
    taken = take_sample(metrics.registry, {("hr.events", 0): 4, ("hr.events", 1): 1}, 100.0)
    history = History(window_s=60, interval_s=5)
    for at_s in range(0, 200, 5):
        history.record(sample(float(at_s), 0, 0))

    assert (taken.consumed, taken.posted, taken.lag_by_topic) == (3.0, 2.0, {"hr.events": 5})
    assert taken.dead_letters_by_reason == {"schema_unknown": 1.0}
    assert dict(taken.latency_buckets)[0.2] == 1.0 and dict(taken.latency_buckets)[0.1] == 0
    assert dict(taken.latency_buckets)[10] == 1.0
    kept = [one.at_s for one in history.samples()]
    assert (kept[0], kept[-1], len(kept)) == (135.0, 195.0, 13)  # the last 60 s


def test_a_quantile_is_interpolated_in_its_bucket_like_prometheus() -> None:
    buckets = ((0.1, 50.0), (1.0, 100.0), (INF, 100.0))

    assert histogram_quantile(0.5, buckets) == 0.1
    assert histogram_quantile(0.75, buckets) == 0.55
    assert histogram_quantile(0.5, ((0.1, 0.0), (INF, 0.0))) is None
    assert histogram_quantile(0.99, ((0.1, 0.0), (1.0, 0.0), (INF, 5.0))) == 1.0


def test_latency_is_taken_from_the_observations_of_each_interval_only() -> None:
    samples = [
        sample(0, 0, 0, latency_buckets=((0.1, 100.0), (1.0, 100.0), (INF, 100.0))),
        sample(5, 0, 0, latency_buckets=((0.1, 100.0), (1.0, 110.0), (INF, 110.0))),
        sample(10, 0, 0, latency_buckets=((0.1, 100.0), (1.0, 110.0), (INF, 110.0))),
    ]

    lines = {line.name: line.points for line in latency(samples)}

    assert lines["p50"] == ((5, 0.55),)  # only the 10 new ones, all between 0.1 and 1 s
    assert set(lines) == {"p50", "p99"}


def test_dead_letters_are_per_minute_and_only_for_reasons_that_had_one() -> None:
    samples = [
        sample(0, 0, 0, dead_letters_by_reason={"schema_unknown": 0.0, "period_invalid": 2.0}),
        sample(30, 0, 0, dead_letters_by_reason={"schema_unknown": 3.0, "period_invalid": 2.0}),
    ]

    assert dead_letters(samples) == [Series("schema_unknown", ((30, 6.0),))]


def test_a_chart_draws_one_polyline_per_series_and_says_when_it_has_nothing() -> None:
    drawn = line_chart(
        "throughput",
        "Events",
        "per second",
        [Series("in", ((850.0, 2.0), (900.0, 4.0))), Series("<b>", ())],
        now_s=900.0,
        window_s=900.0,
    )
    empty = line_chart("lag", "Lag", "records", [], now_s=900.0, window_s=900.0)

    assert 'id="chart-throughput" data-points="2"' in drawn
    assert drawn.count("<polyline") == 1 and 'data-series="in"' in drawn
    assert "&lt;b&gt;" in drawn and "<b>&lt;" not in drawn
    assert "no data yet" in empty and 'data-points="0"' in empty
    assert "http" not in drawn + empty


def budget_row(amount: str, actual: str) -> dict[str, Any]:
    return reducers.BudgetRow(amount=Decimal(amount), actual=Decimal(actual)).to_json_dict()


def test_the_business_panel_lists_budgets_at_warn_and_stop_customers_over_and_overdue() -> None:
    vendor = reducers.VendorRow(
        items={
            "GR-1": OpenItem(Decimal("300.00"), date(2024, 3, 1), date(2024, 3, 31)),
            "GR-2": OpenItem(Decimal("50.00"), date(2024, 5, 1), date(2024, 6, 30)),
        },
        paid_total=Decimal("100.00"),
    )
    panel = business_panel(
        budgets=[
            ("ENG-001|SALARY|2024-Q1", budget_row("100.00", "95.00")),  # at warn (0.90)
            ("ENG-001|SALARY|2024-Q2", budget_row("100.00", "120.00")),  # over stop (1.00)
            ("ENG-001|SALARY|2024-Q3", budget_row("100.00", "10.00")),  # ok
        ],
        customers=[
            ("CUS-1", reducers.CustomerRow(Decimal("10.00"), Decimal("12.50")).to_json_dict()),
            ("CUS-2", reducers.CustomerRow(Decimal("10.00"), Decimal("9.99")).to_json_dict()),
        ],
        vendors=[("VEN-1", vendor.to_json_dict()), ("VEN-2", reducers.VendorRow().to_json_dict())],
        chart=chart(),
        as_of=date(2024, 4, 15),
    )

    assert (panel.budgets_near, panel.budgets_exceeded) == (1, 1)
    assert [(line.period, line.status) for line in panel.budgets] == [
        ("2024-Q2", "exceeded"),
        ("2024-Q1", "near"),
    ]
    assert [(c.customer, c.over_by) for c in panel.customers] == [("CUS-1", Decimal("2.50"))]
    # 100.00 paid goes to the oldest item first: 200.00 of GR-1 is overdue, GR-2 is not due.
    assert [(v.vendor, v.overdue, v.open) for v in panel.vendors] == [
        ("VEN-1", Decimal("200.00"), Decimal("250.00"))
    ]
    assert panel.overdue_total == Decimal("200.00")
    assert (panel.rows_read, panel.rows_unreadable) == (7, 0)
