import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import deltas
from ledger.deltas import negate
from ledger.reducers import (
    AccountBalance,
    Aging,
    BudgetRow,
    CustomerRow,
    Payment,
    PeriodRow,
    ProductRow,
    ProjectRow,
    account_balance,
    alert_from_json_dict,
    alert_to_avro_dict,
    alert_to_json_dict,
    apply,
    budget_status,
    credit_status,
    row_from_json_dict,
    row_to_json_dict,
    trial_balance,
    vendor_status,
)

from . import fixtures

D = Decimal
SCHEMA_DIR = Path(__file__).parents[3] / "schemas"
EVENT_ID = fixtures.PAYROLL_ID


class Table:
    """A hand-written fake of one table key: applies deltas at increasing positions."""

    def __init__(self, partition=0):
        self.row: Any = None
        self.partition = partition
        self.offset = 0
        self.alerts = []

    def apply(self, delta, position=None, event_id=EVENT_ID):
        if position is None:
            self.offset += 1
            position = (self.partition, self.offset, 0)
        outcome = apply(self.row, delta, position, fixtures.chart(), source_event_id=event_id)
        self.row = outcome.row
        self.alerts.extend(outcome.alerts)
        return outcome


def actual(amount, period="2024-Q1"):
    return deltas.BudgetActual("ENG-001", "SALARY", period, D(amount))


def budget(amount, period="2024-Q1"):
    return deltas.BudgetSet("ENG-001", "SALARY", period, D(amount))


def test_a_delta_at_or_below_the_watermark_is_not_applied_again():
    table = Table()
    first = table.apply(actual("100.00"), (0, 5, 1))
    assert first.applied
    again = table.apply(actual("100.00"), (0, 5, 1))
    older = table.apply(actual("100.00"), (0, 5, 0))
    assert not again.applied and not older.applied
    assert again.row is first.row
    assert table.row.actual == D("100.00")


def test_partitions_keep_separate_watermarks():
    table = Table()
    table.apply(actual("100.00"), (0, 5, 0))
    assert table.apply(actual("1.00"), (1, 2, 0)).applied
    assert table.apply(actual("1.00"), (0, 5, 1)).applied
    assert table.row.actual == D("102.00")
    assert dict(table.row.watermarks) == {0: (5, 1), 1: (2, 0)}


def test_budget_alerts_only_when_utilisation_crosses_a_threshold():
    table = Table()
    table.apply(budget("100000.00"))
    assert table.apply(actual("85000.00")).alerts == ()
    near = table.apply(actual("5000.00")).alerts
    assert [alert.alert_type for alert in near] == ["budget_near"]
    assert near[0].severity == "warning"
    assert table.apply(actual("5000.00")).alerts == ()
    assert table.apply(actual("5000.00")).alerts == ()  # exactly 100 % is not exceeded
    exceeded = table.apply(actual("0.01")).alerts
    assert [alert.alert_type for alert in exceeded] == ["budget_exceeded"]
    assert (exceeded[0].amount, exceeded[0].limit) == (D("100000.01"), D("100000.00"))
    assert (exceeded[0].subject, exceeded[0].period) == ("ENG-001", "2024-Q1")
    assert exceeded[0].source_event_id == EVENT_ID
    assert table.apply(actual("1000.00")).alerts == ()


def test_a_jump_past_both_thresholds_raises_only_the_exceeded_alert():
    table = Table()
    table.apply(budget("100.00"))
    assert [alert.alert_type for alert in table.apply(actual("150.00")).alerts] == [
        "budget_exceeded"
    ]


def test_falling_back_and_crossing_again_alerts_again():
    table = Table()
    table.apply(budget("100.00"))
    table.apply(actual("101.00"))
    assert table.apply(actual("-101.00")).alerts == ()
    assert [alert.alert_type for alert in table.apply(actual("101.00")).alerts] == [
        "budget_exceeded"
    ]


def test_setting_a_budget_below_the_actual_alerts():
    table = Table()
    table.apply(actual("500.00"))
    assert table.alerts == []
    assert [alert.alert_type for alert in table.apply(budget("400.00")).alerts] == [
        "budget_exceeded"
    ]


def test_the_posting_is_never_refused_by_the_budget():
    table = Table()
    table.apply(budget("0.00"))
    outcome = table.apply(actual("10.00"))
    assert outcome.applied and outcome.row.actual == D("10.00")
    assert [alert.alert_type for alert in outcome.alerts] == ["budget_exceeded"]


def test_alert_ids_are_deterministic_per_event_type_and_row():
    def exceeded(period):
        table = Table()
        table.apply(budget("1.00", period))
        return table.apply(actual("2.00", period)).alerts[0]

    assert exceeded("2024-Q1").alert_id == exceeded("2024-Q1").alert_id
    assert exceeded("2024-Q1").alert_id != exceeded("2024-03").alert_id


def test_credit_limit_breach_alerts_when_exposure_goes_over_the_limit():
    table = Table()
    table.apply(deltas.CreditLimitSet("CUS-001", D("30000.00")))
    assert table.apply(deltas.CustomerExposure("CUS-001", D("25000.00"))).alerts == ()
    breach = table.apply(deltas.CustomerExposure("CUS-001", D("10000.00"))).alerts
    assert [(alert.alert_type, alert.subject, alert.amount, alert.limit) for alert in breach] == [
        ("credit_limit_breached", "CUS-001", D("35000.00"), D("30000.00"))
    ]
    assert table.apply(deltas.CustomerExposure("CUS-001", D("1.00"))).alerts == ()


def test_lowering_a_credit_limit_below_the_exposure_alerts():
    table = Table()
    table.apply(deltas.CustomerExposure("CUS-001", D("25000.00")))
    alerts = table.apply(deltas.CreditLimitSet("CUS-001", D("20000.00"))).alerts
    assert [alert.alert_type for alert in alerts] == ["credit_limit_breached"]


def test_customer_payments_lower_exposure_and_are_remembered():
    table = Table()
    table.apply(deltas.CustomerExposure("CUS-001", D("25000.00")))
    payment = deltas.CustomerExposure("CUS-001", D("-10000.00"), "RCPT-1", date(2024, 3, 22))
    table.apply(payment)
    assert (table.row.exposure, table.row.payments_total) == (D("15000.00"), D("10000.00"))
    assert table.row.last_payment == Payment("RCPT-1", D("10000.00"), date(2024, 3, 22))
    table.apply(negate(payment))
    assert (table.row.exposure, table.row.payments_total) == (D("25000.00"), D("0.00"))
    assert table.row.last_payment is None


def vendor_table():
    table = Table()
    for item_id, amount, due in [
        ("receipt-1", "1000.00", date(2024, 1, 10)),
        ("receipt-2", "2000.00", date(2024, 2, 20)),
        ("receipt-3", "4000.00", date(2024, 3, 30)),
        ("receipt-4", "8000.00", date(2024, 4, 30)),
    ]:
        table.apply(deltas.VendorInvoice("VEN-001", item_id, D(amount), due, due))
    return table


def test_vendor_payments_are_allocated_to_the_oldest_items_first():
    table = vendor_table()
    table.apply(deltas.VendorPayment("VEN-001", "PAY-1", D("1500.00"), date(2024, 4, 1)))
    status = vendor_status(table.row, as_of=date(2024, 4, 15))
    assert status.open == D("13500.00")
    assert status.paid == D("1500.00")
    assert status.overdue == D("5500.00")
    assert status.aging == Aging(
        current=D("8000.00"),
        days_1_30=D("4000.00"),
        days_31_60=D("1500.00"),
        days_61_90=D("0.00"),
        days_over_90=D("0.00"),
    )
    assert status.open_items == 3
    assert status.last_payment == Payment("PAY-1", D("1500.00"), date(2024, 4, 1))


def test_a_very_old_item_ages_past_ninety_days():
    table = vendor_table()
    status = vendor_status(table.row, as_of=date(2024, 4, 10))
    assert status.aging.days_over_90 == D("1000.00")
    assert status.aging.days_61_90 == D("0.00")


def test_an_overpaid_vendor_shows_negative_open_and_no_aging():
    table = Table()
    table.apply(
        deltas.VendorInvoice("VEN-001", "r", D("10.00"), date(2024, 1, 1), date(2024, 1, 31))
    )
    table.apply(deltas.VendorPayment("VEN-001", "p", D("15.00"), date(2024, 1, 5)))
    status = vendor_status(table.row, as_of=date(2024, 3, 1))
    assert status.open == D("-5.00")
    assert status.aging == Aging()
    assert status.overdue == D("0.00")


def test_reversing_a_receipt_closes_its_item():
    table = Table()
    invoice = deltas.VendorInvoice("VEN-001", "r", D("10.00"), date(2024, 1, 1), date(2024, 1, 31))
    table.apply(invoice)
    table.apply(negate(invoice))
    assert dict(table.row.items) == {}


def test_budget_status_reports_available_utilisation_and_fit():
    row = BudgetRow(amount=D("500000.00"), actual=D("125000.00"))
    salary = fixtures.chart().category("SALARY")
    status = budget_status(row, D("375000.00"), category=salary)
    assert (status.budget, status.actual, status.available) == (
        D("500000.00"),
        D("125000.00"),
        D("375000.00"),
    )
    assert status.utilisation == D("0.2500")
    assert status.status == "ok"
    assert status.fits is True
    assert budget_status(row, D("375000.01"), category=salary).fits is False
    assert budget_status(row, None, category=salary).fits is None


def test_budget_status_without_a_budget_says_so():
    status = budget_status(None, D("1.00"), category=fixtures.chart().category("SALARY"))
    assert (status.status, status.budget, status.fits, status.actual) == (
        "no_budget",
        None,
        None,
        D("0.00"),
    )


def test_budget_status_turns_near_at_the_warn_threshold():
    salary = fixtures.chart().category("SALARY")
    assert budget_status(BudgetRow(D("100.00"), D("90.00")), None, category=salary).status == "near"
    assert budget_status(BudgetRow(D("100.00"), D("89.99")), None, category=salary).status == "ok"
    over = budget_status(BudgetRow(D("100.00"), D("100.01")), None, category=salary)
    assert over.status == "exceeded"
    zero = budget_status(BudgetRow(D("0.00"), D("0.00")), None, category=salary)
    assert (zero.status, zero.utilisation) == ("ok", None)


@pytest.mark.parametrize(
    ("limit", "exposure", "status", "available"),
    [
        (None, "10.00", "no_limit", None),
        ("30000.00", "25000.00", "ok", "5000.00"),
        ("30000.00", "27000.00", "near", "3000.00"),
        ("30000.00", "30000.00", "near", "0.00"),
        ("30000.00", "30000.01", "over", "-0.01"),
        ("0.00", "0.00", "ok", "0.00"),
    ],
)
def test_credit_status_compares_exposure_with_the_limit(limit, exposure, status, available):
    row = CustomerRow(credit_limit=None if limit is None else D(limit), exposure=D(exposure))
    result = credit_status(row, near_ratio=fixtures.chart().credit_near_ratio)
    assert result.status == status
    assert result.available == (None if available is None else D(available))


def test_trial_balance_lists_accounts_and_nets_to_zero():
    table = Table()
    table.apply(
        deltas.PeriodPosting(
            "2024-03", (("1100", D("25000.00"), D("0.00")), ("4000", D("0.00"), D("25000.00")))
        )
    )
    table.apply(
        deltas.PeriodPosting(
            "2024-03", (("1000", D("25000.00"), D("0.00")), ("1100", D("0.00"), D("25000.00")))
        )
    )
    balance = trial_balance(table.row)
    assert [(line.account, line.balance) for line in balance.lines] == [
        ("1000", D("25000.00")),
        ("1100", D("0.00")),
        ("4000", D("-25000.00")),
    ]
    assert balance.balanced and balance.entry_count == 2
    assert balance.total_debit == balance.total_credit == D("50000.00")


def test_a_delta_for_another_table_is_a_bug():
    with pytest.raises(TypeError):
        apply(
            BudgetRow(), deltas.CustomerExposure("CUS-001", D("1.00")), (0, 1, 0), fixtures.chart()
        )


ROWS = [
    BudgetRow(),
    BudgetRow(amount=D("500000.00"), actual=D("125000.00"), watermarks={0: (5, 1), 3: (9, 0)}),
    CustomerRow(
        credit_limit=D("30000.00"),
        exposure=D("25000.00"),
        payments_total=D("1.00"),
        last_payment=Payment("RCPT-1", D("1.00"), date(2024, 3, 22)),
    ),
    vendor_table().row,
    PeriodRow(accounts={"1100": (D("1.00"), D("0.00"))}, entry_count=1),
    ProjectRow(hours=D("8.00"), billable_amount=D("1125.00")),
    ProductRow(quantity=1000, cost=D("45000.00")),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: type(row).__name__)
def test_every_row_round_trips_through_json(row):
    encoded = json.loads(json.dumps(row_to_json_dict(row)))
    assert row_from_json_dict(row.table, encoded) == row
    assert type(row).from_json_dict(row.to_json_dict()) == row


def test_a_row_of_another_table_is_refused():
    with pytest.raises(ValueError):
        CustomerRow.from_json_dict(BudgetRow().to_json_dict())
    with pytest.raises(ValueError):
        row_from_json_dict("ledgers", BudgetRow().to_json_dict())


def test_account_balance_reads_one_account_of_a_period():
    row = PeriodRow(accounts={"1100": (D("25000.00"), D("10000.00"))}, entry_count=2)
    assert account_balance(row, "1100") == AccountBalance(
        debit=D("25000.00"), credit=D("10000.00"), balance=D("15000.00")
    )
    assert account_balance(row, "4000") is None
    assert account_balance(None, "1100") is None


def test_an_alert_matches_the_alert_schema_and_round_trips_through_json():
    table = Table()
    table.apply(budget("1.00"))
    alert = table.apply(actual("2.00")).alerts[0]
    assert alert_from_json_dict(json.loads(json.dumps(alert_to_json_dict(alert)))) == alert
    import fastavro

    schema_path = SCHEMA_DIR / "fin_alerts_alert.avsc"
    assert schema_path.exists(), f"missing {schema_path}"
    schema = fastavro.parse_schema(json.loads(schema_path.read_text()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, alert_to_avro_dict(alert))
    buffer.seek(0)
    decoded: Any = fastavro.schemaless_reader(buffer, schema)
    assert str(decoded["alert_id"]) == alert.alert_id
    assert decoded["amount"] == D("2.00")
