"""Department commands through the posting stage: one change record on the master-data topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.master import (
    DepartmentChange,
    DepartmentRegister,
    PeriodChange,
    PeriodRegister,
    change_of,
)
from streams.master_data import MASTER_DATA_TOPIC, change_from_record, preload
from tests.unit.streams.test_pipeline import Harness
from tests.unit.tools.test_dlq import FakeBroker, FakeConsumer


def department_command(event_id: str, action: str = "REGISTER") -> dict[str, Any]:
    return {
        "event_type": "fin.department.changed",
        "event_id": event_id,
        "timestamp": datetime(2024, 3, 19, 9, 0, tzinfo=UTC),
        "source": "fin-api",
        "data": {
            "department_id": "OPS-002",
            "action": action,
            "name": "Operations 2",
            "requested_by": "a.controller",
            "reason": "new site",
        },
    }


def test_a_posted_department_command_publishes_its_change_once_and_again_on_a_re_emission() -> None:
    harness = Harness()
    event_id = str(uuid.uuid4())
    record = harness.by_id(department_command(event_id), "fin.commands")
    first = harness.post(record)
    again = harness.post(record)  # a crash before the commit: the same record again
    duplicate = harness.post(harness.by_id(department_command(event_id), "fin.commands"))
    assert (first.outcome, again.outcome, duplicate.outcome) == ("posted", "reemit", "duplicate")
    (send,) = first.sends
    assert send.topic == MASTER_DATA_TOPIC and again.sends == first.sends
    assert duplicate.sends == ()
    assert send.key == f"department|OPS-002|{event_id}".encode()
    assert send.value is not None
    change = change_from_record(send.value)
    assert isinstance(change, DepartmentChange)
    assert (change.action, change.name, change.requested_by, change.reason) == (
        "REGISTER",
        "Operations 2",
        "a.controller",
        "new site",
    )
    register = DepartmentRegister()
    register.apply(change)
    assert register.is_active("OPS-002")
    assert harness.ledger == []  # master data, not a transaction
    assert harness.counts() == {"posted": 1, "duplicates": 1}


def test_a_record_of_a_kind_this_version_does_not_know_is_skipped() -> None:
    assert change_from_record(b'{"kind": "cost_centre", "id": "CC-1"}') is None


def test_a_starting_worker_reads_every_change_before_it_processes_anything() -> None:
    broker = FakeBroker()
    broker.create("t.fin.master-data", 2)
    changes: list[DepartmentChange | PeriodChange] = [
        change_of(
            "OPS-002",
            "REGISTER",
            name="Ops",
            requested_by="a",
            reason="",
            at_ms=1,
            event_id=str(uuid.UUID(int=1)),
        ),
        PeriodChange("2024-03", "CLOSE", "a.controller", "month end", 2, str(uuid.UUID(int=2))),
    ]
    for partition, change in enumerate(changes):
        broker.append(
            "t.fin.master-data", partition, change.key.encode(), orjson.dumps(change.to_json_dict())
        )
    broker.append("t.fin.master-data", 0, b"tombstone", None)
    register, periods = DepartmentRegister(), PeriodRegister()
    consumer = ClosableConsumer(broker)
    taken = preload("unused:9092", "t.fin.master-data", register, periods, consumer=consumer)
    assert consumer.closed
    assert taken == 2
    assert register.is_active("OPS-002") and periods.is_closed("2024-02")


class ClosableConsumer(FakeConsumer):
    closed = False

    def close(self) -> None:
        self.closed = True
