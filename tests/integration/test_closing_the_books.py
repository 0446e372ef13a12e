"""Closing the books (issue 16), through one real worker and real Kafka: the ledger's hash
chains, departments as master data.

One worker for the module (its start is most of the cost); each test uses its own entities.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder, Encoder, encode_payload
from schemas.registry import RegistryClient, SchemaIds
from schemas.wire import frame, unframe
from streams.deadletter import HEADER_REASON, header_map
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import (
    LedgerReader,
    RawProducer,
    TopicReader,
    dead_letter_position,
    envelope,
    run_app,
    wait_until,
)

pytestmark = pytest.mark.integration

MOMENT = dt.datetime(2024, 3, 15, 14, 30, tzinfo=dt.UTC)
API = "/api/v1/fin"


@pytest.fixture(scope="module")
def worker(module_deployment: Deployment) -> Worker:
    started = module_deployment.add_worker()
    started.wait_ready()
    return started


@pytest.fixture(scope="module")
def encoder(module_deployment: Deployment, worker: Worker) -> Iterator[Encoder]:
    catalog = SchemaCatalog.load()
    client = RegistryClient(module_deployment.infra.registry_url)
    ids = SchemaIds(catalog, client, module_deployment.prefix, auto_register=False)
    yield Encoder(catalog, ids)
    client.close()


def goods_receipt(order: str, amount: str, **data: Any) -> dict[str, Any]:
    return envelope(
        "scm.goods.received",
        MOMENT,
        {
            "purchase_order_id": order,
            "vendor_id": "VEN-001",
            "total_amount": Decimal(amount),
            "currency": "USD",
            "payment_terms_days": 30,
            "business_date": None,
            **data,
        },
    )


def publish(deployment: Deployment, encoder: Encoder, topic: str, *records: dict[str, Any]) -> None:
    producer = RawProducer(deployment)
    try:
        for record in records:
            producer.send(topic, str(record["event_id"]).encode(), encoder.encode(record))
        producer.flush()
    finally:
        producer.close()


def verify(deployment: Deployment, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_app(deployment.env(), "ledger", "verify", "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_ledger_verifies_clean_and_an_edited_copy_is_caught_at_the_edited_entry(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    records = [goods_receipt(f"PO-CHAIN-{n}", f"{1000 + n}.00") for n in range(12)]
    publish(module_deployment, encoder, "scm.events", *records)
    ledger = LedgerReader(module_deployment)
    try:
        ledger.wait_for_events([str(r["event_id"]) for r in records])
    finally:
        ledger.close()

    status, clean = verify(module_deployment)
    assert status == 0 and clean["ok"], clean
    assert sum(chain["entries"] for chain in clean["chains"]) >= 12
    assert all(chain["first_break"] is None for chain in clean["chains"])

    # A copy of the ledger topic with one amount changed, as anyone with topic access could.
    reader = TopicReader(module_deployment, "fin.ledger.postings")
    originals = reader.read_to_end()
    reader.close()
    registry = RegistryClient(module_deployment.infra.registry_url)
    catalog = SchemaCatalog.load()
    decoder = Decoder(catalog, registry.get_schema)
    target = next(
        r
        for r in originals
        if _decoded(decoder, r.value)["source_event_id"] == records[5]["event_id"]
    )
    edited = _decoded(decoder, target.value)
    edited["lines"][0]["debit"] += Decimal("1.00")
    schema_id, _ = unframe(target.value)
    edited_value = frame(
        schema_id, encode_payload(edited, catalog.by_fullname["fin.ledger.JournalEntry"])
    )
    registry.close()
    copy = module_deployment.topic("ledger-copy")
    admin = KafkaAdminClient(bootstrap_servers=module_deployment.infra.bootstrap)
    admin.create_topics([NewTopic(copy, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=module_deployment.infra.bootstrap, acks="all")
    for record in originals:
        value = edited_value if record is target else record.value
        producer.send(copy, key=record.key, value=value, partition=0)
    producer.send(copy, key=originals[0].key, value=originals[0].value, partition=0)  # a repeat
    producer.flush()
    producer.close()

    status, report = verify(module_deployment, "--topic", copy)
    assert status == 1 and not report["ok"]
    broken = [chain for chain in report["chains"] if chain["first_break"] is not None]
    assert len(broken) == 1, report
    (chain,) = broken
    assert chain["chain"] == edited["chain_partition"]
    assert chain["first_break"]["sequence"] == edited["chain_sequence"]
    assert "altered" in chain["first_break"]["problem"]
    assert chain["verified_sequence"] == edited["chain_sequence"] - 1
    assert report["repeats"] >= 1

    # The integrity endpoint verifies the worker's own copy and says how far.
    integrity = worker.get(f"{API}/ledger/integrity").json()
    chains = integrity["ledger_chains"]
    assert chains["ok"] and integrity["ok"], integrity
    assert sum(c["verified_sequence"] for c in chains["chains"]) >= 12
    assert all(c["verified_position"] for c in chains["chains"])


def _decoded(decoder: Decoder, value: bytes) -> dict[str, Any]:
    decoded = decoder.decode("fin.ledger.postings", value)
    assert isinstance(decoded, Decoded), decoded
    return dict(decoded.record)


def payroll(department: str) -> dict[str, Any]:
    return envelope(
        "hr.payroll.processed",
        dt.datetime(2024, 3, 31, 18, 0, tzinfo=dt.UTC),
        {
            "payroll_id": "PAY-2024-003",
            "pay_period_start": dt.date(2024, 3, 1),
            "pay_period_end": dt.date(2024, 3, 31),
            "total_gross_pay": Decimal("125000.00"),
            "currency": "USD",
            "department_id": None,
            "department_lines": [
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("100000.00")},
                {"department_id": department, "category": "SALARY", "amount": Decimal("25000.00")},
            ],
        },
    )


def write_headers(deployment: Deployment) -> dict[str, str]:
    return {"X-API-Key": deployment.api_key + "-write", "Content-Type": "application/json"}


def test_a_payroll_for_an_unknown_department_posts_once_it_is_registered_and_replayed(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    run = payroll("OPS-002")
    producer = RawProducer(module_deployment)
    producer.send("hr.events", b"PAY-2024-003", encoder.encode(run))
    (sent,) = producer.flush()
    producer.close()
    dlq = TopicReader(module_deployment, "fin.dlq")
    try:
        letters = dlq.wait_for(
            lambda records: any(dead_letter_position(r) == sent.position for r in records),
            "the payroll's dead letter",
        )
    finally:
        dlq.close()
    (letter,) = [r for r in letters if dead_letter_position(r) == sent.position]
    assert header_map(letter.headers)[HEADER_REASON] == "reference_unknown"
    assert worker.get(f"{API}/departments/OPS-002").status_code == 404

    # Registered by command (REST, write key), with who and why; no restart anywhere.
    response = requests.put(
        f"{worker.url}{API}/departments/OPS-002",
        json={"name": "Operations 2", "requested_by": "a.controller", "reason": "new site"},
        headers=write_headers(module_deployment),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    wait_until(
        lambda: worker.get(f"{API}/departments/OPS-002").status_code == 200,
        "the department known to the worker",
    )
    department = worker.get(f"{API}/departments/OPS-002").json()
    assert department["status"] == "active" and department["changed_by"] == "a.controller"
    assert department["name"] == "Operations 2" and department["reason"] == "new site"

    # A registered department with no budget and nothing spent answers "no budget".
    before = worker.get(f"{API}/budgets/department/OPS-002", category="SALARY", period="2024-Q2")
    assert before.status_code == 200, before.text
    assert before.json()["status"] == "no_budget" and before.json()["actual"] == "0.00"

    replay = run_app(
        module_deployment.env(), "dlq", "replay", "--id", f"{letter.partition}:{letter.offset}"
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    ledger = LedgerReader(module_deployment)
    try:
        entry = ledger.wait_for_events([str(run["event_id"])])[str(run["event_id"])]
    finally:
        ledger.close()
    lines = {line["dimensions"].get("department"): line for line in entry["lines"]}
    assert lines["OPS-002"]["debit"] == Decimal("25000.00")

    def budget_shows_the_run() -> bool:
        answer = worker.get(
            f"{API}/budgets/department/OPS-002", category="SALARY", period="2024-03"
        )
        return answer.status_code == 200 and answer.json()["actual"] == "25000.00"

    wait_until(budget_shows_the_run, "the payroll in OPS-002's budget actuals")
    assert (
        worker.get(f"{API}/budgets/department/OPS-002", category="SALARY", period="2024-03").json()[
            "status"
        ]
        == "no_budget"
    )
