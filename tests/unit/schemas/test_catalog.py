"""The schema catalog: the contract table, the .avsc files, and failing at start."""

from __future__ import annotations

import json
import shutil

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from errors import SchemaError
from schemas.catalog import CONTRACTS, SCHEMA_DIRECTORY, SchemaCatalog, key_for, subject_for
from tests.unit.schemas.fixtures import (
    EXTRA_OPTIONAL_FIELD,
    SALES,
    catalog,
    entry,
    sales_order,
    sales_schema_with,
)

EVENT_TOPICS = {
    "hr.payroll.processed": ("hr.events", "erp.hr.PayrollProcessed", "payroll_id"),
    "scm.goods.received": ("scm.events", "erp.scm.GoodsReceived", "purchase_order_id"),
    "crm.sales_order.completed": ("crm.events", "erp.crm.SalesOrderCompleted", "sales_order_id"),
    "mfg.production_order.completed": (
        "mfg.events",
        "erp.mfg.ProductionOrderCompleted",
        "production_order_id",
    ),
    "pm.time.logged": ("pm.events", "erp.pm.TimeLogged", "project_id"),
    "fin.budget.set": ("fin.commands", "fin.commands.BudgetSet", "department_id"),
    "fin.credit_limit.set": ("fin.commands", "fin.commands.CreditLimitSet", "customer_id"),
    "fin.vendor_payment.made": ("fin.commands", "fin.commands.VendorPaymentMade", "vendor_id"),
    "fin.customer_payment.received": (
        "fin.commands",
        "fin.commands.CustomerPaymentReceived",
        "customer_id",
    ),
    "fin.compensation.requested": (
        "fin.commands",
        "fin.commands.CompensationRequested",
        "target_event_id",
    ),
    "fin.department.changed": (
        "fin.commands",
        "fin.commands.DepartmentChanged",
        "department_id",
    ),
    "fin.period.changed": ("fin.commands", "fin.commands.PeriodChanged", "period"),
}


def walk_fields(schema):
    """Every (path, field) of a schema JSON, nested records and array items included."""
    stack = [("", schema)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, list):
            stack.extend((prefix, branch) for branch in node)
        elif isinstance(node, dict):
            for field in node.get("fields", ()):
                path = f"{prefix}{field['name']}"
                yield path, field
                stack.append((path + ".", field["type"]))
            if "items" in node:
                stack.append((prefix, node["items"]))


def decimal_types(schema):
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("logicalType") == "decimal":
                yield node
            stack.extend(v for k, v in node.items() if k in ("type", "items", "values"))
            stack.extend(field["type"] for field in node.get("fields", ()))


def test_the_catalog_maps_every_event_type_to_its_topic_record_and_key():
    by_event_type = catalog().by_event_type

    assert set(by_event_type) == set(EVENT_TOPICS)
    for event_type, (topic, fullname, key_field) in EVENT_TOPICS.items():
        item = by_event_type[event_type]
        assert (item.topic, item.fullname, item.key_field) == (topic, fullname, key_field)


def test_the_catalog_holds_the_journal_entry_and_the_alert():
    assert catalog().by_fullname["fin.ledger.JournalEntry"].topic == "fin.ledger.postings"
    assert catalog().by_fullname["fin.alerts.Alert"].topic == "fin.alerts"
    assert len(catalog().entries) == len(CONTRACTS) == 14


def test_each_topic_allows_exactly_its_own_records():
    allowed = catalog().allowed_by_topic

    assert allowed["hr.events"] == {"erp.hr.PayrollProcessed"}
    assert len(allowed["fin.commands"]) == 7
    assert catalog().allowed_fullnames("no.such.topic") == frozenset()


def test_subjects_follow_the_topic_record_name_strategy():
    assert subject_for("crm.events", SALES) == "crm.events-erp.crm.SalesOrderCompleted"
    assert SchemaCatalog.subject_for("crm.events", SALES) == entry(SALES).subject


def test_every_field_of_every_schema_is_documented():
    undocumented = [
        f"{item.path.name}: {path}"
        for item in catalog().entries
        for path, field in walk_fields(item.schema_json)
        if not field.get("doc")
    ]

    assert undocumented == []


def test_every_event_has_the_envelope_of_the_contract():
    for item in catalog().entries:
        if item.contract.event_type is None:
            continue
        fields = {field["name"]: field for field in item.schema_json["fields"]}
        assert list(fields) == ["event_type", "event_id", "timestamp", "source", "data"]
        assert fields["event_id"]["type"] == {"type": "string", "logicalType": "uuid"}
        assert fields["timestamp"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
        assert fields["source"]["default"] == ""


def test_all_money_is_decimal_18_2_and_no_schema_has_a_float():
    for item in catalog().entries:
        for decimal in decimal_types(item.schema_json):
            assert decimal == {
                "type": "bytes",
                "logicalType": "decimal",
                "precision": 18,
                "scale": 2,
            }
        assert '"double"' not in item.schema_str and '"float"' not in item.schema_str


def test_every_optional_union_puts_null_first_with_a_null_default():
    for item in catalog().entries:
        for path, field in walk_fields(item.schema_json):
            if isinstance(field["type"], list):
                assert field["type"][0] == "null", f"{item.path.name}: {path}"
                assert field.get("default", "absent") is None, f"{item.path.name}: {path}"


def test_an_added_optional_field_is_fully_compatible_both_ways():
    # What FULL_TRANSITIVE demands of the next version: old readers read new data and back.
    current = avro.schema.parse(entry(SALES).schema_str)
    evolved = avro.schema.parse(json.dumps(sales_schema_with(EXTRA_OPTIONAL_FIELD)))
    checker = ReaderWriterCompatibilityChecker()

    assert checker.get_compatibility(evolved, current).compatibility is (
        SchemaCompatibilityType.compatible
    )
    assert checker.get_compatibility(current, evolved).compatibility is (
        SchemaCompatibilityType.compatible
    )


def test_key_for_returns_the_business_entity_id():
    assert key_for(sales_order()) == "SO-2024-001234"
    assert key_for({"entry_id": "e-1", "subject": "x"}) == "e-1"
    assert key_for({"alert_id": "a-1", "subject": "ENG-001"}) == "ENG-001"


@pytest.fixture
def schema_copy(tmp_path):
    for path in SCHEMA_DIRECTORY.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_copy_of_the_schema_directory_loads(schema_copy):
    assert len(SchemaCatalog.load(schema_copy).entries) == 14


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('{"type": "record", "name": ', "not readable JSON"),
        (
            '{"type": "record", "name": "erp.crm.SalesOrderCompleted", "fields": '
            '[{"name": "x", "type": "no_such_type"}]}',
            "fastavro rejects",
        ),
        (
            '{"type": "record", "name": "erp.crm.SalesOrderCompleted", "fields": '
            '[{"name": "x", "type": "int"}, {"name": "x", "type": "long"}]}',
            "avro parser rejects",
        ),
        (
            '{"type": "record", "name": "erp.crm.SalesOrderCompleted", "fields": '
            '[{"name": "x", "type": ["null", "string"], "default": "a"}]}',
            "default of x",
        ),
        ('{"type": "record", "name": "erp.crm.Unheard", "fields": []}', "not in the contract"),
        ('"string"', "must be an Avro record"),
    ],
    ids=[
        "broken JSON",
        "an unknown type",
        "a field defined twice",
        "a union default that fits no first branch",
        "an unknown record",
        "not a record",
    ],
)
def test_a_malformed_schema_file_raises_schema_error_naming_the_file(schema_copy, text, complaint):
    (schema_copy / "zz_broken.avsc").write_text(text)

    with pytest.raises(SchemaError, match=complaint) as raised:
        SchemaCatalog.load(schema_copy)

    assert "zz_broken.avsc" in str(raised.value)


def test_a_missing_schema_file_stops_the_load(schema_copy):
    (schema_copy / "crm_sales_order_completed.avsc").unlink()

    with pytest.raises(SchemaError, match=r"erp\.crm\.SalesOrderCompleted"):
        SchemaCatalog.load(schema_copy)


def test_a_schema_without_its_key_field_stops_the_load(schema_copy):
    path = schema_copy / "crm_sales_order_completed.avsc"
    schema = json.loads(path.read_text())
    data_fields = schema["fields"][4]["type"]["fields"]
    schema["fields"][4]["type"]["fields"] = [
        field for field in data_fields if field["name"] != "sales_order_id"
    ]
    path.write_text(json.dumps(schema))

    with pytest.raises(SchemaError, match=r"crm_sales_order_completed\.avsc.*sales_order_id"):
        SchemaCatalog.load(schema_copy)


def test_a_record_defined_twice_stops_the_load(schema_copy):
    shutil.copy(schema_copy / "crm_sales_order_completed.avsc", schema_copy / "zz_copy.avsc")

    with pytest.raises(SchemaError, match="also defined"):
        SchemaCatalog.load(schema_copy)
