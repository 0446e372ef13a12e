"""A table row larger than a changelog record, through a real worker and broker (issue 13's
notes; tables/chunked.py).

A vendor whose receipts are not paid keeps each one as an open item in its row; 5,000 receipts
with long purchase-order ids make a row of ~1.15 MB, over the changelog topics' 1 MiB record
limit. Before, the broker refused that row's changelog record, the worker stopped without
committing, and every restart replayed the same batch into the same refusal. Now the row goes
to its changelog as chunks and a header: the vendor's payables are answered, and a second
worker that rebuilds the table from the changelog alone answers the same.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from schemas.codec import Encoder
from tables.chunked import header_of
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import RawProducer, TopicReader, envelope, wait_until

pytestmark = pytest.mark.integration

MOMENT = dt.datetime(2024, 3, 15, 14, 30, tzinfo=dt.UTC)
RECEIPTS = 5_000
AMOUNT = Decimal("100.00")
CHANGELOG_RECORD_LIMIT = 1024 * 1024  # the broker's default max.message.bytes, kept by FIN
STATUS = "/api/v1/fin/ap/vendors/{vendor}/payment-status"


def receipt(vendor: str, number: int) -> dict[str, Any]:
    return envelope(
        "scm.goods.received",
        MOMENT,
        {
            # 100 characters (identifiers may have 128): ~230 bytes per open item in the row.
            "purchase_order_id": f"PO-{number:06d}-".ljust(100, "x"),
            "vendor_id": vendor,
            "total_amount": AMOUNT,
            "currency": "USD",
            "payment_terms_days": 30,
            "business_date": None,
        },
    )


def payables(worker: Worker, vendor: str) -> dict[str, Any] | None:
    """The vendor's payables without ``freshness`` (which worker answered, and when)."""
    response = worker.get(STATUS.format(vendor=vendor), as_of="2024-06-30")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    body.pop("freshness", None)
    return body


def test_a_vendor_row_over_the_changelog_record_limit_is_answered_and_rebuilt_whole(
    module_deployment: Deployment, worker: Worker, encoder: Encoder
) -> None:
    vendor = f"VEN-LARGE-{uuid.uuid4().hex[:6]}"
    producer = RawProducer(module_deployment)
    try:
        for number in range(RECEIPTS):
            producer.send("scm.events", vendor.encode(), encoder.encode(receipt(vendor, number)))
        producer.flush()
    finally:
        producer.close()
    expected_open = f"{AMOUNT * RECEIPTS:.2f}"

    def all_open(on: Worker) -> bool:
        status = payables(on, vendor)
        return status is not None and status["open_items"] == RECEIPTS

    wait_until(lambda: all_open(worker), f"{RECEIPTS} open items of {vendor}", timeout_s=180)
    before = payables(worker, vendor)
    assert before is not None and before["open"] == expected_open
    assert before["aging"]["days_61_90"] == expected_open  # due 2024-04-14, 77 days before

    # The row went to its changelog as chunks and a header naming a row over the limit.
    changelog = TopicReader(
        module_deployment, f"{worker.env['FIN_APP_ID']}-vendors-changelog", named=True
    )
    try:
        records = changelog.read_to_end()
    finally:
        changelog.close()
    headers = [header_of(r.value) for r in records if r.key == vendor.encode()]
    largest = max((h.length for h in headers if h is not None), default=0)
    assert largest > CHANGELOG_RECORD_LIMIT, f"the row was {largest} bytes at most"
    assert all(len(r.value or b"") < CHANGELOG_RECORD_LIMIT for r in records)

    # A worker with an empty data directory rebuilds the table from the changelog alone.
    assert worker.stop() is not None, "the worker did not stop on SIGTERM"
    rebuilt = module_deployment.add_worker()
    rebuilt.wait_ready()
    assert payables(rebuilt, vendor) == before
    integrity = rebuilt.get("/api/v1/fin/ledger/integrity").json()
    assert integrity["ok"] is True, integrity
