"""Closing the books (issue 16), through one real worker and real Kafka: the ledger's hash
chains, departments as master data, period close (the reject policy on a second deployment).

One worker for the module (its start is most of the cost); each test uses its own entities.
"""

from __future__ import annotations

import datetime as dt
import json
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
from tests.fixtures import ROOT, Deployment, Worker
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
    # A byte-identical repeat of an untouched entry (at-least-once), which the verifier must
    # ignore. Not of the edited one: its original bytes beside the edit are a second, different
    # record at the same sequence, a break of another name (seen when the target was first).
    repeat = next(record for record in originals if record is not target)
    producer.send(copy, key=repeat.key, value=repeat.value, partition=0)
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

    # The budget query takes the registered department (an unknown one is a 400): nothing is
    # booked for it yet, so "no budget or actuals" (404), as for any untouched budget key.
    before = worker.get(f"{API}/budgets/department/OPS-002", category="SALARY", period="2024-Q2")
    assert before.status_code == 404, before.text
    assert worker.get(f"{API}/budgets/department/OPS-003", period="2024-Q2").status_code == 400

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


def close_or_reopen(worker: Worker, deployment: Deployment, month: str, action: str) -> None:
    response = requests.post(
        f"{worker.url}{API}/periods/{month}/{action}",
        json={"requested_by": "a.controller", "reason": "month end"},
        headers=write_headers(deployment),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    closed = action == "close"
    wait_until(
        lambda: worker.get(f"{API}/periods/{month}").json()["closed"] is closed,
        f"{month} {action}d on the worker",
    )


def trial_balance(worker: Worker, period: str) -> dict[str, Any]:
    response = worker.get(f"{API}/ledger/trial-balance", period=period)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_march_closed_books_a_march_receipt_late_in_april_and_reopened_books_in_march_again(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    first = goods_receipt("PO-CLOSE-1", "300.00", business_date=dt.date(2024, 3, 10))
    publish(module_deployment, encoder, "scm.events", first)
    ledger = LedgerReader(module_deployment)
    try:
        ledger.wait_for_events([str(first["event_id"])])
        wait_until(
            lambda: trial_balance(worker, "2024-03")["entry_count"] >= 1, "March's trial balance"
        )
        close_or_reopen(worker, module_deployment, "2024-03", "close")
        wait_until(lambda: trial_balance(worker, "2024-03")["closed"], "March's row closed")
        march = trial_balance(worker, "2024-03")
        assert march["closed"] is True and march["late_entries_to_later_periods"] == 0
        assert worker.get(f"{API}/periods/2024-03").json()["quarter_closed"] is True

        late = goods_receipt("PO-CLOSE-2", "450.00", business_date=dt.date(2024, 3, 20))
        publish(module_deployment, encoder, "scm.events", late)
        entry = ledger.wait_for_events([str(late["event_id"])])[str(late["event_id"])]
        assert entry["period"] == "2024-03" and entry["posting_period"] == "2024-04"
        assert entry["business_date"] == dt.date(2024, 3, 20)
        wait_until(
            lambda: trial_balance(worker, "2024-03")["late_entries_to_later_periods"] == 1,
            "the late entry counted in March",
        )
        after = trial_balance(worker, "2024-03")
        unchanged = ("lines", "total_debit", "total_credit", "entry_count")
        assert {k: after[k] for k in unchanged} == {k: march[k] for k in unchanged}
        april = trial_balance(worker, "2024-04")
        assert any(
            line["account"] == "1200" and Decimal(line["debit"]) >= Decimal("450.00")
            for line in april["lines"]
        )

        close_or_reopen(worker, module_deployment, "2024-03", "reopen")
        again = goods_receipt("PO-CLOSE-3", "75.00", business_date=dt.date(2024, 3, 25))
        publish(module_deployment, encoder, "scm.events", again)
        entry = ledger.wait_for_events([str(again["event_id"])])[str(again["event_id"])]
        assert entry["posting_period"] is None and entry["period"] == "2024-03"
    finally:
        ledger.close()

    def books_whole() -> bool:
        report = worker.get(f"{API}/ledger/integrity").json()
        return bool(report["ok"]) and report["ledger_chains"]["ok"]

    # The closed period's totals are checked too (closed_period_unchanged).
    wait_until(books_whole, "integrity ok once the last deltas are applied")


def test_with_the_reject_policy_a_receipt_for_a_closed_month_is_dead_lettered_period_closed(
    deployment: Deployment, tmp_path: Any
) -> None:
    chart = (ROOT / "config" / "chart_of_accounts.toml").read_text()
    assert 'closed_period_policy = "late"' in chart
    strict = tmp_path / "chart_reject.toml"
    strict.write_text(
        chart.replace('closed_period_policy = "late"', 'closed_period_policy = "reject"')
    )
    strict_worker = deployment.add_worker(FIN_CHART_PATH=str(strict))
    try:
        strict_worker.wait_ready()
        reject_scenario(deployment, strict_worker)
    finally:
        strict_worker.kill()  # nothing to flush: a clean stop would only cost seconds


def reject_scenario(deployment: Deployment, strict_worker: Worker) -> None:
    assert strict_worker.get(f"{API}/periods").json()["closed_period_policy"] == "reject"
    close_or_reopen(strict_worker, deployment, "2024-03", "close")
    catalog = SchemaCatalog.load()
    client = RegistryClient(deployment.infra.registry_url)
    try:
        local = Encoder(catalog, SchemaIds(catalog, client, deployment.prefix, auto_register=False))
        receipt = goods_receipt("PO-STRICT-1", "99.00", business_date=dt.date(2024, 3, 5))
        producer = RawProducer(deployment)
        producer.send("scm.events", b"PO-STRICT-1", local.encode(receipt))
        (sent,) = producer.flush()
        producer.close()
    finally:
        client.close()
    dlq = TopicReader(deployment, "fin.dlq")
    try:
        letters = dlq.wait_for(
            lambda records: any(dead_letter_position(r) == sent.position for r in records),
            "the receipt's dead letter",
        )
    finally:
        dlq.close()
    (letter,) = [r for r in letters if dead_letter_position(r) == sent.position]
    headers = header_map(letter.headers)
    assert headers[HEADER_REASON] == "period_closed"
    assert "2024-03" in headers["fin.detail"]
