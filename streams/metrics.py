"""Prometheus metrics of one worker, named by Prometheus conventions (unit suffixes, _total)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets in seconds: from sub-millisecond work inside the worker to minutes of event age.
_WORKER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_EVENT_AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_HUB_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60)


HANDOFF_HELP = (
    "By-event-id records the ingest agent handed to the posting agent of its worker "
    "(posted: processed at once; skipped: the fetched copy of one; refused: not next "
    "in its partition, processed when fetched; dropped: the hand-over queue was full)."
)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_consumed = Counter(
            "fin_events_consumed_total", "Records read from source topics.", ["topic"], registry=r
        )
        self.events_posted = Counter(
            "fin_events_posted_total",
            "Events that became a journal entry or state change.",
            ["topic", "event_type"],
            registry=r,
        )
        self.events_rejected = Counter(
            "fin_events_rejected_total",
            "Records refused with a named reason (sent to fin.dlq).",
            ["topic", "reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "fin_events_duplicate_total",
            "Events whose event_id was already posted.",
            ["topic", "event_type"],
            registry=r,
        )
        self.replays = Counter(
            "fin_replayed_records_total",
            "Records seen again after a crash or rebalance (harmless by design).",
            ["stage"],
            registry=r,
        )
        self.handoff_records = Counter(
            "fin_handoff_records_total", HANDOFF_HELP, ["outcome"], registry=r
        )
        self.parked = Counter(
            "fin_compensations_parked_total",
            "Compensations held back because their target was not posted yet.",
            registry=r,
        )
        self.dead_letters = Counter(
            "fin_dead_letters_total",
            "Records written to the dead-letter topic.",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            "fin_retries_total", "Retries of transient failures.", ["dependency"], registry=r
        )
        self.send_failures = Counter(
            "fin_send_failures_total",
            "Records the producer accepted but could not deliver (each is logged).",
            ["topic"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "fin_circuit_breaker_state",
            "0 closed, 1 half-open, 2 open.",
            ["dependency"],
            registry=r,
        )
        self.deltas_applied = Counter(
            "fin_table_deltas_applied_total",
            "State changes applied to tables.",
            ["table"],
            registry=r,
        )
        self.deltas_skipped = Counter(
            "fin_table_deltas_skipped_total",
            "State changes skipped by the position guard (already applied).",
            ["table"],
            registry=r,
        )
        self.alerts = Counter(
            "fin_alerts_total", "Alerts published on fin.alerts.", ["alert_type"], registry=r
        )
        self._add_histograms(r)
        self.consumer_lag = Gauge(
            "fin_consumer_lag_records",
            "End offset minus committed offset, per partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.table_keys = Gauge(
            "fin_table_keys",
            "Keys held locally per table (RocksDB's estimate).",
            ["table"],
            registry=r,
        )
        self.trial_balance_imbalance = Gauge(
            "fin_trial_balance_imbalance", "Debits minus credits over local periods.", registry=r
        )
        self.integrity_failures = Counter(
            "fin_integrity_failures_total", "Integrity checks that failed.", ["check"], registry=r
        )
        self.timer_failures = Counter(
            "fin_timer_failures_total",
            "Runs of a periodic task (timer) that failed and were logged; retried next time.",
            ["timer"],
            registry=r,
        )
        self.recovery_complete = Gauge(
            "fin_table_recovery_complete",
            "1 once tables have been recovered from changelogs.",
            registry=r,
        )

    def _add_histograms(self, r: CollectorRegistry) -> None:
        self.processing_seconds = Histogram(
            "fin_processing_seconds",
            "Time inside the worker per record and stage.",
            ["stage"],
            buckets=_WORKER_BUCKETS,
            registry=r,
        )
        self.event_to_posting_seconds = Histogram(
            "fin_event_to_posting_seconds",
            "From the event's own timestamp to the moment its posting was sent.",
            buckets=_EVENT_AGE_BUCKETS,
            registry=r,
        )
        self.table_delta_age_seconds = Histogram(
            "fin_table_delta_age_seconds",
            "From a deltas record's Kafka timestamp (written by the posting batch that made the "
            "deltas) to the delivery of the table rows it changed: how far the tables (REST "
            "reads, alerts) trail the journal entries.",
            buckets=_HUB_LATENCY_BUCKETS,
            registry=r,
        )
        self.record_to_posting_seconds = Histogram(
            "fin_record_to_posting_seconds",
            "From the source record's Kafka timestamp (when it was published) to the delivery of "
            "its journal entry: the hub's own latency, whatever date the event carries.",
            buckets=_HUB_LATENCY_BUCKETS,
            registry=r,
        )
