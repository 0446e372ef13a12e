"""The smallest proof that the parts are real: one payroll event in, one journal entry out."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaConsumer

from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder
from schemas.registry import RegistryClient
from tests.fixtures import Deployment
from tools.produce import EventProducer

pytestmark = pytest.mark.e2e


def payroll_event(event_id: str) -> dict[str, Any]:
    return {
        "event_type": "hr.payroll.processed",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 15, 10, 0, tzinfo=UTC),
        "source": "hr-service",
        "data": {
            "payroll_id": "PAY-2024-003",
            "pay_period_start": date(2024, 3, 1),
            "pay_period_end": date(2024, 3, 15),
            "total_gross_pay": Decimal("125000.00"),
            "currency": "USD",
            "department_id": "ENG-001",
            "department_lines": [],
        },
    }


def read_entries(deployment: Deployment, count: int, timeout_s: float) -> list[dict[str, Any]]:
    catalog = SchemaCatalog.load()
    client = RegistryClient(deployment.infra.registry_url)
    decoder = Decoder(catalog, client.get_schema)
    consumer = KafkaConsumer(
        deployment.topic("fin.ledger.postings"),
        bootstrap_servers=deployment.infra.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    entries: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(entries) < count and time.monotonic() < deadline:
            for message in consumer:
                decoded = decoder.decode("fin.ledger.postings", message.value)
                assert isinstance(decoded, Decoded), decoded
                entries.append(decoded.record)
    finally:
        consumer.close()
    return entries


def test_a_payroll_event_on_hr_events_becomes_a_balanced_entry_on_the_ledger_topic(
    deployment: Deployment,
) -> None:
    worker = deployment.add_worker()
    worker.wait_ready()
    event_id = str(uuid.uuid4())
    producer = EventProducer(
        deployment.infra.bootstrap, deployment.infra.registry_url, topic_prefix=deployment.prefix
    )
    try:
        producer.send(payroll_event(event_id))
        producer.flush()
    finally:
        producer.close()

    entries = read_entries(deployment, 1, timeout_s=90)

    assert len(entries) == 1, worker.log_tail()
    entry = entries[0]
    assert entry["source_event_id"] == event_id
    assert entry["source_topic"] == "hr.events"
    assert entry["period"] == "2024-03" and entry["quarter"] == "2024-Q1"
    debits = sum(line["debit"] for line in entry["lines"])
    credits = sum(line["credit"] for line in entry["lines"])
    assert debits == credits == Decimal("125000.00")
