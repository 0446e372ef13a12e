"""Departments as master data (issue 16, item 2): the register every worker folds changes into."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chart import default_chart_path, load_chart
from ledger.contract import DEPARTMENT_CHANGED
from ledger.master import DepartmentChange, DepartmentRegister, change_of
from ledger.rejections import Reason, Rejection
from ledger.validation import validate

RECEIVED_AT = datetime(2024, 4, 2, tzinfo=UTC)


def change(department: str, action: str, at_ms: int, name: str = "") -> DepartmentChange:
    return change_of(
        department,
        action,
        name=name,
        requested_by="controller",
        reason="reorganisation",
        at_ms=at_ms,
        event_id=str(uuid.UUID(int=at_ms)),
    )


def payroll(department: str) -> dict[str, Any]:
    return {
        "event_type": "hr.payroll.processed",
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime(2024, 3, 31, 18, 0, tzinfo=UTC),
        "source": "hr-service",
        "data": {
            "payroll_id": "PAY-2024-003",
            "pay_period_start": date(2024, 3, 1),
            "pay_period_end": date(2024, 3, 31),
            "total_gross_pay": Decimal("125000.00"),
            "currency": "USD",
            "department_id": None,
            "department_lines": [
                {
                    "department_id": "ENG-001",
                    "category": "SALARY",
                    "amount": Decimal("100000.00"),
                },
                {
                    "department_id": department,
                    "category": "SALARY",
                    "amount": Decimal("25000.00"),
                },
            ],
        },
    }


def department_command(department: str, action: str) -> dict[str, Any]:
    return {
        "event_type": DEPARTMENT_CHANGED,
        "event_id": str(uuid.uuid4()),
        "timestamp": datetime(2024, 4, 1, 9, 0, tzinfo=UTC),
        "source": "fin-api",
        "data": {
            "department_id": department,
            "action": action,
            "name": "Operations 2",
            "requested_by": "controller",
            "reason": "new site",
        },
    }


def test_the_register_starts_with_the_configured_departments_active() -> None:
    chart = load_chart(default_chart_path())
    assert chart.is_department("ENG-001") and not chart.is_department("OPS-002")
    known = [d.department_id for d in chart.department_register.all()]
    assert known == sorted(chart.departments)


def test_a_department_registered_renamed_and_retired_ends_retired_with_its_last_name() -> None:
    register = DepartmentRegister(["ENG-001"])
    assert register.apply(change("OPS-002", "REGISTER", 1, "Operations"))
    assert register.is_active("OPS-002")
    register.apply(change("OPS-002", "RENAME", 2, "Operations North"))
    register.apply(change("OPS-002", "RETIRE", 3))
    state = register.get("OPS-002")
    assert state is not None
    assert (state.name, state.active, state.changes) == ("Operations North", False, 3)
    assert state.to_json_dict()["status"] == "retired"
    assert not register.is_active("OPS-002")


def test_a_repeated_change_changes_nothing_and_renaming_an_unknown_department_is_ignored() -> None:
    register = DepartmentRegister()
    first = change("OPS-002", "REGISTER", 1)
    assert register.apply(first) and not register.apply(first)
    register.apply(change("XYZ-1", "RENAME", 5, "ghost"))
    assert register.get("XYZ-1") is None
    assert [d.department_id for d in register.all()] == ["OPS-002"]


def test_a_configured_department_can_be_retired_and_registered_again() -> None:
    register = DepartmentRegister(["HR-001"])
    register.apply(change("HR-001", "RETIRE", 10))
    assert not register.is_active("HR-001")
    register.apply(change("HR-001", "REGISTER", 20))
    assert register.is_active("HR-001")


def test_a_change_survives_its_json_round_trip() -> None:
    original = change("OPS-002", "RENAME", 7, "Ops")
    assert DepartmentChange.from_json_dict(original.to_json_dict()) == original
    assert original.key == f"department|OPS-002|{original.event_id}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(
        st.tuples(st.sampled_from(["REGISTER", "RENAME", "RETIRE"]), st.text(max_size=5)),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
    repeats=st.lists(st.integers(min_value=0, max_value=11), max_size=6),
    seeded=st.booleans(),
)
def test_every_worker_ends_with_the_same_state_whatever_order_it_reads_the_changes_in(
    actions: list[tuple[str, str]], seed: int, repeats: list[int], seeded: bool
) -> None:
    changes = [
        change("DEP-1", action, at_ms, name) for at_ms, (action, name) in enumerate(actions, 1)
    ]
    in_order = DepartmentRegister(["DEP-1"] if seeded else [])
    for item in changes:
        in_order.apply(item)
    shuffled = changes + [changes[i % len(changes)] for i in repeats]
    random.Random(seed).shuffle(shuffled)
    any_order = DepartmentRegister(["DEP-1"] if seeded else [])
    for item in shuffled:
        any_order.apply(item)
    assert any_order.get("DEP-1") == in_order.get("DEP-1")


def test_an_unknown_department_is_refused_until_it_is_registered_without_a_new_chart() -> None:
    chart = load_chart(default_chart_path())
    refused = validate(payroll("OPS-002"), topic="hr.events", received_at=RECEIVED_AT, chart=chart)
    assert isinstance(refused, Rejection) and refused.reason is Reason.REFERENCE_UNKNOWN
    chart.department_register.apply(change("OPS-002", "REGISTER", 1))
    accepted = validate(payroll("OPS-002"), topic="hr.events", received_at=RECEIVED_AT, chart=chart)
    assert not isinstance(accepted, Rejection)
    chart.department_register.apply(change("OPS-002", "RETIRE", 2))
    again = validate(payroll("OPS-002"), topic="hr.events", received_at=RECEIVED_AT, chart=chart)
    assert isinstance(again, Rejection) and again.reason is Reason.REFERENCE_UNKNOWN
    # A record accepted at ingest is rebuilt at posting whatever happened to the department.
    rebuilt = validate(
        payroll("OPS-002"),
        topic="hr.events",
        received_at=RECEIVED_AT,
        chart=chart,
        master_data=False,
    )
    assert not isinstance(rebuilt, Rejection)


def test_registering_needs_no_known_department_but_renaming_and_retiring_do() -> None:
    chart = load_chart(default_chart_path())
    register = validate(
        department_command("NEW-1", "REGISTER"),
        topic="fin.commands",
        received_at=RECEIVED_AT,
        chart=chart,
    )
    assert not isinstance(register, Rejection)
    for action in ("RENAME", "RETIRE"):
        refused = validate(
            department_command("NEW-1", action),
            topic="fin.commands",
            received_at=RECEIVED_AT,
            chart=chart,
        )
        assert isinstance(refused, Rejection) and refused.reason is Reason.REFERENCE_UNKNOWN
    odd = department_command("NEW-1", "MERGE")
    refused = validate(odd, topic="fin.commands", received_at=RECEIVED_AT, chart=chart)
    assert isinstance(refused, Rejection) and refused.reason is Reason.PAYLOAD_UNDECODABLE
