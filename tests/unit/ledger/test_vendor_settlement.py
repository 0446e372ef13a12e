"""Bounded vendor rows: settled items leave the row, and no figure a view shows changes by it.

The reference is the same vendor's row with every item kept (built here from the deltas alone,
without the reducer), read by the same ``vendor_status``: for any date on or after the latest
business date the row has seen, open, overdue, paid and the aging buckets must be equal (the
last payment is kept as before, untouched by settling). ``open_items`` may differ only where a
reversal re-opened settled amounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import deltas, reducers
from ledger.chart import default_chart_path, load_chart
from ledger.integrity import LedgerSnapshot
from ledger.row_views import SETTLED_AFTER_DAYS
from ledger.rows import OpenItem, VendorRow

CHART = load_chart(default_chart_path())
START = date(2024, 1, 1)
VENDOR = "VEN-001"


@dataclass
class Reference:
    """The vendor's row as it was before rows were bounded: every item kept."""

    items: dict[str, OpenItem] = field(default_factory=dict)
    paid_total: Decimal = Decimal("0.00")

    def apply(self, delta: deltas.Delta) -> None:
        match delta:
            case deltas.VendorInvoice():
                existing = self.items.get(delta.item_id)
                amount = delta.amount + (existing.amount if existing is not None else 0)
                if amount == 0:
                    self.items.pop(delta.item_id, None)
                else:
                    self.items[delta.item_id] = OpenItem(
                        amount, delta.business_date, delta.due_date, delta.document_id
                    )
            case deltas.VendorPayment():
                self.paid_total += delta.amount

    def row(self) -> VendorRow:
        return VendorRow(items=MappingProxyType(dict(self.items)), paid_total=self.paid_total)


def invoice(item: str, amount: str, day: int, terms: int = 30) -> deltas.VendorInvoice:
    business = START + timedelta(days=day)
    return deltas.VendorInvoice(
        vendor_id=VENDOR,
        item_id=item,
        amount=Decimal(amount),
        business_date=business,
        due_date=business + timedelta(days=terms),
        document_id=f"PO-{item}",
    )


def payment(payment_id: str, amount: str, day: int) -> deltas.VendorPayment:
    return deltas.VendorPayment(
        vendor_id=VENDOR,
        payment_id=payment_id,
        amount=Decimal(amount),
        business_date=START + timedelta(days=day),
    )


def run(sequence: list[deltas.Delta]) -> tuple[VendorRow, Reference]:
    row: VendorRow | None = None
    reference = Reference()
    for offset, delta in enumerate(sequence):
        outcome = reducers.apply(row, delta, (0, offset, 0), CHART)
        assert outcome.applied
        assert isinstance(outcome.row, VendorRow)
        # Through its JSON form, as every table keeps it.
        encoded = orjson.loads(orjson.dumps(reducers.row_to_json_dict(outcome.row)))
        row = reducers.row_from_json_dict(deltas.VENDORS, encoded)  # type: ignore[assignment]
        assert row == outcome.row
        reference.apply(delta)
    assert row is not None
    return row, reference


def assert_same_figures(row: VendorRow, reference: Reference, *, reopened: bool) -> None:
    assert row.latest_date is not None
    for later in (0, 1, 45, 400):
        as_of = row.latest_date + timedelta(days=later)
        bounded = reducers.vendor_status(row, as_of)
        full = reducers.vendor_status(reference.row(), as_of)
        assert (bounded.open, bounded.overdue, bounded.paid, bounded.aging) == (
            full.open,
            full.overdue,
            full.paid,
            full.aging,
        ), as_of
        if not reopened:
            assert bounded.open_items == full.open_items


def test_a_settled_item_leaves_the_row_once_it_fell_due_over_90_days_before_the_latest_date() -> (
    None
):
    sequence: list[deltas.Delta] = [
        invoice("a", "100.00", 0),  # due day 30
        invoice("b", "50.00", 10),  # due day 40
        payment("p1", "100.00", 35),
        # Day 120: a is 90 days past due, not more; it stays.
        invoice("c", "10.00", 120),
    ]
    row, reference = run(sequence)
    assert set(row.items) == {"a", "b", "c"}
    # Day 121: a fell due 91 days before; paid in full, it leaves. b is not paid: it stays.
    row, reference = run([*sequence, invoice("d", "20.00", 121)])
    assert set(row.items) == {"b", "c", "d"}
    assert row.settled_total == Decimal("100.00")
    assert row.settled_due == START + timedelta(days=30)
    assert row.invoiced == Decimal("180.00")
    assert_same_figures(row, reference, reopened=False)


def test_a_row_stays_bounded_over_years_of_monthly_invoices_paid_a_month_later() -> None:
    sequence: list[deltas.Delta] = []
    for month in range(60):
        sequence.append(invoice(f"i{month}", "1000.00", month * 30))
        sequence.append(payment(f"p{month}", "1000.00", month * 30 + 29))
    row, reference = run(sequence)
    assert len(reference.items) == 60
    assert len(row.items) <= 5
    assert row.settled_total + sum(item.amount for item in row.items.values()) == Decimal(
        "60000.00"
    )
    assert_same_figures(row, reference, reopened=False)


def test_the_reversal_of_a_settled_receipt_is_a_credit_that_pays_the_next_items() -> None:
    sequence: list[deltas.Delta] = [
        invoice("a", "100.00", 0),
        payment("p1", "100.00", 20),
        invoice("b", "70.00", 200),  # a leaves the row here
    ]
    row, _ = run(sequence)
    assert "a" not in row.items
    # The receipt of a is reversed (a compensation negates the delta, dates and all): its
    # payment now pays b.
    row, reference = run([*sequence, invoice("a", "-100.00", 0)])
    # Old, the credit leaves the row at once: it nets the settled receipt out.
    assert set(row.items) == {"b"} and row.settled_total == 0
    status = reducers.vendor_status(row, START + timedelta(days=300))
    assert status.open == Decimal("-30.00")
    assert status.overdue == 0 and status.open_items == 0
    assert_same_figures(row, reference, reopened=False)


def test_a_payment_reversed_after_it_settled_items_reopens_them_in_the_last_bucket() -> None:
    sequence: list[deltas.Delta] = [
        invoice("a", "100.00", 0),
        invoice("b", "40.00", 5),
        payment("p1", "140.00", 20),
        invoice("c", "10.00", 200),  # a and b leave the row here
        payment("p1", "-140.00", 201),
    ]
    row, reference = run(sequence)
    assert set(row.items) == {"c"}
    status = reducers.vendor_status(row, START + timedelta(days=210))
    assert status.open == Decimal("150.00")
    assert status.aging.days_over_90 == Decimal("140.00")
    assert status.open_items == 2  # the re-opened settled amount counts as one item
    assert_same_figures(row, reference, reopened=True)


def test_a_row_written_before_rows_were_bounded_reads_and_settles() -> None:
    old = {
        "table": "vendors",
        "items": {
            "a": {
                "amount": "100.00",
                "business_date": "2024-01-01",
                "due_date": "2024-01-31",
                "document_id": "PO-a",
            }
        },
        "paid_total": "100.00",
        "last_payment": None,
        "watermarks": {},
    }
    row = reducers.row_from_json_dict(deltas.VENDORS, old)
    assert isinstance(row, VendorRow)
    assert row.latest_date is None and row.settled_total == 0
    outcome = reducers.apply(row, invoice("b", "5.00", 200), (0, 1, 0), CHART)
    assert isinstance(outcome.row, VendorRow)
    assert set(outcome.row.items) == {"b"} and outcome.row.settled_total == Decimal("100.00")


def test_the_ap_control_check_counts_settled_amounts() -> None:
    row, _ = run([invoice("a", "100.00", 0), payment("p1", "60.00", 20)])
    snapshot = LedgerSnapshot(vendors={VENDOR: row})
    assert snapshot.vendors[VENDOR].invoiced - row.paid_total == Decimal("40.00")


@st.composite
def vendor_histories(draw: st.DrawFn) -> list[deltas.Delta]:
    """Receipts, payments and reversals of both over up to two years, in date order."""
    sequence: list[deltas.Delta] = []
    receipts: list[deltas.VendorInvoice] = []
    payments: list[deltas.VendorPayment] = []
    day = 0
    for step in range(draw(st.integers(1, 60))):
        day += draw(st.integers(0, 40))
        kind = draw(st.sampled_from(["receipt", "receipt", "payment", "payment", "reverse"]))
        cents = draw(st.integers(1, 50_000))
        amount = f"{cents // 100}.{cents % 100:02d}"
        if kind == "receipt":
            made = invoice(f"i{step}", amount, day, terms=draw(st.sampled_from([0, 30, 60])))
            receipts.append(made)
            sequence.append(made)
        elif kind == "payment":
            paid = payment(f"p{step}", amount, day)
            payments.append(paid)
            sequence.append(paid)
        elif receipts and bool(draw(st.booleans())):
            target = receipts.pop(draw(st.integers(0, len(receipts) - 1)))
            sequence.append(
                deltas.VendorInvoice(
                    vendor_id=VENDOR,
                    item_id=target.item_id,
                    amount=-target.amount,  # a compensation negates the delta, dates kept
                    business_date=target.business_date,
                    due_date=target.due_date,
                    document_id=target.document_id,
                )
            )
        elif payments:
            target_payment = payments.pop(draw(st.integers(0, len(payments) - 1)))
            sequence.append(payment(target_payment.payment_id, f"-{target_payment.amount}", day))
    return sequence


@settings(max_examples=300, deadline=None)
@given(vendor_histories().filter(bool))
def test_settling_never_changes_what_the_views_show(sequence: list[deltas.Delta]) -> None:
    row, reference = run(sequence)
    assert row.invoiced == reference.row().invoiced
    assert SETTLED_AFTER_DAYS == 90
    assert_same_figures(row, reference, reopened=row.settled_total > 0)
