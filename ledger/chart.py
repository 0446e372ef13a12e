"""The chart of accounts, posting map and budget thresholds, loaded from TOML once at start.

``load_chart`` checks everything before a single event is posted: a wrong account code in the
posting map would otherwise be discovered only when an event of that type arrives, after the
worker has already committed offsets for other events. Every problem found is reported in one
``ConfigurationError`` so an operator fixes the file in one pass.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from errors import ConfigurationError
from ledger.contract import (
    CUSTOMER_PAYMENT_RECEIVED,
    GOODS_RECEIVED,
    SALES_ORDER_COMPLETED,
    VENDOR_PAYMENT_MADE,
)
from ledger.events import POSTING_EVENT_TYPES
from ledger.master import CLOSED_POLICIES, DepartmentRegister, PeriodRegister

CHART_FILE_NAME = "chart_of_accounts.toml"

# Ratios above this are almost certainly a typo (90 instead of 0.90).
THRESHOLD_RATIO_MAX = Decimal(10)

_ACCOUNT_CODE = re.compile(r"[0-9]{3,10}")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# Names become parts of table keys joined with "|", so they must not contain it (or spaces).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RULE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

_TOP_LEVEL_KEYS = frozenset(
    {
        "rule_version",
        "default_currency",
        "currencies",
        "control",
        "payroll",
        "credit",
        "accounts",
        "posting",
        "departments",
        "budget_categories",
        "periods",
    }
)


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


@dataclass(frozen=True)
class Account:
    code: str
    name: str
    type: AccountType


@dataclass(frozen=True)
class PostingAccounts:
    """The two accounts one posting rule uses."""

    debit: str
    credit: str


@dataclass(frozen=True)
class BudgetCategory:
    """Utilisation ratios: ``warn`` turns the status "near", above ``stop`` it is "exceeded"."""

    name: str
    warn: Decimal
    stop: Decimal


@dataclass(frozen=True)
class ChartOfAccounts:
    rule_version: str
    default_currency: str
    currencies: frozenset[str]
    accounts: Mapping[str, Account]
    posting: Mapping[str, PostingAccounts]
    departments: frozenset[str]
    budget_categories: Mapping[str, BudgetCategory]
    cash_account: str
    ar_control_account: str
    ap_control_account: str
    payroll_default_department: str
    payroll_default_category: str
    credit_near_ratio: Decimal
    # Departments are master data (ledger/master.py): seeded from ``departments`` above, then
    # changed by command while the worker runs. Shared by every stage that holds this chart.
    department_register: DepartmentRegister = field(
        default_factory=DepartmentRegister, compare=False, repr=False
    )
    # Period close (issue 16): an event dated in a closed period is booked in the first open
    # period after it, marked late ("late"), or refused as period_closed ("reject").
    closed_period_policy: str = "late"
    period_register: PeriodRegister = field(
        default_factory=PeriodRegister, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.department_register.all():
            object.__setattr__(self, "department_register", DepartmentRegister(self.departments))

    def account(self, code: str) -> Account:
        return self.accounts[code]

    def rule_for(self, event_type: str) -> PostingAccounts:
        return self.posting[event_type]

    def category(self, name: str) -> BudgetCategory:
        return self.budget_categories[name]

    def is_department(self, department_id: str) -> bool:
        """Registered and not retired (the configured ones, then changes by command)."""
        return self.department_register.is_active(department_id)

    def is_category(self, name: str) -> bool:
        return name in self.budget_categories

    def is_currency(self, code: str) -> bool:
        return code in self.currencies


def default_chart_path() -> Path:
    """``config/chart_of_accounts.toml`` at the project root."""
    return Path(__file__).resolve().parent.parent / "config" / CHART_FILE_NAME


def load_chart(path: Path) -> ChartOfAccounts:
    """Read and check the chart; raises ``ConfigurationError`` naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"chart of accounts {path}: cannot read: {exc}") from exc
    return parse_chart(text, origin=str(path))


def parse_chart(text: str, *, origin: str = "<chart>") -> ChartOfAccounts:
    """Check a chart given as TOML text (``load_chart`` without the file)."""
    try:
        # parse_float=Decimal: a TOML 0.90 must never pass through a binary float.
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"chart of accounts {origin}: invalid TOML: {exc}") from exc
    reader = _Reader()
    chart = reader.chart(document)
    if reader.problems or chart is None:
        listing = "; ".join(reader.problems)
        raise ConfigurationError(f"chart of accounts {origin}: {listing}")
    return chart


class _Reader:
    """Reads the TOML document, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    # --- typed getters -----------------------------------------------------------------------

    def table(self, document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = document.get(key)
        if not isinstance(value, dict):
            self.problem(f"[{key}] must be a table")
            return {}
        return value

    def text(self, value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str | None:
        if not isinstance(value, str) or not value:
            self.problem(f"{where} must be non-empty text, got {value!r}")
            return None
        if pattern is not None and pattern.fullmatch(value) is None:
            self.problem(f"{where} {value!r} does not match {pattern.pattern}")
            return None
        return value

    def ratio(self, value: Any, where: str) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
            self.problem(f'{where} must be a decimal ratio such as "0.90", got {value!r}')
            return None
        try:
            ratio = Decimal(value)
        except InvalidOperation:
            self.problem(f"{where} is not a decimal: {value!r}")
            return None
        if not ratio.is_finite() or ratio <= 0 or ratio > THRESHOLD_RATIO_MAX:
            self.problem(f"{where} must be > 0 and <= {THRESHOLD_RATIO_MAX}, got {value!r}")
            return None
        return ratio

    # --- sections ----------------------------------------------------------------------------

    def chart(self, document: Mapping[str, Any]) -> ChartOfAccounts | None:
        for key in sorted(set(document) - _TOP_LEVEL_KEYS):
            self.problem(f"unknown key {key!r}")
        rule_version = self.text(document.get("rule_version"), "rule_version", _RULE_VERSION)
        currencies = self.currencies(document)
        default_currency = self.text(
            document.get("default_currency"), "default_currency", _CURRENCY_CODE
        )
        if default_currency is not None and default_currency not in currencies:
            self.problem(f"default_currency {default_currency!r} is not in currencies")
        accounts = self.accounts(document)
        control = self.control(document, accounts)
        posting = self.posting(document, accounts)
        self.check_posting_uses_control(posting, control)
        departments = self.departments(document)
        categories = self.categories(document)
        payroll = self.payroll(document, departments, categories)
        credit_near_ratio = self.ratio(
            self.table(document, "credit").get("near_ratio"), "credit.near_ratio"
        )
        if credit_near_ratio is not None and credit_near_ratio > 1:
            self.problem(f"credit.near_ratio must be <= 1, got {credit_near_ratio}")
        periods = document.get("periods", {})
        policy = periods.get("closed_period_policy", "late") if isinstance(periods, dict) else None
        if policy not in CLOSED_POLICIES:
            self.problem(
                f"periods.closed_period_policy must be one of {', '.join(CLOSED_POLICIES)}, "
                f"got {policy!r}"
            )
        if (
            self.problems
            or rule_version is None
            or default_currency is None
            or control is None
            or payroll is None
            or credit_near_ratio is None
        ):
            return None
        return ChartOfAccounts(
            rule_version=rule_version,
            default_currency=default_currency,
            currencies=frozenset(currencies),
            accounts=MappingProxyType(accounts),
            posting=MappingProxyType(posting),
            departments=frozenset(departments),
            budget_categories=MappingProxyType(categories),
            cash_account=control["cash"],
            ar_control_account=control["accounts_receivable"],
            ap_control_account=control["accounts_payable"],
            payroll_default_department=payroll[0],
            payroll_default_category=payroll[1],
            credit_near_ratio=credit_near_ratio,
            closed_period_policy=str(policy),
        )

    def currencies(self, document: Mapping[str, Any]) -> list[str]:
        value = document.get("currencies")
        if not isinstance(value, list) or not value:
            self.problem("currencies must be a non-empty list")
            return []
        found = []
        for index, item in enumerate(value):
            code = self.text(item, f"currencies[{index}]", _CURRENCY_CODE)
            if code is not None:
                found.append(code)
        return found

    def accounts(self, document: Mapping[str, Any]) -> dict[str, Account]:
        value = document.get("accounts")
        if not isinstance(value, list) or not value:
            self.problem("[[accounts]] must list at least one account")
            return {}
        accounts: dict[str, Account] = {}
        for index, item in enumerate(value):
            where = f"accounts[{index}]"
            if not isinstance(item, dict):
                self.problem(f"{where} must be a table")
                continue
            for key in sorted(set(item) - {"code", "name", "type"}):
                self.problem(f"{where}: unknown key {key!r}")
            code = self.text(item.get("code"), f"{where}.code", _ACCOUNT_CODE)
            name = self.text(item.get("name"), f"{where}.name")
            type_text = item.get("type")
            if type_text not in {member.value for member in AccountType}:
                allowed = ", ".join(member.value for member in AccountType)
                self.problem(f"{where}.type must be one of {allowed}, got {type_text!r}")
                continue
            if code is None or name is None:
                continue
            if code in accounts:
                self.problem(f"{where}: duplicate account code {code!r}")
                continue
            accounts[code] = Account(code=code, name=name, type=AccountType(type_text))
        return accounts

    def control(
        self, document: Mapping[str, Any], accounts: Mapping[str, Account]
    ) -> dict[str, str] | None:
        section = self.table(document, "control")
        expected_types = {
            "cash": AccountType.ASSET,
            "accounts_receivable": AccountType.ASSET,
            "accounts_payable": AccountType.LIABILITY,
        }
        for key in sorted(set(section) - set(expected_types)):
            self.problem(f"control: unknown key {key!r}")
        control: dict[str, str] = {}
        for key, expected_type in expected_types.items():
            code = self.text(section.get(key), f"control.{key}")
            if code is None:
                continue
            account = accounts.get(code)
            if account is None:
                self.problem(f"control.{key}: unknown account {code!r}")
                continue
            if account.type is not expected_type:
                self.problem(
                    f"control.{key}: account {code!r} is {account.type.value}, "
                    f"must be {expected_type.value}"
                )
                continue
            control[key] = code
        return control if len(control) == len(expected_types) else None

    def posting(
        self, document: Mapping[str, Any], accounts: Mapping[str, Account]
    ) -> dict[str, PostingAccounts]:
        section = self.table(document, "posting")
        for event_type in sorted(set(section) - set(POSTING_EVENT_TYPES)):
            self.problem(f"posting: unknown event type {event_type!r}")
        posting: dict[str, PostingAccounts] = {}
        for event_type in POSTING_EVENT_TYPES:
            rule = section.get(event_type)
            where = f"posting.{event_type!r}"
            if not isinstance(rule, dict):
                self.problem(f"{where} is missing (needs debit and credit)")
                continue
            for key in sorted(set(rule) - {"debit", "credit"}):
                self.problem(f"{where}: unknown key {key!r}")
            sides: dict[str, str] = {}
            for side in ("debit", "credit"):
                code = self.text(rule.get(side), f"{where}.{side}")
                if code is None:
                    continue
                if code not in accounts:
                    self.problem(f"{where}.{side}: unknown account {code!r}")
                    continue
                sides[side] = code
            if len(sides) != 2:
                continue
            if sides["debit"] == sides["credit"]:
                self.problem(f"{where}: debit and credit are the same account {sides['debit']!r}")
                continue
            posting[event_type] = PostingAccounts(debit=sides["debit"], credit=sides["credit"])
        return posting

    def check_posting_uses_control(
        self, posting: Mapping[str, PostingAccounts], control: Mapping[str, str] | None
    ) -> None:
        # The AR and AP sub-ledgers (customer exposure, vendor open items) are reconciled with
        # their control accounts (invariant 2); that only holds if these rules post to them.
        if control is None:
            return
        required: tuple[tuple[str, str, str], ...] = (
            (SALES_ORDER_COMPLETED, "debit", "accounts_receivable"),
            (CUSTOMER_PAYMENT_RECEIVED, "credit", "accounts_receivable"),
            (CUSTOMER_PAYMENT_RECEIVED, "debit", "cash"),
            (GOODS_RECEIVED, "credit", "accounts_payable"),
            (VENDOR_PAYMENT_MADE, "debit", "accounts_payable"),
            (VENDOR_PAYMENT_MADE, "credit", "cash"),
        )
        for event_type, side, control_key in required:
            rule = posting.get(event_type)
            if rule is None:
                continue
            code = rule.debit if side == "debit" else rule.credit
            if code != control[control_key]:
                self.problem(
                    f"posting.{event_type!r}.{side} is {code!r} but must be the "
                    f"control.{control_key} account {control[control_key]!r}"
                )

    def departments(self, document: Mapping[str, Any]) -> set[str]:
        known = self.table(document, "departments").get("known")
        if not isinstance(known, list) or not known:
            self.problem("departments.known must be a non-empty list")
            return set()
        departments: set[str] = set()
        for index, item in enumerate(known):
            name = self.text(item, f"departments.known[{index}]", _NAME)
            if name is None:
                continue
            if name in departments:
                self.problem(f"departments.known: duplicate department {name!r}")
            departments.add(name)
        return departments

    def categories(self, document: Mapping[str, Any]) -> dict[str, BudgetCategory]:
        section = self.table(document, "budget_categories")
        if not section:
            self.problem("[budget_categories] must define at least one category")
        categories: dict[str, BudgetCategory] = {}
        for name, value in section.items():
            where = f"budget_categories.{name}"
            if self.text(name, f"budget category name {name!r}", _NAME) is None:
                continue
            if not isinstance(value, dict):
                self.problem(f"{where} must be a table with warn and stop")
                continue
            for key in sorted(set(value) - {"warn", "stop"}):
                self.problem(f"{where}: unknown key {key!r}")
            warn = self.ratio(value.get("warn"), f"{where}.warn")
            stop = self.ratio(value.get("stop"), f"{where}.stop")
            if warn is None or stop is None:
                continue
            if warn > stop:
                self.problem(f"{where}: warn {warn} must not be above stop {stop}")
                continue
            categories[name] = BudgetCategory(name=name, warn=warn, stop=stop)
        return categories

    def payroll(
        self,
        document: Mapping[str, Any],
        departments: set[str],
        categories: Mapping[str, BudgetCategory],
    ) -> tuple[str, str] | None:
        section = self.table(document, "payroll")
        department = self.text(section.get("default_department"), "payroll.default_department")
        category = self.text(section.get("default_category"), "payroll.default_category")
        checks: tuple[tuple[str | None, Callable[[str], bool], str], ...] = (
            (department, departments.__contains__, "departments.known"),
            (category, categories.__contains__, "budget_categories"),
        )
        for value, known, where in checks:
            if value is not None and not known(value):
                self.problem(f"payroll default {value!r} is not in {where}")
        if department is None or category is None:
            return None
        return department, category
