"""The reference ledger itself: what the end-to-end test trusts it to compute."""

from __future__ import annotations

from decimal import Decimal

from . import fixtures
from .reference import ReferenceLedger


def test_the_reference_books_an_entry_in_its_month_and_its_quarter() -> None:
    reference = ReferenceLedger.of([fixtures.payroll_record()])

    gross = Decimal("125000.00")
    for period in ("2024-03", "2024-Q1"):
        assert reference.trial_balance(period) == {
            "6100": (gross, Decimal("0.00")),
            "2100": (Decimal("0.00"), gross),
        }
        assert reference.period_entries[period] == 1
    assert reference.periods() == {"2024-03", "2024-Q1"}
    assert reference.entries == 1


def test_a_reversal_in_the_reference_grows_turnover_and_returns_every_balance_to_zero() -> None:
    sale = fixtures.sales_record()

    reference = ReferenceLedger.of([sale], compensated=[sale["event_id"]])

    amount = sale["data"]["total_amount"]
    assert reference.trial_balance("2024-03") == {
        "1100": (amount, amount),
        "4000": (amount, amount),
    }
    assert reference.account_balances() == {}
    assert reference.entries == 2 and reference.period_entries["2024-Q1"] == 2
    assert reference.exposures[sale["data"]["customer_id"]] == 0


def test_the_reference_counts_vendor_payments_as_paid_and_no_longer_open() -> None:
    receipt = fixtures.goods_record()
    payment = fixtures.vendor_payment_record()
    vendor = receipt["data"]["vendor_id"]
    assert payment["data"]["vendor_id"] == vendor

    reference = ReferenceLedger.of([receipt, payment])

    paid = payment["data"]["amount"]
    assert reference.vendor_paid[vendor] == paid
    assert reference.vendor_open[vendor] == receipt["data"]["total_amount"] - paid


def test_set_commands_make_no_entry_in_the_reference() -> None:
    reference = ReferenceLedger.of([fixtures.budget_record(), fixtures.credit_limit_record()])

    assert reference.entries == 0
    assert reference.periods() == set()
    assert reference.budgets and reference.credit_limits
