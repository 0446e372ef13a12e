"""Records that used to be lost, through a real worker (issue 14, item 1): each ends as exactly
one named dead letter with its original bytes, and the worker goes on (the next event posts,
/ready 200, integrity ok): oversize fields, and an exception inside a stage.

Before: a goods receipt whose free-text ``source`` was ~1,000,000 characters crashed the ingest
agent on the producer's size limit and was lost; a 400,000-character ``vendor_id`` was posted
and then crashed the producer on every restart.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from schemas.codec import Encoder
from streams.deadletter import HEADER_REASON, header_map
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import (
    LedgerReader,
    RawProducer,
    TopicReader,
    dead_letter_position,
    entry_position,
    envelope,
)

pytestmark = pytest.mark.integration

MOMENT = dt.datetime(2024, 3, 15, 14, 30, tzinfo=dt.UTC)
# The module's worker raises inside its posting stage on this event id, as a defect would.
FAULTY_EVENT_ID = "0f0f0f0f-0000-4000-8000-00000000fa17"


@pytest.fixture(scope="module")
def worker(module_deployment: Deployment) -> Worker:
    started = module_deployment.add_worker(FIN_FAULT_INJECT_EVENT_ID=FAULTY_EVENT_ID)
    started.wait_ready()
    return started


def goods_receipt(**data: Any) -> dict[str, Any]:
    return envelope(
        "scm.goods.received",
        MOMENT,
        {
            "purchase_order_id": "PO-OVERSIZE-1",
            "vendor_id": "VEN-001",
            "total_amount": Decimal("100.00"),
            "currency": "USD",
            "payment_terms_days": 30,
            "business_date": None,
            **data,
        },
    )


def test_oversize_fields_end_as_one_named_dead_letter_each_and_the_stream_goes_on(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    long_source = goods_receipt()
    long_source["source"] = "scm-service " + "x" * 990_000
    long_vendor = goods_receipt(vendor_id="VEN-" + "7" * 400_000)
    after = goods_receipt(purchase_order_id="PO-OVERSIZE-2")
    values = [encoder.encode(record) for record in (long_source, long_vendor, after)]
    assert len(values[0]) > 990_000  # what the broker's default limit still accepts

    producer = RawProducer(module_deployment)
    try:
        for value in values:
            producer.send("scm.events", b"PO-OVERSIZE", value)
        sent = producer.flush()
    finally:
        producer.close()
    oversize = {sent[0].position: values[0], sent[1].position: values[1]}

    reader = TopicReader(module_deployment, "fin.dlq")
    try:
        letters = reader.wait_for(
            lambda records: set(oversize) <= {dead_letter_position(r) for r in records},
            "dead letters of both oversize records",
        )
    finally:
        reader.close()
    by_source: dict[Any, list[Any]] = {}
    for letter in letters:
        by_source.setdefault(dead_letter_position(letter), []).append(letter)
    for position, original in oversize.items():
        [letter] = by_source[position]
        assert header_map(letter.headers)[HEADER_REASON] == "field_too_long"
        assert letter.value == original  # the original bytes, whole

    ledger = LedgerReader(module_deployment)
    try:
        [entry] = ledger.wait_for_positions(1, {sent[2].position})
        posted = ledger.read_to_end()
    finally:
        ledger.close()
    assert entry_position(entry) == sent[2].position
    assert not {entry_position(e) for e in posted} & set(oversize)  # neither was posted
    assert worker.get("/ready").status_code == 200
    integrity = worker.get("/api/v1/fin/ledger/integrity").json()
    assert integrity["ok"] is True, integrity


def test_an_exception_inside_a_stage_dead_letters_its_record_and_the_stream_goes_on(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    faulty = goods_receipt(purchase_order_id="PO-FAULT-1")
    faulty["event_id"] = FAULTY_EVENT_ID
    after = goods_receipt(purchase_order_id="PO-FAULT-2")
    producer = RawProducer(module_deployment)
    try:
        for record in (faulty, after):
            producer.send("scm.events", b"PO-FAULT", encoder.encode(record))
        sent = producer.flush()
    finally:
        producer.close()

    reader = TopicReader(module_deployment, "fin.dlq")
    try:
        letters = reader.wait_for(
            lambda records: sent[0].position in {dead_letter_position(r) for r in records},
            "the dead letter of the record the stage failed on",
        )
    finally:
        reader.close()
    [letter] = [r for r in letters if dead_letter_position(r) == sent[0].position]
    headers = header_map(letter.headers)
    assert headers[HEADER_REASON] == "processing_error"
    assert "InjectedFaultError" in headers["fin.detail"]
    assert letter.value == sent[0].value

    ledger = LedgerReader(module_deployment)
    try:
        [entry] = ledger.wait_for_positions(1, {sent[1].position})
        assert entry["source_event_id"] == after["event_id"]
        posted = ledger.read_to_end()
    finally:
        ledger.close()
    assert sent[0].position not in {entry_position(e) for e in posted}
    assert worker.get("/ready").status_code == 200
    integrity = worker.get("/api/v1/fin/ledger/integrity").json()
    assert integrity["ok"] is True, integrity
