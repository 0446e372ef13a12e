"""`check_all` against a hand-written fake registry that, like Apicurio, answers "compatible"
to a decimal whose scale or precision changed, and "incompatible" without saying why."""

from __future__ import annotations

import copy
import json
from typing import Any

from errors import RegistryRequestError
from schemas.registry import (
    FULL_TRANSITIVE,
    RegisteredSchema,
    SchemaNotFound,
    check_all,
    ensure_compatibility,
)
from tests.unit.schemas.fixtures import GOODS, PAYROLL, SALES, catalog, entry


def with_data_field(fullname: str, name: str, change: dict[str, Any]) -> str:
    """The local schema of `fullname` with the data field `name`'s type updated by `change`."""
    schema = copy.deepcopy(dict(entry(fullname).schema_json))
    data = next(field for field in schema["fields"] if field["name"] == "data")["type"]
    field = next(field for field in data["fields"] if field["name"] == name)
    field["type"] = {**field["type"], **change}
    return json.dumps(schema)


def with_required_data_field(fullname: str, name: str) -> str:
    schema = copy.deepcopy(dict(entry(fullname).schema_json))
    data = next(field for field in schema["fields"] if field["name"] == "data")["type"]
    data["fields"].append({"name": name, "type": "string"})
    return json.dumps(schema)


class FakeSubjects:
    """The latest version of each subject; compatibility answers given by the test."""

    def __init__(self) -> None:
        self.latest_texts = {item.subject: item.schema_str for item in catalog().entries}
        self.versions = {subject: 1 for subject in self.latest_texts}
        self.incompatible: set[str] = set()

    def latest(self, subject: str) -> RegisteredSchema:
        if subject not in self.latest_texts:
            raise SchemaNotFound(f"subject {subject} not found (fake)", 40401)
        return RegisteredSchema(subject, self.versions[subject], 1, self.latest_texts[subject])

    def check_compatibility(self, subject: str, schema_str: str) -> tuple[bool, list[str]]:
        return subject not in self.incompatible, []

    def get_compatibility(self, subject: str) -> str:
        return FULL_TRANSITIVE


def test_check_all_is_clean_when_the_registry_holds_exactly_the_local_schemas():
    assert check_all(catalog(), FakeSubjects()) == []


def test_check_all_reports_a_decimal_scale_the_registry_accepted_as_compatible():
    registry = FakeSubjects()
    subject = entry(SALES).subject
    registry.latest_texts[subject] = with_data_field(SALES, "total_amount", {"scale": 3})
    registry.versions[subject] = 2

    problems = check_all(catalog(), registry)

    assert problems == [
        f"{subject}: crm_sales_order_completed.avsc differs from registered version 2: "
        "field 'data.total_amount' changed from decimal(18,3) to decimal(18,2) "
        "(a logical type, precision or scale may not change)"
    ]


def test_check_all_reports_a_decimal_precision_and_a_lost_logical_type():
    registry = FakeSubjects()
    goods, payroll = entry(GOODS).subject, entry(PAYROLL).subject
    registry.latest_texts[goods] = with_data_field(GOODS, "total_amount", {"precision": 12})
    registry.latest_texts[payroll] = with_data_field(
        PAYROLL, "pay_period_end", {"logicalType": "time-millis"}
    )

    problems = check_all(catalog(), registry)

    assert len(problems) == 2
    assert "field 'data.pay_period_end' changed from time-millis to date" in problems[0]
    assert problems[0].startswith(f"{payroll}: ")
    assert "field 'data.total_amount' changed from decimal(12,2) to decimal(18,2)" in problems[1]
    assert problems[1].startswith(f"{goods}: ")


def test_check_all_explains_an_incompatibility_the_registry_gave_no_reason_for():
    registry = FakeSubjects()
    subject = entry(SALES).subject
    registry.latest_texts[subject] = with_required_data_field(SALES, "approver_id")
    registry.incompatible.add(subject)

    problems = check_all(catalog(), registry)

    assert len(problems) == 1
    assert problems[0].startswith(f"{subject}: crm_sales_order_completed.avsc is incompatible: ")
    assert "version 1 cannot read ours: reader field 'approver_id' has no default" in problems[0]


def test_check_all_reports_a_registered_schema_it_cannot_parse():
    registry = FakeSubjects()
    subject = entry(SALES).subject
    registry.latest_texts[subject] = json.dumps(
        {"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 5}
    )

    problems = check_all(catalog(), registry)

    assert len(problems) == 1
    assert problems[0].startswith(f"{subject}: crm_sales_order_completed.avsc differs")
    assert "the registered schema cannot be parsed" in problems[0]


class RacingConfig:
    """A registry where another worker set the subject's level a moment before us (409)."""

    def __init__(self, level_set_by_the_other: str) -> None:
        self.level = level_set_by_the_other
        self.puts: list[str] = []

    def set_compatibility(self, subject: str, level: str) -> None:
        self.puts.append(level)
        if len(self.puts) == 1:
            raise RegistryRequestError("HTTP 409: A rule named 'COMPATIBILITY' already exists.")
        self.level = level

    def get_compatibility(self, subject: str) -> str:
        return self.level


def test_a_409_from_a_concurrent_worker_setting_the_same_level_is_accepted() -> None:
    registry = RacingConfig("FULL_TRANSITIVE")
    ensure_compatibility(registry, "hr.events-erp.hr.PayrollProcessed", "FULL_TRANSITIVE")  # type: ignore[arg-type]
    assert registry.puts == ["FULL_TRANSITIVE"]


def test_a_409_leaving_another_level_in_place_is_followed_by_one_more_put() -> None:
    registry = RacingConfig("BACKWARD")
    ensure_compatibility(registry, "hr.events-erp.hr.PayrollProcessed", "FULL_TRANSITIVE")  # type: ignore[arg-type]
    assert registry.level == "FULL_TRANSITIVE" and len(registry.puts) == 2
