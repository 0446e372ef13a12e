from decimal import Decimal

from ledger.integrity import (
    AP_CONTROL,
    AR_CONTROL,
    OUTCOME_COUNTS,
    QUARTER_MATCHES_MONTHS,
    TRIAL_BALANCE,
    LedgerSnapshot,
    OutcomeCounts,
    balance_over_months,
    check_ap_control,
    check_ar_control,
    check_outcome_counts,
    check_trial_balance,
    integrity_alert,
    run_checks,
)
from ledger.reducers import CustomerRow, OpenItem, PeriodRow, VendorRow

from . import fixtures

D = Decimal


def period(**accounts):
    return PeriodRow(
        accounts={
            code.lstrip("a"): (D(debit), D(credit)) for code, (debit, credit) in accounts.items()
        },
        entry_count=1,
    )


def test_a_period_whose_debits_equal_its_credits_passes():
    assert (
        check_trial_balance("2024-03", period(a1100=("5.00", "0.00"), a4000=("0.00", "5.00"))) == []
    )


def test_a_period_that_does_not_net_to_zero_is_reported():
    errors = check_trial_balance("2024-03", period(a1100=("5.00", "0.00")))
    assert [error.check for error in errors] == [TRIAL_BALANCE]
    assert "2024-03" in errors[0].detail


def test_receivables_must_equal_the_ar_control_account():
    assert check_ar_control({"CUS-001": D("5.00"), "CUS-002": D("2.00")}, D("7.00")) == []
    assert [error.check for error in check_ar_control({"CUS-001": D("5.00")}, D("7.00"))] == [
        AR_CONTROL
    ]


def test_payables_must_equal_the_ap_control_account():
    assert check_ap_control({"VEN-001": D("3.00")}, D("3.00")) == []
    assert [error.check for error in check_ap_control({}, D("3.00"))] == [AP_CONTROL]


def test_every_event_has_exactly_one_outcome():
    assert check_outcome_counts(OutcomeCounts(10, 7, 2, 1)) == []
    errors = check_outcome_counts(OutcomeCounts(10, 7, 2, 0))
    assert [error.check for error in errors] == [OUTCOME_COUNTS]


def consistent_snapshot():
    sale = period(a1100=("25000.00", "0.00"), a4000=("0.00", "25000.00"))
    receipt = period(a1200=("15750.00", "0.00"), a2000=("0.00", "15750.00"))
    both = PeriodRow(accounts={**sale.accounts, **receipt.accounts}, entry_count=2)
    return LedgerSnapshot(
        periods={"2024-03": both, "2024-Q1": both},
        customers={"CUS-001": CustomerRow(exposure=D("25000.00"))},
        vendors={
            "VEN-001": VendorRow(
                items={
                    "r": OpenItem(
                        D("15750.00"), fixtures.RECEIVED_AT.date(), fixtures.RECEIVED_AT.date()
                    )
                }
            )
        },
        counts=OutcomeCounts(2, 2, 0, 0),
    )


def test_a_consistent_snapshot_passes_every_check():
    assert run_checks(consistent_snapshot(), fixtures.chart()) == []


def test_balances_are_summed_over_months_only():
    snapshot = consistent_snapshot()
    assert balance_over_months(snapshot.periods, "1100") == D("25000.00")


def test_a_snapshot_with_a_drifted_sub_ledger_and_quarter_reports_both():
    snapshot = consistent_snapshot()
    drifted = LedgerSnapshot(
        periods={
            **snapshot.periods,
            "2024-Q1": period(a1100=("1.00", "0.00"), a4000=("0.00", "1.00")),
        },
        customers={"CUS-001": CustomerRow(exposure=D("24000.00"))},
        vendors=snapshot.vendors,
    )
    checks = [error.check for error in run_checks(drifted, fixtures.chart())]
    assert checks == [QUARTER_MATCHES_MONTHS, AR_CONTROL]


def test_an_integrity_error_becomes_a_deterministic_critical_alert():
    error = check_outcome_counts(OutcomeCounts(1, 0, 0, 0))[0]
    alert = integrity_alert(error)
    assert alert.alert_type == "integrity_failure"
    assert alert.severity == "critical"
    assert alert.alert_id == integrity_alert(error).alert_id
