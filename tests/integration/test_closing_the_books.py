"""Closing the books (issue 16), through one real worker and real Kafka: the ledger's hash chains.

One worker for the module (its start is most of the cost); each test uses its own entities.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder, Encoder, encode_payload
from schemas.registry import RegistryClient, SchemaIds
from schemas.wire import frame, unframe
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import (
    LedgerReader,
    RawProducer,
    TopicReader,
    envelope,
    run_app,
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
