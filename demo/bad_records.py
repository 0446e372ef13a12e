"""Hand-built bad records for tests and demos: Kafka records FIN must refuse, at least one per
decoding and validation reason, each naming the reason it must be dead-lettered with."""

import datetime as dt
import io
import random
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import fastavro

from demo.generator import specification_sample, utc
from ledger.event_json import envelope
from schemas.catalog import SchemaCatalog, key_for
from schemas.wire import frame

UNREGISTERED_SCHEMA_ID = 0x7FFF_FFF0  # far above any id a fresh registry hands out
WIDE_DECIMAL_PRECISION = 38


class BadRecord(NamedTuple):
    """A Kafka record FIN must refuse, and the reason it must name (contract topic name)."""

    topic: str
    key: bytes | None
    value: bytes | None
    expected_reason: str


def bad_records(
    seed: int,
    schema_id_for: Callable[[str], int],
    catalog: SchemaCatalog | None = None,
) -> list[BadRecord]:
    """Hand-built bad records, at least one per decoding and validation reason.

    `schema_id_for` maps a contract subject to its registry id (as for `Encoder`). The byte
    surgery relies on fastavro's encoding of our own schemas, so each value is otherwise valid:
    it fails for exactly the reason it names.
    """
    catalog = catalog if catalog is not None else SchemaCatalog.load()
    builder = _BadRecordBuilder(random.Random(seed), schema_id_for, catalog)
    return builder.all()


class _BadRecordBuilder:
    def __init__(
        self, rng: random.Random, schema_id_for: Callable[[str], int], catalog: SchemaCatalog
    ) -> None:
        self.rng = rng
        self.schema_id_for = schema_id_for
        self.catalog = catalog

    def sample(self, event_type: str, **data_changes: Any) -> dict[str, Any]:
        """A fresh copy of a specification sample with a new event id and changed data."""
        return specification_sample(event_type, self.uuid(), **data_changes)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def framed(
        self, record: dict[str, Any], payload: bytes | None = None, fullname: str | None = None
    ) -> bytes:
        entry = self.catalog.entry_for_record(record, fullname)
        body = payload if payload is not None else self.payload(record, fullname=fullname)
        return frame(self.schema_id_for(entry.subject), body)

    def payload(
        self, record: dict[str, Any], widen_decimals: bool = False, fullname: str | None = None
    ) -> bytes:
        """fastavro's plain encoding: none of FIN's own strictness, so bad values get through."""
        entry = self.catalog.entry_for_record(record, fullname)
        schema: Any = entry.schema_json
        if widen_decimals:
            # Same bytes layout (two's complement of the unscaled value), more digits allowed.
            schema = _with_decimal_precision(schema, WIDE_DECIMAL_PRECISION)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
        return buffer.getvalue()

    def bad(
        self,
        topic: str,
        record: dict[str, Any],
        value: bytes,
        reason: str,
        fullname: str | None = None,
    ) -> BadRecord:
        return BadRecord(topic, key_for(record, fullname).encode(), value, reason)

    def all(self) -> list[BadRecord]:
        return [
            *self.wire_format(),
            *self.schema_level(),
            *self.undecodable(),
            *self.validation(),
            *self.posting(),
        ]

    def wire_format(self) -> list[BadRecord]:
        valid = self.framed(self.sample("crm.sales_order.completed"))
        reason = "wire_format_invalid"
        return [
            BadRecord("crm.events", b"SO-TOMBSTONE", None, reason),
            BadRecord("crm.events", b"SO-SHORT", valid[:3], reason),
            BadRecord("crm.events", b"SO-MAGIC", b"\x01" + valid[1:], reason),
        ]

    def schema_level(self) -> list[BadRecord]:
        sales = self.sample("crm.sales_order.completed")
        unknown_id = frame(UNREGISTERED_SCHEMA_ID, self.payload(sales))
        return [
            self.bad("crm.events", sales, unknown_id, "schema_unknown"),
            # A well-formed sales order on the HR topic: its subject is not allowed there.
            self.bad("hr.events", sales, self.framed(sales), "schema_subject_mismatch"),
        ]

    def undecodable(self) -> list[BadRecord]:
        reason = "payload_undecodable"
        sales = self.sample("crm.sales_order.completed")
        whole = self.payload(sales)
        # The customer id is replaced, byte for byte, by invalid UTF-8 of the same length.
        marked = self.sample("crm.sales_order.completed", customer_id="CUS-MARK")
        marked_payload = self.payload(marked)
        assert marked_payload.count(b"CUS-MARK") == 1
        invalid_utf8 = marked_payload.replace(b"CUS-MARK", b"CUS-\xff\xfe\xfd\xfc")
        # business_date (null | date) is the last field: its branch index 0 is the last byte;
        # 4 is the zigzag encoding of branch 2, which the union does not have.
        goods = self.sample("scm.goods.received")
        goods_payload = self.payload(goods)
        assert goods_payload[-1:] == b"\x00"
        bad_branch = goods_payload[:-1] + b"\x04"
        return [
            self.bad("crm.events", sales, self.framed(sales, whole[:-3]), reason),
            self.bad("crm.events", sales, self.framed(sales, whole + b"\x00\x00"), reason),
            self.bad("crm.events", marked, self.framed(marked, invalid_utf8), reason),
            self.bad("scm.events", goods, self.framed(goods, bad_branch), reason),
            self.bad("crm.events", sales, self.framed(sales, b""), reason),
        ]

    def validation(self) -> list[BadRecord]:
        unknown_type = self.sample("hr.payroll.processed")
        unknown_type["event_type"] = "hr.payroll.reversed"
        not_uuid = self.sample("crm.sales_order.completed")
        not_uuid["event_id"] = "not-a-uuid"
        upper_uuid = self.sample("crm.sales_order.completed")
        upper_uuid["event_id"] = "5A3C1E6E-0B1F-4C55-9D7A-0000000000FF"  # canonical is lower
        long_vendor = self.sample("scm.goods.received", vendor_id="VEN-" + "9" * 400)
        long_source = self.sample("pm.time.logged")
        long_source["source"] = "pm-service " + "x" * 5000
        negative = self.sample("crm.sales_order.completed", total_amount=Decimal("-5.00"))
        zero = self.sample("scm.goods.received", total_amount=Decimal("0.00"))
        too_big = self.sample(
            "crm.sales_order.completed", total_amount=Decimal("12345678901234567.89")
        )
        too_early = self.sample("pm.time.logged")
        too_early["timestamp"] = utc("1999-12-31T23:59:59Z")
        too_late = self.sample("pm.time.logged")
        too_late["timestamp"] = utc("2999-01-01T00:00:00Z")
        bad_quarter = self.sample("fin.budget.set", period="2024-Q5")
        bad_month = self.sample("fin.budget.set", period="2024-13")
        inverted = self.sample(
            "hr.payroll.processed",
            pay_period_start=dt.date(2024, 3, 16),
            pay_period_end=dt.date(2024, 3, 15),
        )
        euro = self.sample("crm.sales_order.completed", currency="EUR")
        unknown_department = self.sample("fin.budget.set", department_id="XYZ-999")
        lines_mismatch = self.sample(
            "hr.payroll.processed",
            department_id=None,
            department_lines=[
                {"department_id": "ENG-001", "category": "SALARY", "amount": Decimal("100000.00")}
            ],
        )
        payroll = "erp.hr.PayrollProcessed"
        plain = [
            ("crm.events", not_uuid, "event_id_invalid"),
            ("crm.events", upper_uuid, "event_id_invalid"),
            ("scm.events", long_vendor, "field_too_long"),
            ("pm.events", long_source, "field_too_long"),
            ("crm.events", negative, "amount_must_be_positive"),
            ("scm.events", zero, "amount_must_be_positive"),
            ("pm.events", too_early, "timestamp_out_of_range"),
            ("pm.events", too_late, "timestamp_out_of_range"),
            ("fin.commands", bad_quarter, "period_invalid"),
            ("fin.commands", bad_month, "period_invalid"),
            ("hr.events", inverted, "period_invalid"),
            ("crm.events", euro, "reference_unknown"),
            ("fin.commands", unknown_department, "reference_unknown"),
            ("hr.events", lines_mismatch, "amount_lines_mismatch"),
        ]
        widened = self.framed(too_big, self.payload(too_big, widen_decimals=True))
        return [
            self.bad(
                "hr.events",
                unknown_type,
                self.framed(unknown_type, fullname=payroll),
                "event_type_unknown",
                fullname=payroll,
            ),
            *(
                self.bad(topic, record, self.framed(record), reason)
                for topic, record, reason in plain
            ),
            self.bad("crm.events", too_big, widened, "amount_exceeds_precision"),
        ]

    def posting(self) -> list[BadRecord]:
        orphan = envelope(
            "fin.compensation.requested",
            self.uuid(),
            utc("2024-03-20T09:00:00Z"),
            {"target_event_id": self.uuid(), "reason": "no such event was ever posted"},
            source="fin-demo",
        )
        reason = "compensation_target_unknown"
        return [self.bad("fin.commands", orphan, self.framed(orphan), reason)]


def _with_decimal_precision(schema_json: Any, precision: int) -> Any:
    if isinstance(schema_json, list):
        return [_with_decimal_precision(item, precision) for item in schema_json]
    if not isinstance(schema_json, Mapping):
        return schema_json
    result = {key: _with_decimal_precision(value, precision) for key, value in schema_json.items()}
    if result.get("logicalType") == "decimal":
        result["precision"] = precision
    return result
