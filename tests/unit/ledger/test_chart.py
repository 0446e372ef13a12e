from decimal import Decimal
from pathlib import Path

import pytest

from errors import ConfigurationError
from ledger.chart import AccountType, default_chart_path, load_chart, parse_chart
from ledger.events import POSTING_EVENT_TYPES

DEFAULT_TEXT = default_chart_path().read_text(encoding="utf-8")


def chart_with(old: str, new: str):
    assert old in DEFAULT_TEXT, old
    return parse_chart(DEFAULT_TEXT.replace(old, new, 1))


def test_the_shipped_chart_loads_with_the_default_posting_map():
    chart = load_chart(default_chart_path())
    assert chart.rule_version == "2026.1"
    assert chart.default_currency == "USD"
    assert set(chart.posting) == set(POSTING_EVENT_TYPES)
    assert chart.account(chart.ar_control_account).type is AccountType.ASSET
    assert chart.account(chart.ap_control_account).type is AccountType.LIABILITY
    assert chart.account(chart.cash_account).name == "Cash"
    assert chart.payroll_default_department == "UNALLOCATED"
    assert chart.departments == {
        "ENG-001",
        "SALES-001",
        "OPS-001",
        "FIN-001",
        "HR-001",
        "UNALLOCATED",
    }
    salary = chart.category("SALARY")
    assert (salary.warn, salary.stop) == (Decimal("0.90"), Decimal("1.00"))
    assert {"TRAINING", "TRAVEL"} <= set(chart.budget_categories)


def test_default_chart_path_points_at_the_config_directory():
    assert default_chart_path() == Path(__file__).parents[3] / "config" / "chart_of_accounts.toml"


def test_an_unknown_account_in_the_posting_map_is_named():
    with pytest.raises(
        ConfigurationError, match=r"posting\.'pm\.time\.logged'\.debit: unknown account '9999'"
    ):
        chart_with(
            '[posting."pm.time.logged"]\ndebit = "1150"',
            '[posting."pm.time.logged"]\ndebit = "9999"',
        )


def test_a_duplicate_account_code_is_named():
    with pytest.raises(ConfigurationError, match="duplicate account code '1150'"):
        chart_with('code = "1200"', 'code = "1150"')


def test_a_warn_threshold_above_stop_is_refused():
    with pytest.raises(
        ConfigurationError,
        match=r"budget_categories\.SALARY: warn 1\.20 must not be above stop 1\.00",
    ):
        chart_with('warn = "0.90"', 'warn = "1.20"')


@pytest.mark.parametrize("value", ['"0"', '"-0.5"', '"abc"', "true", '"90"', '"NaN"'])
def test_a_bad_threshold_is_refused(value):
    with pytest.raises(ConfigurationError, match=r"budget_categories\.SALARY\.stop"):
        chart_with('stop = "1.00"', f"stop = {value}")


def test_a_threshold_written_as_a_toml_number_never_becomes_a_float():
    chart = chart_with('warn = "0.90"', "warn = 0.90")
    assert chart.category("SALARY").warn == Decimal("0.90")
    assert isinstance(chart.category("SALARY").warn, Decimal)


def test_an_unknown_event_type_in_the_posting_map_is_refused():
    with pytest.raises(ConfigurationError, match=r"unknown event type 'hr\.bonus\.paid'"):
        parse_chart(DEFAULT_TEXT + '\n[posting."hr.bonus.paid"]\ndebit = "6100"\ncredit = "2100"\n')


def test_a_missing_posting_rule_is_refused():
    with pytest.raises(ConfigurationError, match=r"posting\.'pm\.time\.logged' is missing"):
        chart_with('[posting."pm.time.logged"]', '[posting."pm.time.unused"]')


def test_sales_must_post_to_the_receivables_control_account():
    with pytest.raises(ConfigurationError, match=r"must be the control\.accounts_receivable"):
        chart_with(
            '[posting."crm.sales_order.completed"]\ndebit = "1100"',
            '[posting."crm.sales_order.completed"]\ndebit = "1150"',
        )


def test_the_payroll_default_department_must_be_known():
    with pytest.raises(ConfigurationError, match="payroll default 'NOWHERE'"):
        chart_with('default_department = "UNALLOCATED"', 'default_department = "NOWHERE"')


def test_a_control_account_of_the_wrong_type_is_refused():
    with pytest.raises(
        ConfigurationError, match=r"control\.accounts_payable: account '1200' is asset"
    ):
        chart_with('accounts_payable = "2000"', 'accounts_payable = "1200"')


def test_every_problem_is_reported_at_once():
    text = DEFAULT_TEXT.replace('code = "1200"', 'code = "1150"', 1).replace(
        'stop = "1.10"', 'stop = "-1"', 1
    )
    with pytest.raises(ConfigurationError) as raised:
        parse_chart(text)
    assert "duplicate account code" in str(raised.value)
    assert "TRAVEL.stop" in str(raised.value)


def test_an_unknown_top_level_key_is_refused_as_a_likely_typo():
    with pytest.raises(ConfigurationError, match="unknown key 'rule_verison'"):
        parse_chart(DEFAULT_TEXT.replace("rule_version =", "rule_verison =", 1))


def test_invalid_toml_and_a_missing_file_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="invalid TOML"):
        parse_chart("rule_version = ")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_chart(tmp_path / "absent.toml")
