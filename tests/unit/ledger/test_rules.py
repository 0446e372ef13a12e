from datetime import date
from decimal import Decimal

import pytest

from ledger import deltas
from ledger.deltas import NotReversibleError
from ledger.entries import SourceRef, entry_id_for
from ledger.rules import Posting, post, posting_from_json_dict, posting_to_json_dict, reverse

from . import fixtures

D = Decimal


def post_record(record, partition=0, offset=7):
    event = fixtures.event_of(record)
    return post(event, fixtures.source_of(event, partition, offset), fixtures.chart())


def lines_of(posting):
    assert posting.entry is not None
    return [
        (line.account, line.debit, line.credit, dict(line.dimensions))
        for line in posting.entry.lines
    ]


def period_deltas(posting):
    return [delta for delta in posting.deltas if isinstance(delta, deltas.PeriodPosting)]


def test_payroll_of_125000_debits_salaries_and_credits_accrued_payroll():
    posting = post_record(fixtures.payroll_record())
    assert lines_of(posting) == [
        ("6100", D("125000.00"), D("0.00"), {"department": "UNALLOCATED", "category": "SALARY"}),
        ("2100", D("0.00"), D("125000.00"), {"payroll": "PAY-2024-003"}),
    ]
    assert posting.entry.business_date == date(2024, 3, 15)
    assert (posting.entry.period, posting.entry.quarter) == ("2024-03", "2024-Q1")


def test_payroll_without_a_department_charges_the_unallocated_budget_for_month_and_quarter():
    posting = post_record(fixtures.payroll_record())
    actuals = [delta for delta in posting.deltas if isinstance(delta, deltas.BudgetActual)]
    assert actuals == [
        deltas.BudgetActual("UNALLOCATED", "SALARY", "2024-03", D("125000.00")),
        deltas.BudgetActual("UNALLOCATED", "SALARY", "2024-Q1", D("125000.00")),
    ]


def test_payroll_with_department_lines_debits_salaries_per_department():
    posting = post_record(
        fixtures.payroll_record(
            department_id="HR-001",
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": D("100000.00")},
                {"department_id": "SALES-001", "category": "SALARY", "amount": D("20000.00")},
                {"department_id": "ENG-001", "category": "SALARY", "amount": D("5000.00")},
            ],
        )
    )
    assert lines_of(posting) == [
        ("6100", D("105000.00"), D("0.00"), {"department": "ENG-001", "category": "SALARY"}),
        ("6100", D("20000.00"), D("0.00"), {"department": "SALES-001", "category": "SALARY"}),
        ("2100", D("0.00"), D("125000.00"), {"payroll": "PAY-2024-003"}),
    ]
    budget_keys = [delta.key for delta in posting.deltas if isinstance(delta, deltas.BudgetActual)]
    assert budget_keys == [
        "ENG-001|SALARY|2024-03",
        "ENG-001|SALARY|2024-Q1",
        "SALES-001|SALARY|2024-03",
        "SALES-001|SALARY|2024-Q1",
    ]


def test_payroll_with_only_a_department_id_charges_that_department():
    posting = post_record(fixtures.payroll_record(department_id="ENG-001"))
    assert posting.deltas[0] == deltas.BudgetActual("ENG-001", "SALARY", "2024-03", D("125000.00"))


def test_goods_received_of_15750_debits_inventory_and_credits_the_vendor_payable():
    posting = post_record(fixtures.goods_record())
    assert lines_of(posting) == [
        ("1200", D("15750.00"), D("0.00"), {"vendor": "VEN-001"}),
        ("2000", D("0.00"), D("15750.00"), {"vendor": "VEN-001"}),
    ]
    assert posting.deltas[0] == deltas.VendorInvoice(
        vendor_id="VEN-001",
        item_id=fixtures.GOODS_ID,
        amount=D("15750.00"),
        business_date=date(2024, 3, 15),
        due_date=date(2024, 4, 14),
        document_id="PO-2024-001234",
    )


def test_sales_order_of_25000_debits_the_customer_receivable_and_credits_revenue():
    posting = post_record(fixtures.sales_record())
    assert lines_of(posting) == [
        ("1100", D("25000.00"), D("0.00"), {"customer": "CUS-001"}),
        ("4000", D("0.00"), D("25000.00"), {"customer": "CUS-001"}),
    ]
    assert posting.deltas[0] == deltas.CustomerExposure("CUS-001", D("25000.00"))


def test_production_of_45000_debits_finished_goods_and_credits_work_in_progress():
    posting = post_record(fixtures.production_record())
    assert lines_of(posting) == [
        ("1400", D("45000.00"), D("0.00"), {"product": "WIDGET-A"}),
        ("1300", D("0.00"), D("45000.00"), {"product": "WIDGET-A"}),
    ]
    assert posting.deltas[0] == deltas.ProductionCost("WIDGET-A", 1000, D("45000.00"))


def test_time_logged_of_1125_debits_unbilled_receivables_and_credits_services_revenue():
    posting = post_record(fixtures.time_record())
    assert lines_of(posting) == [
        ("1150", D("1125.00"), D("0.00"), {"project": "PROJ-CLIENT-A-001"}),
        ("4100", D("0.00"), D("1125.00"), {"project": "PROJ-CLIENT-A-001"}),
    ]
    assert posting.deltas[0] == deltas.ProjectTime("PROJ-CLIENT-A-001", D("8.00"), D("1125.00"))


def test_vendor_payment_debits_the_payable_and_credits_cash():
    posting = post_record(fixtures.vendor_payment_record())
    assert lines_of(posting) == [
        ("2000", D("15750.00"), D("0.00"), {"vendor": "VEN-001"}),
        ("1000", D("0.00"), D("15750.00"), {"vendor": "VEN-001"}),
    ]
    assert posting.deltas[0] == deltas.VendorPayment(
        "VEN-001", "PAY-VEN-001", D("15750.00"), date(2024, 3, 20)
    )


def test_customer_payment_debits_cash_and_lowers_the_customer_exposure():
    posting = post_record(fixtures.customer_payment_record())
    assert lines_of(posting) == [
        ("1000", D("25000.00"), D("0.00"), {"customer": "CUS-001"}),
        ("1100", D("0.00"), D("25000.00"), {"customer": "CUS-001"}),
    ]
    assert posting.deltas[0] == deltas.CustomerExposure(
        "CUS-001", D("-25000.00"), payment_id="RCPT-001", business_date=date(2024, 3, 22)
    )


def test_budget_set_posts_no_entry_and_one_budget_delta():
    posting = post_record(fixtures.budget_record())
    assert posting == Posting(
        entry=None, deltas=(deltas.BudgetSet("ENG-001", "SALARY", "2024-Q1", D("500000.00")),)
    )


def test_credit_limit_set_posts_no_entry_and_one_customer_delta():
    posting = post_record(fixtures.credit_limit_record())
    assert posting == Posting(entry=None, deltas=(deltas.CreditLimitSet("CUS-001", D("30000.00")),))


@pytest.mark.parametrize(
    "record",
    [
        fixtures.payroll_record(),
        fixtures.goods_record(),
        fixtures.sales_record(),
        fixtures.production_record(),
        fixtures.time_record(),
        fixtures.vendor_payment_record(),
        fixtures.customer_payment_record(),
    ],
    ids=lambda record: record["event_type"],
)
def test_every_entry_feeds_its_month_and_its_quarter_row(record):
    posting = post_record(record)
    month, quarter = period_deltas(posting)
    assert (month.period, quarter.period) == (posting.entry.period, posting.entry.quarter)
    assert (
        month.lines
        == quarter.lines
        == tuple((line.account, line.debit, line.credit) for line in posting.entry.lines)
    )


def test_the_entry_records_its_source_and_a_deterministic_id():
    posting = post_record(fixtures.sales_record(), partition=3, offset=99)
    assert posting.entry.source == SourceRef(
        fixtures.SALES_ID, "crm.sales_order.completed", "crm.events", 3, 99
    )
    assert posting.entry.entry_id == entry_id_for(fixtures.SALES_ID, "2026.1")
    assert post_record(fixtures.sales_record(), partition=3, offset=99) == posting


def test_a_compensation_is_not_posted_but_reversed():
    with pytest.raises(TypeError):
        post_record(fixtures.compensation_record())


def compensation_source():
    return SourceRef(fixtures.COMPENSATION_ID, "fin.compensation.requested", "fin.commands", 0, 12)


def test_reversing_a_sale_swaps_the_lines_and_negates_the_exposure():
    original = post_record(fixtures.sales_record())
    reversal = reverse(original, fixtures.COMPENSATION_ID, compensation_source())
    assert reversal.entry is not None
    assert reversal.entry.reverses_entry_id == original.entry.entry_id
    assert reversal.entry.entry_id == entry_id_for(fixtures.COMPENSATION_ID, "2026.1")
    assert reversal.entry.business_date == original.entry.business_date
    assert lines_of(reversal) == [
        ("1100", D("0.00"), D("25000.00"), {"customer": "CUS-001"}),
        ("4000", D("25000.00"), D("0.00"), {"customer": "CUS-001"}),
    ]
    assert reversal.deltas[0] == deltas.CustomerExposure("CUS-001", D("-25000.00"))
    period_posting = reversal.deltas[1]
    assert isinstance(period_posting, deltas.PeriodPosting)
    assert period_posting.lines == (
        ("1100", D("0.00"), D("25000.00")),
        ("4000", D("25000.00"), D("0.00")),
    )


@pytest.mark.parametrize(
    "record",
    [fixtures.budget_record(), fixtures.credit_limit_record()],
    ids=lambda record: record["event_type"],
)
def test_a_set_command_cannot_be_reversed(record):
    with pytest.raises(NotReversibleError):
        reverse(post_record(record), fixtures.COMPENSATION_ID, compensation_source())


def test_a_posting_round_trips_through_json():
    posting = post_record(fixtures.payroll_record(department_id="ENG-001"))
    assert posting_from_json_dict(posting_to_json_dict(posting)) == posting
    command = post_record(fixtures.budget_record())
    assert posting_from_json_dict(posting_to_json_dict(command)) == command
