"""Period close (issue 16, item 1) through the posting stage and the period-row reducers.

The property test runs every operation through the real stages (ingest, posting with its
idempotency, the reducers of the periods table) and checks them against the reference ledger
extended with periods (tests/unit/ledger/reference.py, ReferencePeriods).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import reducers
from ledger.chart import ChartOfAccounts, default_chart_path, load_chart
from ledger.deltas import PERIODS
from ledger.integrity import check_closed_period
from ledger.reducers import PeriodRow
from settings import LEDGER_TOPIC
from streams.effects import StageResult
from streams.master_data import MASTER_DATA_TOPIC, change_from_record
from streams.pipeline import Ingest
from streams.posting import Posting
from streams.stage_records import ByIdRecord
from tests.unit.ledger.reference import ReferenceLedger, ReferencePeriods
from tests.unit.schemas.fixtures import FakeRegistry, decoder, encoder
from tests.unit.streams.test_pipeline import NOW, Harness, compensation

MONTHS = ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03"]


class PeriodHarness(Harness):
    """The pipeline harness with its own chart (so its own period register) and the period
    rows kept by the real reducers."""

    def __init__(self, policy: str = "late") -> None:
        super().__init__()
        chart = load_chart(default_chart_path())
        self.chart: ChartOfAccounts = ChartOfAccounts(
            **{
                name: getattr(chart, name)
                for name in chart.__dataclass_fields__
                if name not in ("period_register", "department_register")
            }
            | {"closed_period_policy": policy}
        )
        registry = FakeRegistry()
        self.ingest = Ingest(decoder(registry), self.chart)
        self.posting = Posting(decoder(registry), encoder(), self.chart, coalesce_deltas=True)
        self.rows: dict[str, PeriodRow] = {}
        self.clock = NOW - timedelta(days=30)

    def post(self, record: ByIdRecord) -> StageResult:
        result = super().post(record)
        for delta, position, event_id, _ in result.deltas:
            if delta.table != PERIODS:
                continue
            outcome = reducers.apply(
                self.rows.get(delta.key), delta, position, self.chart, source_event_id=event_id
            )
            assert isinstance(outcome.row, PeriodRow)
            self.rows[delta.key] = outcome.row
        return result

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def period_command(self, month: str, action: str) -> dict[str, Any]:
        return {
            "event_type": "fin.period.changed",
            "event_id": str(uuid.uuid4()),
            "timestamp": self.tick(),
            "source": "fin-api",
            "data": {
                "period": month,
                "action": action,
                "requested_by": "a.controller",
                "reason": "month end",
            },
        }

    def goods(self, month: str, cents: int, event_id: str | None = None) -> dict[str, Any]:
        year, number = (int(part) for part in month.split("-"))
        return {
            "event_type": "scm.goods.received",
            "event_id": event_id or str(uuid.uuid4()),
            "timestamp": self.tick(),
            "source": "scm-service",
            "data": {
                "purchase_order_id": "PO-1",
                "vendor_id": "VEN-001",
                "total_amount": Decimal(cents).scaleb(-2),
                "currency": "USD",
                "payment_terms_days": 30,
                "business_date": date(year, number, 15),
            },
        }

    def decoded_entries(self) -> list[dict[str, Any]]:
        return [
            self.decoder.decode(LEDGER_TOPIC, value).record  # type: ignore[union-attr]
            for value in self.ledger
        ]


def test_a_goods_receipt_dated_in_a_closed_month_is_booked_late_in_the_next_open_one() -> None:
    harness = PeriodHarness()
    harness.run(harness.by_id(harness.goods("2024-02", 10_000), "scm.events"))
    closed = harness.run(harness.by_id(harness.period_command("2024-02", "CLOSE"), "fin.commands"))
    (send,) = closed[0].sends
    assert send.topic == MASTER_DATA_TOPIC and send.value is not None
    change = change_from_record(send.value)
    assert change is not None and change.requested_by == "a.controller"
    february = harness.rows["2024-02"]
    assert february.closed and february.closed_totals == february.accounts

    harness.run(harness.by_id(harness.goods("2024-02", 5_000), "scm.events"))
    late = harness.decoded_entries()[-1]
    assert late["period"] == "2024-02" and late["posting_period"] == "2024-03"
    assert late["business_date"] == date(2024, 2, 15)
    assert harness.rows["2024-02"].accounts == february.accounts
    assert harness.rows["2024-02"].late_entries_out == 1
    assert harness.rows["2024-03"].accounts["1200"] == (Decimal("50.00"), Decimal("0.00"))
    assert check_closed_period("2024-02", harness.rows["2024-02"]) == []

    harness.run(harness.by_id(harness.period_command("2024-02", "REOPEN"), "fin.commands"))
    harness.run(harness.by_id(harness.goods("2024-02", 2_500), "scm.events"))
    again = harness.decoded_entries()[-1]
    assert again["posting_period"] is None
    assert not harness.rows["2024-02"].closed
    assert harness.rows["2024-02"].accounts["1200"] == (Decimal("125.00"), Decimal("0.00"))


def test_closing_a_quarters_last_month_closes_the_quarter_and_its_other_months() -> None:
    harness = PeriodHarness()
    harness.run(harness.by_id(harness.goods("2024-01", 10_000), "scm.events"))
    harness.run(harness.by_id(harness.period_command("2024-03", "CLOSE"), "fin.commands"))
    assert harness.rows["2024-Q1"].closed and harness.rows["2024-03"].closed
    harness.run(harness.by_id(harness.goods("2024-01", 700), "scm.events"))
    assert harness.decoded_entries()[-1]["posting_period"] == "2024-04"
    assert harness.rows["2024-Q2"].accounts["1200"] == (Decimal("7.00"), Decimal("0.00"))
    assert check_closed_period("2024-Q1", harness.rows["2024-Q1"]) == []


def test_with_the_reject_policy_it_is_dead_lettered_as_period_closed_once() -> None:
    harness = PeriodHarness(policy="reject")
    harness.run(harness.by_id(harness.period_command("2024-02", "CLOSE"), "fin.commands"))
    event = harness.goods("2024-02", 10_000)
    record = harness.by_id(event, "scm.events")
    source_offset = harness.source_offset
    (refused,) = harness.run(record)
    assert refused.outcome == "rejected" and refused.reason == "period_closed"
    (letter,) = refused.sends
    assert dict(letter.headers)["fin.reason"] == b"period_closed"
    # The same source record again (an upstream replay): accounted for, not a second letter.
    copy = harness.run(harness.by_id(event, "scm.events", source_offset=source_offset))
    assert [r.outcome for r in copy] == ["replay"]
    # Re-opened, the dead letter replayed (a new source position) posts in February.
    harness.run(harness.by_id(harness.period_command("2024-02", "REOPEN"), "fin.commands"))
    (posted,) = harness.run(harness.by_id(event, "scm.events"))
    assert posted.outcome == "posted"
    assert harness.decoded_entries()[-1]["posting_period"] is None
    assert harness.counts() == {"posted": 3, "rejected": 1}


def test_a_reversal_of_an_entry_in_a_closed_month_is_booked_late_whatever_the_policy() -> None:
    harness = PeriodHarness(policy="reject")
    target = str(uuid.uuid4())
    harness.run(harness.by_id(harness.goods("2024-02", 10_000, target), "scm.events"))
    harness.run(harness.by_id(harness.period_command("2024-02", "CLOSE"), "fin.commands"))
    steps = harness.run(harness.by_id(compensation(str(uuid.uuid4()), target), "fin.commands"))
    assert [r.outcome for r in steps] == ["forwarded", "posted"]
    reversal = harness.decoded_entries()[-1]
    assert reversal["reverses_entry_id"] is not None and reversal["posting_period"] == "2024-03"
    assert check_closed_period("2024-02", harness.rows["2024-02"]) == []


@dataclass(frozen=True)
class Op:
    kind: str  # event, close, reopen, duplicate, replay
    month: str
    cents: int
    pick: int


operations = st.lists(
    st.builds(
        Op,
        kind=st.sampled_from(["event", "event", "event", "close", "reopen", "duplicate", "replay"]),
        month=st.sampled_from(MONTHS),
        cents=st.integers(min_value=1, max_value=10**7),
        pick=st.integers(min_value=0, max_value=1000),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, policy=st.sampled_from(["late", "reject"]))
def test_closed_periods_never_change_under_any_interleaving(ops: list[Op], policy: str) -> None:
    harness = PeriodHarness(policy=policy)
    reference = ReferenceLedger()
    periods = ReferencePeriods()
    posted: list[tuple[dict[str, Any], ByIdRecord]] = []
    snapshots: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
    for op in ops:
        if op.kind in ("close", "reopen"):
            action = "CLOSE" if op.kind == "close" else "REOPEN"
            harness.run(harness.by_id(harness.period_command(op.month, action), "fin.commands"))
            if op.kind == "close":
                periods.closed.add(op.month)
            else:
                periods.closed.discard(op.month)
            snapshots = {
                period: reference.trial_balance(period) for period in periods.closed_periods()
            } | {p: s for p, s in snapshots.items() if p in periods.closed_periods()}
        elif op.kind == "event" or not posted:
            event = harness.goods(op.month, op.cents)
            record = harness.by_id(event, "scm.events")
            (result,) = harness.run(record)
            if periods.is_closed(op.month) and policy == "reject":
                assert result.reason == "period_closed"
            else:
                assert result.outcome == "posted"
                booked = periods.booking_month(op.month)
                reference.book(event, sign=1, booked_in=None if booked == op.month else booked)
                posted.append((event, record))
        elif op.kind == "duplicate":
            event, _ = posted[op.pick % len(posted)]
            (result,) = harness.run(harness.by_id(event, "scm.events"))
            assert result.outcome == "duplicate"
        else:  # the very by-id record again, as after a crash: re-emitted as it was
            _, record = posted[op.pick % len(posted)]
            (result,) = harness.run(record)
            assert result.outcome == "reemit"
        for period, expected in snapshots.items():
            row = harness.rows.get(period)
            found = dict(row.accounts) if row is not None else {}
            assert {k: v for k, v in found.items()} == expected, period
            if row is not None:
                assert check_closed_period(period, row) == []
    # Every period's turnover is the reference's, late entries in the months they went to.
    for period in reference.periods():
        row = harness.rows[period]
        assert dict(row.accounts) == reference.trial_balance(period), period
    harness.entries()  # asserts that every copy of an entry (re-emissions) is identical
