"""Properties of the whole core, checked against the independent reference ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import deltas
from ledger.entries import SourceRef, assert_balanced
from ledger.events import parse_event
from ledger.idempotency import Decision
from ledger.integrity import LedgerSnapshot, run_checks
from ledger.periods import parse_period
from ledger.reducers import (
    BudgetRow,
    CustomerRow,
    PeriodRow,
    ProductRow,
    ProjectRow,
    VendorRow,
    trial_balance,
)
from ledger.rejections import Reason
from ledger.rules import post, reverse

from . import fixtures
from .fakes import FakePipeline
from .reference import ReferenceLedger, nonzero

RECEIVED_AT = datetime(2025, 1, 1, tzinfo=UTC)
CHART = fixtures.chart()
DEPARTMENTS = sorted(CHART.departments)
CATEGORIES = sorted(CHART.budget_categories)
CUSTOMERS = ["CUS-001", "CUS-002", "CUS-003"]
VENDORS = ["VEN-001", "VEN-002"]
PROJECTS = ["PROJ-A", "PROJ-B"]
PRODUCTS = ["WIDGET-A", "WIDGET-B"]
PERIODS = [f"2024-{month:02d}" for month in range(1, 13)] + [f"2024-Q{q}" for q in range(1, 5)]

PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

amounts = st.integers(min_value=1, max_value=10**9).map(lambda cents: Decimal(cents).scaleb(-2))
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 12, 31))
optional_days = st.none() | days


@st.composite
def timestamps(draw: st.DrawFn) -> datetime:
    day = draw(days)
    moment = draw(st.times(max_value=time(23, 59, 59, 999000)))
    return datetime.combine(
        day, moment.replace(microsecond=moment.microsecond // 1000 * 1000), tzinfo=UTC
    )


def envelope(event_type: str, data: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda timestamp: {
            "event_type": event_type,
            "event_id": "",  # assigned per scenario so ids are unique
            "timestamp": timestamp,
            "source": "",
            "data": data,
        },
        timestamps(),
    )


@st.composite
def payroll(draw: st.DrawFn) -> dict[str, Any]:
    end = draw(days)
    lines: list[dict[str, Any]] = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "department_id": st.sampled_from(DEPARTMENTS),
                    "category": st.sampled_from(CATEGORIES),
                    "amount": amounts,
                }
            ),
            max_size=3,
        )
    )
    line_amounts: list[Decimal] = [line["amount"] for line in lines]
    total = sum(line_amounts, Decimal("0.00")) if lines else draw(amounts)
    data = {
        "payroll_id": f"PAY-{draw(st.integers(1, 99))}",
        "pay_period_start": end - timedelta(days=14),
        "pay_period_end": end,
        "total_gross_pay": total,
        "currency": "USD",
        "department_id": draw(st.none() | st.sampled_from(DEPARTMENTS)),
        "department_lines": lines,
    }
    return draw(envelope("hr.payroll.processed", data))


def simple(event_type: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"currency": st.just("USD"), "business_date": optional_days, **fields}
    ).flatmap(lambda data: envelope(event_type, data))


posting_records = st.one_of(
    payroll(),
    simple(
        "scm.goods.received",
        purchase_order_id=st.just("PO-1"),
        vendor_id=st.sampled_from(VENDORS),
        total_amount=amounts,
        payment_terms_days=st.integers(0, 90),
    ),
    simple(
        "crm.sales_order.completed",
        sales_order_id=st.just("SO-1"),
        customer_id=st.sampled_from(CUSTOMERS),
        total_amount=amounts,
    ),
    simple(
        "mfg.production_order.completed",
        production_order_id=st.just("MO-1"),
        product_code=st.sampled_from(PRODUCTS),
        quantity_produced=st.integers(1, 10_000),
        total_cost=amounts,
    ),
    simple(
        "pm.time.logged",
        project_id=st.sampled_from(PROJECTS),
        employee_id=st.just("EMP-001"),
        hours=st.integers(1, 2400).map(
            lambda quarter_hours: Decimal(quarter_hours * 25).scaleb(-2)
        ),
        billable_amount=amounts,
    ),
    simple(
        "fin.vendor_payment.made",
        vendor_id=st.sampled_from(VENDORS),
        payment_id=st.just("PMT-1"),
        amount=amounts,
    ),
    simple(
        "fin.customer_payment.received",
        customer_id=st.sampled_from(CUSTOMERS),
        payment_id=st.just("RCPT-1"),
        amount=amounts,
    ),
)

budget_sets = st.lists(
    st.tuples(
        st.sampled_from(DEPARTMENTS),
        st.sampled_from(CATEGORIES),
        st.sampled_from(PERIODS),
        amounts | st.just(Decimal("0.00")),
    ),
    max_size=3,
    unique_by=lambda item: item[:3],
).map(
    lambda items: [
        {
            "event_type": "fin.budget.set",
            "event_id": "",
            "timestamp": datetime(2024, 1, 1, tzinfo=UTC),
            "source": "",
            "data": {"department_id": d, "category": c, "period": p, "amount": a},
        }
        for d, c, p, a in items
    ]
)

credit_limits = st.lists(
    st.tuples(st.sampled_from(CUSTOMERS), amounts | st.just(Decimal("0.00"))),
    max_size=2,
    unique_by=lambda item: item[0],
).map(
    lambda items: [
        {
            "event_type": "fin.credit_limit.set",
            "event_id": "",
            "timestamp": datetime(2024, 1, 1, tzinfo=UTC),
            "source": "",
            "data": {"customer_id": customer, "credit_limit": limit},
        }
        for customer, limit in items
    ]
)


def with_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Distinct, valid, deterministic ids: version-4 UUIDs numbered from 1.
    return [
        {**record, "event_id": str(UUID(int=index + 1, version=4))}
        for index, record in enumerate(records)
    ]


def compensation_for(target: dict[str, Any], number: int) -> dict[str, Any]:
    return {
        "event_type": "fin.compensation.requested",
        "event_id": str(UUID(int=10_000 + number, version=4)),
        "timestamp": datetime(2024, 12, 31, tzinfo=UTC),
        "source": "fin-api",
        "data": {"target_event_id": target["event_id"], "reason": "test"},
    }


def conflicting_copy(record: dict[str, Any]) -> dict[str, Any]:
    changed = dict(record)
    changed["source"] = "a different producer payload"
    return changed


operations = st.lists(
    st.one_of(
        st.tuples(st.just("retry"), st.integers(0, 100)),
        st.tuples(st.just("conflict"), st.integers(0, 100)),
        st.tuples(st.just("compensate"), st.integers(0, 100)),
        st.tuples(st.just("compensate_unknown")),
        st.tuples(st.just("retry_compensation"), st.integers(0, 100)),
        st.tuples(st.just("replay_source_copy"), st.integers(0, 1000)),
        st.tuples(st.just("crash_and_reprocess"), st.integers(0, 1000)),
        st.tuples(st.just("deliver"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("replay_delta"), st.integers(0, 1000)),
    ),
    max_size=25,
)


def run_scenario(
    records: list[dict[str, Any]], ops: list[tuple[Any, ...]], send_order: list[int]
) -> tuple[FakePipeline, list[dict[str, Any]], set[str]]:
    """Drive the fake pipeline and check each decision against what should happen.

    Returns the pipeline, the records sent (first copies, in order) and the compensated ids.
    """
    pipeline = FakePipeline(CHART, RECEIVED_AT)
    sent: list[dict[str, Any]] = []
    sent_ids: set[str] = set()
    compensated: set[str] = set()
    reversing: list[dict[str, Any]] = []  # compensation records that reversed their target
    originals: list[int] = []  # by-id log indexes of records that were posted
    compensation_number = 0

    def ingest(record: dict[str, Any], expected: Decision | Reason) -> None:
        before = len(pipeline.by_id_log)
        decision = pipeline.ingest(record)
        assert decision is expected, (record["event_type"], decision, expected)
        if decision is Decision.POST:
            originals.append(before)

    pending_sends = list(send_order)
    # Sends are spread between the other operations, so every operation meets every state.
    spread = max(1, len(ops) // max(1, len(pending_sends)))
    steps: list[tuple[Any, ...]] = []
    for position, operation in enumerate(ops):
        if position % spread == 0 and pending_sends:
            steps.append(("send", pending_sends.pop(0)))
        steps.append(operation)
    steps.extend(("send", index) for index in pending_sends)

    for step in steps:
        kind = step[0]
        if kind == "send":
            record = records[step[1]]
            ingest(record, Decision.POST)
            sent.append(record)
            sent_ids.add(record["event_id"])
        elif kind in {"retry", "conflict", "compensate"} and sent:
            target = sent[step[1] % len(sent)]
            if kind == "retry":
                ingest(target, Decision.DUPLICATE)
            elif kind == "conflict":
                ingest(conflicting_copy(target), Decision.CONFLICT)
            else:
                compensation_number += 1
                compensation = compensation_for(target, compensation_number)
                reversible = target["event_type"] not in {"fin.budget.set", "fin.credit_limit.set"}
                if reversible and target["event_id"] not in compensated:
                    ingest(compensation, Decision.POST)
                    compensated.add(target["event_id"])
                    reversing.append(compensation)
                else:
                    ingest(compensation, Reason.COMPENSATION_TARGET_NOT_REVERSIBLE)
        elif kind == "compensate_unknown":
            compensation_number += 1
            unknown = {"event_id": str(UUID(int=99_999, version=4))}
            ingest(
                compensation_for(unknown, compensation_number), Reason.COMPENSATION_TARGET_UNKNOWN
            )
        elif kind == "retry_compensation" and reversing:
            ingest(reversing[step[1] % len(reversing)], Decision.DUPLICATE)
        elif kind == "replay_source_copy" and originals:
            index = originals[step[1] % len(originals)]
            decision = pipeline.replay_source_copy(index)
            assert decision is Decision.REPLAY_COPY
        elif kind == "crash_and_reprocess" and originals:
            index = originals[step[1] % len(originals)]
            decision = pipeline.crash_and_reprocess(index)
            assert decision is Decision.REEMIT
        elif kind == "deliver":
            pipeline.deliver(step[1], step[2])
        elif kind == "replay_delta" and pipeline.applied:
            assert not pipeline.replay_delta(step[1] % len(pipeline.applied))
    pipeline.deliver_all()
    return pipeline, sent, compensated


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], list[int]]:
    records = with_ids(
        draw(st.lists(posting_records, min_size=1, max_size=10))
        + draw(budget_sets)
        + draw(credit_limits)
    )
    send_order = draw(st.permutations(range(len(records))))
    return records, draw(operations), list(send_order)


def month_balances(pipeline: FakePipeline) -> dict[tuple[str, str], Decimal]:
    balances: dict[tuple[str, str], Decimal] = {}
    for period, row in pipeline.table(deltas.PERIODS).items():
        assert isinstance(row, PeriodRow)
        if parse_period(period).kind != "month":
            continue
        for account, (debit, credit) in row.accounts.items():
            balances[(period, account)] = debit - credit
    return nonzero(balances)


def entry_balances(pipeline: FakePipeline) -> dict[tuple[str, str], Decimal]:
    """The same balances by a second path: the stream of journal entries, deduplicated by id."""
    balances: dict[tuple[str, str], Decimal] = {}
    for entry in pipeline.entries.values():
        for line in entry.lines:
            key = (entry.period, line.account)
            balances[key] = balances.get(key, Decimal("0.00")) + line.debit - line.credit
    return nonzero(balances)


def typed_rows(pipeline: FakePipeline, table: str, row_type: type) -> dict[str, Any]:
    rows = pipeline.table(table)
    assert all(isinstance(row, row_type) for row in rows.values())
    return rows


def assert_tables_match(pipeline: FakePipeline, expected: ReferenceLedger) -> None:
    assert month_balances(pipeline) == expected.account_balances()
    assert entry_balances(pipeline) == expected.account_balances()
    budgets: dict[str, BudgetRow] = typed_rows(pipeline, deltas.BUDGETS, BudgetRow)
    assert nonzero({key: row.actual for key, row in budgets.items()}) == nonzero(
        expected.budget_actuals
    )
    assert {key: row.amount for key, row in budgets.items() if row.amount is not None} == (
        expected.budgets
    )
    customers: dict[str, CustomerRow] = typed_rows(pipeline, deltas.CUSTOMERS, CustomerRow)
    assert nonzero({key: row.exposure for key, row in customers.items()}) == nonzero(
        expected.exposures
    )
    assert {
        key: row.credit_limit for key, row in customers.items() if row.credit_limit is not None
    } == expected.credit_limits
    vendors: dict[str, VendorRow] = typed_rows(pipeline, deltas.VENDORS, VendorRow)
    vendor_open = {
        key: row.invoiced - row.paid_total  # settled receipts included
        for key, row in vendors.items()
    }
    assert nonzero(vendor_open) == nonzero(expected.vendor_open)
    projects: dict[str, ProjectRow] = typed_rows(pipeline, deltas.PROJECTS, ProjectRow)
    assert nonzero({key: row.hours for key, row in projects.items()}) == nonzero(
        expected.project_hours
    )
    assert nonzero({key: row.billable_amount for key, row in projects.items()}) == nonzero(
        expected.project_billable
    )
    products: dict[str, ProductRow] = typed_rows(pipeline, deltas.PRODUCTS, ProductRow)
    assert nonzero({key: row.cost for key, row in products.items()}) == nonzero(
        expected.product_cost
    )
    assert nonzero({key: row.quantity for key, row in products.items()}) == nonzero(
        expected.product_quantity
    )


def snapshot_of(pipeline: FakePipeline) -> LedgerSnapshot:
    return LedgerSnapshot(
        periods=typed_rows(pipeline, deltas.PERIODS, PeriodRow),
        customers=typed_rows(pipeline, deltas.CUSTOMERS, CustomerRow),
        vendors=typed_rows(pipeline, deltas.VENDORS, VendorRow),
        counts=pipeline.outcome_counts(),
    )


# --- the properties ------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(posting_records, st.integers(0, 7), st.integers(0, 10**6))
def test_every_entry_balances_and_books_the_amount_the_reference_books(record, partition, offset):
    record = with_ids([record])[0]
    event = parse_event(record)
    posting = post(event, fixtures.source_of(event, partition, offset), CHART)
    assert posting.entry is not None
    assert_balanced(posting.entry)
    booked: dict[tuple[str, str], Decimal] = {}
    for line in posting.entry.lines:
        key = (posting.entry.period, line.account)
        booked[key] = booked.get(key, Decimal("0.00")) + line.debit - line.credit
    assert nonzero(booked) == ReferenceLedger.of([record]).account_balances()


@PROPERTY_SETTINGS
@given(st.lists(posting_records, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_a_compensation_nets_every_balance_back_to_zero(records, random):
    records = with_ids(records)
    pipeline = FakePipeline(CHART, RECEIVED_AT)
    for record in records:
        assert pipeline.ingest(record) is Decision.POST
    compensations = [compensation_for(record, number) for number, record in enumerate(records)]
    random.shuffle(compensations)
    for compensation in compensations:
        assert pipeline.ingest(compensation) is Decision.POST
    pipeline.deliver_all()
    assert month_balances(pipeline) == {}
    assert entry_balances(pipeline) == {}
    for row in pipeline.rows.values():
        for name in ("actual", "exposure", "hours", "billable_amount", "cost", "quantity"):
            assert getattr(row, name, 0) == 0, (row, name)
        if isinstance(row, VendorRow):
            assert dict(row.items) == {} and row.paid_total == 0
    for entry in pipeline.entries.values():
        if entry.reverses_entry_id is not None:
            original = pipeline.entries[entry.reverses_entry_id]
            assert [line.swapped() for line in original.lines] == list(entry.lines)


@PROPERTY_SETTINGS
@given(scenarios())
def test_duplicates_replays_and_compensations_in_any_order_give_the_reference_balances(scenario):
    records, ops, send_order = scenario
    pipeline, sent, compensated = run_scenario(records, ops, send_order)
    expected = ReferenceLedger.of(sent, compensated)
    assert_tables_match(pipeline, expected)
    assert run_checks(snapshot_of(pipeline), CHART) == []


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_period_trial_balance_nets_to_zero(scenario):
    pipeline, _, _ = run_scenario(*scenario)
    for row in typed_rows(pipeline, deltas.PERIODS, PeriodRow).values():
        balance = trial_balance(row)
        assert balance.balanced
        assert sum((line.balance for line in balance.lines), Decimal("0.00")) == 0


def compensation_source(event_id: str, offset: int) -> SourceRef:
    return SourceRef(event_id, "fin.compensation.requested", "fin.commands", 0, offset)


@PROPERTY_SETTINGS
@given(posting_records)
def test_reversing_a_reversal_restores_the_original_effect(record):
    record = with_ids([record])[0]
    event = parse_event(record)
    original = post(event, fixtures.source_of(event), CHART)
    first_id = str(UUID(int=20_000, version=4))
    second_id = str(UUID(int=30_000, version=4))
    undone = reverse(original, first_id, compensation_source(first_id, 1))
    redone = reverse(undone, second_id, compensation_source(second_id, 2))
    assert redone.deltas == original.deltas
    assert redone.entry is not None and original.entry is not None and undone.entry is not None
    assert redone.entry.lines == original.entry.lines
    assert redone.entry.reverses_entry_id == undone.entry.entry_id
