"""Small tools for the contract tests: raw sends with their positions, topic readers that wait
with deadlines, the worker's metrics, and one valid event of every type."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from ledger.event_json import envelope as event_envelope
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder
from schemas.registry import RegistryClient
from streams.deadletter import (
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    header_map,
)
from tests.fixtures import ROOT, Deployment, Worker

SEND_TIMEOUT_S = 30.0
WAIT_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.25

# (contract topic, partition, offset): where a record was written, as FIN's records name it.
Position = tuple[str, int, int]

ENTRY_EVENT_TYPES = frozenset(
    {
        "hr.payroll.processed",
        "scm.goods.received",
        "crm.sales_order.completed",
        "mfg.production_order.completed",
        "pm.time.logged",
        "fin.vendor_payment.made",
        "fin.customer_payment.received",
        "fin.compensation.requested",
    }
)
STATE_ONLY_EVENT_TYPES = frozenset({"fin.budget.set", "fin.credit_limit.set"})


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Return as soon as `condition()` holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


@dataclass(frozen=True)
class Sent:
    """One record as it was produced, and where Kafka put it."""

    topic: str  # contract name, without the deployment's prefix
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


class RawProducer:
    """kafka-python producer of exact bytes into a deployment's topics (contract names in)."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._producer = KafkaProducer(
            bootstrap_servers=deployment.infra.bootstrap, acks="all", linger_ms=5
        )
        self._pending: list[tuple[str, bytes | None, bytes | None, Any]] = []

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        future = self._producer.send(
            self._deployment.topic(topic), key=key, value=value, partition=partition
        )
        self._pending.append((topic, key, value, future))

    def flush(self) -> list[Sent]:
        """Wait for every pending send; their positions, in the order they were sent."""
        self._producer.flush(timeout=SEND_TIMEOUT_S)
        sent = []
        for topic, key, value, future in self._pending:
            metadata = future.get(timeout=SEND_TIMEOUT_S)
            sent.append(
                Sent(topic, key, value, metadata.partition, metadata.offset, metadata.timestamp)
            )
        self._pending.clear()
        return sent

    def close(self) -> None:
        self._producer.close(timeout=SEND_TIMEOUT_S)


class TopicReader:
    """Reads one topic of a deployment from the beginning, with no consumer group
    (``topic``: a contract name, or with ``named=True`` the topic's own name, e.g. a
    changelog's)."""

    def __init__(self, deployment: Deployment, topic: str, *, named: bool = False) -> None:
        self.topic = topic if named else deployment.topic(topic)
        self._consumer = KafkaConsumer(
            bootstrap_servers=deployment.infra.bootstrap, enable_auto_commit=False
        )
        partitions: set[int] = set()

        def known() -> bool:
            partitions.update(self._consumer.partitions_for_topic(self.topic) or ())
            return bool(partitions)

        wait_until(known, f"partitions of {self.topic}")
        self._partitions = [TopicPartition(self.topic, number) for number in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)
        self.records: list[ConsumerRecord] = []

    def poll(self) -> None:
        batches = self._consumer.poll(timeout_ms=int(POLL_INTERVAL_S * 1000))
        for batch in batches.values():
            self.records.extend(batch)

    def wait_for(
        self,
        condition: Callable[[list[ConsumerRecord]], bool],
        what: str,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> list[ConsumerRecord]:
        deadline = time.monotonic() + timeout_s
        while not condition(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s}s waiting for {what} on {self.topic} "
                    f"({len(self.records)} records read)"
                )
            self.poll()
        return self.records

    def read_to_end(self) -> list[ConsumerRecord]:
        """Everything written up to now (the end offsets as of this call)."""
        end = self._consumer.end_offsets(self._partitions)

        def at_end(_: list[ConsumerRecord]) -> bool:
            return all(
                self._consumer.position(partition) >= offset for partition, offset in end.items()
            )

        return self.wait_for(at_end, "the end offsets")

    def close(self) -> None:
        self._consumer.close()


class LedgerReader:
    """Journal entries of a deployment's ledger topic, decoded with the registry's schemas."""

    def __init__(self, deployment: Deployment) -> None:
        self._reader = TopicReader(deployment, "fin.ledger.postings")
        self._registry = RegistryClient(deployment.infra.registry_url)
        self._decoder = Decoder(SchemaCatalog.load(), self._registry.get_schema)
        self.entries: list[dict[str, Any]] = []

    def _decode_new(self) -> None:
        for record in self._reader.records[len(self.entries) :]:
            decoded = self._decoder.decode("fin.ledger.postings", record.value)
            assert isinstance(decoded, Decoded), decoded
            self.entries.append(decoded.record)

    def wait_for_events(
        self, event_ids: Iterable[str], timeout_s: float = WAIT_TIMEOUT_S
    ) -> dict[str, dict[str, Any]]:
        """The entry of each event id (the first one seen), once all of them are on the topic."""
        wanted = set(event_ids)

        def all_there(_: list[ConsumerRecord]) -> bool:
            self._decode_new()
            return wanted <= {entry["source_event_id"] for entry in self.entries}

        self._reader.wait_for(all_there, f"entries of {len(wanted)} events", timeout_s)
        by_event: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            by_event.setdefault(entry["source_event_id"], entry)
        return {event_id: by_event[event_id] for event_id in wanted}

    def wait_for_positions(
        self, count: int, positions: set[Position], timeout_s: float = WAIT_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Entries whose source position is one of `positions`, once there are `count`."""

        def enough(_: list[ConsumerRecord]) -> bool:
            self._decode_new()
            return len(self.of_positions(positions)) >= count

        self._reader.wait_for(enough, f"{count} entries of our records", timeout_s)
        return self.of_positions(positions)

    def of_positions(self, positions: set[Position]) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry_position(entry) in positions]

    def read_to_end(self) -> list[dict[str, Any]]:
        self._reader.read_to_end()
        self._decode_new()
        return self.entries

    def close(self) -> None:
        self._reader.close()
        self._registry.close()


def entry_position(entry: Mapping[str, Any]) -> Position:
    return (entry["source_topic"], entry["source_partition"], entry["source_offset"])


def dead_letter_position(record: ConsumerRecord) -> Position:
    headers = header_map(record.headers)
    return (
        headers[HEADER_SOURCE_TOPIC],
        int(headers[HEADER_SOURCE_PARTITION]),
        int(headers[HEADER_SOURCE_OFFSET]),
    )


def dead_letters_at(
    records: Iterable[ConsumerRecord], positions: set[Position]
) -> dict[Position, list[ConsumerRecord]]:
    found: dict[Position, list[ConsumerRecord]] = {}
    for record in records:
        position = dead_letter_position(record)
        if position in positions:
            found.setdefault(position, []).append(record)
    return found


def assert_balanced(entry: Mapping[str, Any], amount: Decimal) -> None:
    debits = sum((line["debit"] for line in entry["lines"]), Decimal(0))
    credits = sum((line["credit"] for line in entry["lines"]), Decimal(0))
    assert debits == credits == amount, entry


# --- the worker's metrics ------------------------------------------------------------------


def metric_totals(worker: Worker) -> dict[str, float]:
    """Every sample of the worker's /metrics, summed over labels, by sample name."""
    response = worker.get("/metrics")
    assert response.status_code == 200, response.text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


OUTCOME_METRICS = (
    "fin_events_posted_total",
    "fin_events_rejected_total",
    "fin_events_duplicate_total",
)


# --- the CLI ---------------------------------------------------------------------------------


def run_app(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        env={**os.environ, **env},
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


# --- one valid event of every type ---------------------------------------------------------


def envelope(event_type: str, moment: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    """A contract record under a fresh event id (``ledger.event_json.envelope``)."""
    return event_envelope(event_type, str(uuid.uuid4()), moment, data, source="contract-test")


@dataclass(frozen=True)
class Scenario:
    """One event of each type about entities no other test uses (`tag` makes them unique)."""

    tag: str
    budget_period: str
    customer_id: str
    vendor_id: str

    @classmethod
    def fresh(cls, budget_period: str) -> Scenario:
        tag = uuid.uuid4().hex[:8].upper()
        return cls(tag, budget_period, f"CUS-IT-{tag}", f"VEN-IT-{tag}")

    def events(self) -> dict[str, dict[str, Any]]:
        """The nine events that need nothing posted before them, by event type."""
        moment = dt.datetime(2024, 5, 20, 12, 0, tzinfo=dt.UTC)
        tag = self.tag
        records = [
            envelope(
                "fin.budget.set",
                moment,
                {
                    "department_id": "ENG-001",
                    "category": "SALARY",
                    "period": self.budget_period,
                    "amount": Decimal("480000.00"),
                },
            ),
            envelope(
                "fin.credit_limit.set",
                moment,
                {
                    "customer_id": self.customer_id,
                    "credit_limit": Decimal("90000.00"),
                },
            ),
            envelope(
                "hr.payroll.processed",
                moment,
                {
                    "payroll_id": f"PAY-IT-{tag}",
                    "pay_period_start": dt.date(2024, 5, 1),
                    "pay_period_end": dt.date(2024, 5, 15),
                    "total_gross_pay": Decimal("120500.00"),
                    "currency": "USD",
                    "department_id": "ENG-001",
                    "department_lines": [],
                },
            ),
            envelope(
                "scm.goods.received",
                moment,
                {
                    "purchase_order_id": f"PO-IT-{tag}",
                    "vendor_id": self.vendor_id,
                    "total_amount": Decimal("15750.25"),
                    "currency": "USD",
                    "payment_terms_days": 45,
                    "business_date": dt.date(2024, 5, 18),
                },
            ),
            envelope(
                "crm.sales_order.completed",
                moment,
                {
                    "sales_order_id": f"SO-IT-{tag}",
                    "customer_id": self.customer_id,
                    "total_amount": Decimal("25000.10"),
                    "currency": "USD",
                    "business_date": None,
                },
            ),
            envelope(
                "mfg.production_order.completed",
                moment,
                {
                    "production_order_id": f"MO-IT-{tag}",
                    "product_code": "PRD-001",
                    "quantity_produced": 400,
                    "total_cost": Decimal("8000.40"),
                    "currency": "USD",
                    "business_date": None,
                },
            ),
            envelope(
                "pm.time.logged",
                moment,
                {
                    "project_id": f"PROJ-IT-{tag}",
                    "employee_id": "EMP-001",
                    "hours": Decimal("7.50"),
                    "billable_amount": Decimal("1050.00"),
                    "currency": "USD",
                    "business_date": None,
                },
            ),
            envelope(
                "fin.vendor_payment.made",
                moment,
                {
                    "vendor_id": self.vendor_id,
                    "payment_id": f"VP-IT-{tag}",
                    "amount": Decimal("5000.00"),
                    "currency": "USD",
                    "business_date": None,
                },
            ),
            envelope(
                "fin.customer_payment.received",
                moment,
                {
                    "customer_id": self.customer_id,
                    "payment_id": f"CP-IT-{tag}",
                    "amount": Decimal("4000.10"),
                    "currency": "USD",
                    "business_date": None,
                },
            ),
        ]
        return {record["event_type"]: record for record in records}

    @staticmethod
    def compensation(target_event_id: str) -> dict[str, Any]:
        moment = dt.datetime(2024, 5, 21, 9, 0, tzinfo=dt.UTC)
        return envelope(
            "fin.compensation.requested",
            moment,
            {
                "target_event_id": target_event_id,
                "reason": "logged against the wrong project",
            },
        )


# The data field each event type's entry balances at, for the events of `Scenario.events`.
ENTRY_AMOUNT_FIELD = {
    "hr.payroll.processed": "total_gross_pay",
    "scm.goods.received": "total_amount",
    "crm.sales_order.completed": "total_amount",
    "mfg.production_order.completed": "total_cost",
    "pm.time.logged": "billable_amount",
    "fin.vendor_payment.made": "amount",
    "fin.customer_payment.received": "amount",
}


def entry_amount(record: Mapping[str, Any]) -> Decimal:
    amount = record["data"][ENTRY_AMOUNT_FIELD[record["event_type"]]]
    assert isinstance(amount, Decimal)
    return amount
