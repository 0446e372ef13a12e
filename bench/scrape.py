"""The hub's /metrics as the bench reads them: progress counters and per-stage time, summed
over the workers (``fin_processing_seconds``: histogram, label ``stage``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

STAGE_HISTOGRAM = "fin_processing_seconds"
COUNTERS = (
    "fin_events_consumed_total",
    "fin_events_posted_total",
    "fin_events_rejected_total",
    "fin_table_deltas_applied_total",
)


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the drain reads from the workers' /metrics, summed over the workers."""

    counters: dict[str, float]
    stage_seconds: dict[str, float]  # fin_processing_seconds_sum by stage
    stage_records: dict[str, float]  # fin_processing_seconds_count by stage


def parse_metrics(text: str) -> MetricsSnapshot:
    counters = dict.fromkeys(COUNTERS, 0.0)
    seconds: dict[str, float] = {}
    records: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in counters:
                counters[sample.name] += sample.value
            elif sample.name == STAGE_HISTOGRAM + "_sum":
                stage = sample.labels.get("stage", "")
                seconds[stage] = seconds.get(stage, 0.0) + sample.value
            elif sample.name == STAGE_HISTOGRAM + "_count":
                stage = sample.labels.get("stage", "")
                records[stage] = records.get(stage, 0.0) + sample.value
    return MetricsSnapshot(counters, seconds, records)


def merge_metrics(parts: list[MetricsSnapshot]) -> MetricsSnapshot:
    def total(dicts: list[dict[str, float]]) -> dict[str, float]:
        merged: dict[str, float] = {}
        for one in dicts:
            for name, value in one.items():
                merged[name] = merged.get(name, 0.0) + value
        return merged

    return MetricsSnapshot(
        total([p.counters for p in parts]),
        total([p.stage_seconds for p in parts]),
        total([p.stage_records for p in parts]),
    )


def stage_us_per_event(snapshot: MetricsSnapshot, events: int) -> dict[str, float]:
    """µs per *input* event by stage (a stage's whole time / N, whatever share of the events
    passed through it), ingest and posting first, then the tables by name."""
    order = sorted(snapshot.stage_seconds, key=lambda s: (s not in ("ingest", "posting"), s))
    return {
        stage: round(snapshot.stage_seconds[stage] * 1e6 / events, 1) if events else 0.0
        for stage in order
    }
