"""The Avro contracts FIN reads and writes, loaded and checked once at start.

The event contract table of docs/design.md lives here as data (`CONTRACTS`); the `.avsc` files
beside this module hold the Avro schemas. `SchemaCatalog.load` parses every file with both fastavro
and the reference `avro` parser, so a malformed schema stops the worker before the first message.
"""

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import avro.errors
import avro.schema
import fastavro

from errors import SchemaError

SCHEMA_DIRECTORY = Path(__file__).resolve().parent
ENVELOPE_FIELDS = ("event_type", "event_id", "timestamp", "source", "data")


@dataclass(frozen=True)
class RecordContract:
    """Where a record type travels and what keys it: one row of the contract table."""

    fullname: str
    topic: str
    key_path: tuple[str, ...]
    event_type: str | None = None  # None for records without the event envelope

    @property
    def key_field(self) -> str:
        return self.key_path[-1]

    @property
    def has_envelope(self) -> bool:
        return self.event_type is not None


def _event(event_type: str, topic: str, fullname: str, key_field: str) -> RecordContract:
    return RecordContract(fullname, topic, ("data", key_field), event_type)


CONTRACTS: tuple[RecordContract, ...] = (
    _event("hr.payroll.processed", "hr.events", "erp.hr.PayrollProcessed", "payroll_id"),
    _event("scm.goods.received", "scm.events", "erp.scm.GoodsReceived", "purchase_order_id"),
    _event(
        "crm.sales_order.completed", "crm.events", "erp.crm.SalesOrderCompleted", "sales_order_id"
    ),
    _event(
        "mfg.production_order.completed",
        "mfg.events",
        "erp.mfg.ProductionOrderCompleted",
        "production_order_id",
    ),
    _event("pm.time.logged", "pm.events", "erp.pm.TimeLogged", "project_id"),
    _event("fin.budget.set", "fin.commands", "fin.commands.BudgetSet", "department_id"),
    _event("fin.credit_limit.set", "fin.commands", "fin.commands.CreditLimitSet", "customer_id"),
    _event(
        "fin.vendor_payment.made", "fin.commands", "fin.commands.VendorPaymentMade", "vendor_id"
    ),
    _event(
        "fin.customer_payment.received",
        "fin.commands",
        "fin.commands.CustomerPaymentReceived",
        "customer_id",
    ),
    _event(
        "fin.compensation.requested",
        "fin.commands",
        "fin.commands.CompensationRequested",
        "target_event_id",
    ),
    _event(
        "fin.department.changed",
        "fin.commands",
        "fin.commands.DepartmentChanged",
        "department_id",
    ),
    _event("fin.period.changed", "fin.commands", "fin.commands.PeriodChanged", "period"),
    RecordContract("fin.ledger.JournalEntry", "fin.ledger.postings", ("entry_id",)),
    RecordContract("fin.alerts.Alert", "fin.alerts", ("subject",)),
)

CONTRACT_BY_FULLNAME: Mapping[str, RecordContract] = MappingProxyType(
    {contract.fullname: contract for contract in CONTRACTS}
)
CONTRACT_BY_EVENT_TYPE: Mapping[str, RecordContract] = MappingProxyType(
    {contract.event_type: contract for contract in CONTRACTS if contract.event_type is not None}
)


def subject_for(topic: str, fullname: str) -> str:
    """Registry subject under TopicRecordNameStrategy."""
    return f"{topic}-{fullname}"


# Records without the event envelope are told apart by a field only they have.
IDENTIFYING_FIELD: Mapping[str, str] = MappingProxyType(
    {"entry_id": "fin.ledger.JournalEntry", "alert_id": "fin.alerts.Alert"}
)


def contract_for_record(record: Mapping[str, Any], fullname: str | None = None) -> RecordContract:
    """The contract of a record dict: by `fullname` when given, else by its `event_type`, else
    (journal entries, alerts) by the field that identifies the record type."""
    if fullname is None and "event_type" not in record:
        found = [name for field, name in IDENTIFYING_FIELD.items() if field in record]
        if len(found) == 1:
            fullname = found[0]
    if fullname is not None:
        contract = CONTRACT_BY_FULLNAME.get(fullname)
        if contract is None:
            raise KeyError(f"no contract for record {fullname!r}")
        return contract
    event_type = record.get("event_type")
    contract = CONTRACT_BY_EVENT_TYPE.get(event_type) if isinstance(event_type, str) else None
    if contract is None:
        raise KeyError(f"no contract for event_type {event_type!r}")
    return contract


def key_for(record: Mapping[str, Any], fullname: str | None = None) -> str:
    """The Kafka key of a record: the business entity id of the contract table."""
    contract = contract_for_record(record, fullname)
    value: Any = record
    for name in contract.key_path:
        value = value[name]
    if not isinstance(value, str):
        raise TypeError(f"key field {contract.key_field} is {type(value).__name__}, not str")
    return value


@dataclass(frozen=True)
class SchemaEntry:
    """One loaded schema: its contract, file, registry text and parsed (reader) form."""

    contract: RecordContract
    path: Path
    schema_json: Mapping[str, Any]  # the file's JSON, for walking fields
    schema_str: str  # compact JSON text, what is registered
    parsed: dict[str, Any]  # fastavro's parsed schema, the reader schema (never mutated)

    @property
    def fullname(self) -> str:
        return self.contract.fullname

    @property
    def topic(self) -> str:
        return self.contract.topic

    @property
    def subject(self) -> str:
        return subject_for(self.contract.topic, self.contract.fullname)

    @property
    def key_field(self) -> str:
        return self.contract.key_field


class SchemaCatalog:
    """Every FIN schema, indexed by event type, record name, topic and subject."""

    def __init__(self, entries: tuple[SchemaEntry, ...]) -> None:
        self.entries = entries
        self.by_fullname: Mapping[str, SchemaEntry] = MappingProxyType(
            {entry.fullname: entry for entry in entries}
        )
        self.by_event_type: Mapping[str, SchemaEntry] = MappingProxyType(
            {
                entry.contract.event_type: entry
                for entry in entries
                if entry.contract.event_type is not None
            }
        )
        self.by_subject: Mapping[str, SchemaEntry] = MappingProxyType(
            {entry.subject: entry for entry in entries}
        )
        allowed: dict[str, set[str]] = {}
        for entry in entries:
            allowed.setdefault(entry.topic, set()).add(entry.fullname)
        self.allowed_by_topic: Mapping[str, frozenset[str]] = MappingProxyType(
            {topic: frozenset(names) for topic, names in allowed.items()}
        )

    @classmethod
    def load(cls, directory: Path | str = SCHEMA_DIRECTORY) -> "SchemaCatalog":
        """Parse every `.avsc` in `directory`; raise SchemaError naming the first bad file."""
        paths = sorted(Path(directory).glob("*.avsc"))
        entries: dict[str, SchemaEntry] = {}
        for path in paths:
            entry = _load_entry(path)
            if entry.fullname in entries:
                raise SchemaError(
                    f"{path.name}: record {entry.fullname} is also defined in "
                    f"{entries[entry.fullname].path.name}"
                )
            entries[entry.fullname] = entry
        missing = [c.fullname for c in CONTRACTS if c.fullname not in entries]
        if missing:
            raise SchemaError(f"{directory}: no .avsc file defines {', '.join(missing)}")
        return cls(tuple(entries[contract.fullname] for contract in CONTRACTS))

    def allowed_fullnames(self, topic: str) -> frozenset[str]:
        return self.allowed_by_topic.get(topic, frozenset())

    def entry_for_record(
        self, record: Mapping[str, Any], fullname: str | None = None
    ) -> SchemaEntry:
        return self.by_fullname[contract_for_record(record, fullname).fullname]

    @staticmethod
    def subject_for(topic: str, fullname: str) -> str:
        return subject_for(topic, fullname)


def _load_entry(path: Path) -> SchemaEntry:
    try:
        text = path.read_text(encoding="utf-8")
        schema_json = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path.name}: not readable JSON: {exc}") from exc
    if not isinstance(schema_json, dict) or schema_json.get("type") != "record":
        raise SchemaError(f"{path.name}: the top level must be an Avro record")
    try:
        parsed = fastavro.parse_schema(schema_json)
    except Exception as exc:  # fastavro raises several unrelated types for a bad schema
        raise SchemaError(f"{path.name}: fastavro rejects the schema: {exc}") from exc
    try:
        with warnings.catch_warnings():
            # An ignored logical type (e.g. a decimal whose scale exceeds its precision) is a bug.
            warnings.simplefilter("error", avro.errors.IgnoredLogicalType)
            reference = avro.schema.parse(text)
    except (avro.errors.AvroException, avro.errors.AvroWarning, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path.name}: the avro parser rejects the schema: {exc}") from exc
    assert isinstance(parsed, dict)  # the top level was checked to be a record
    fullname = str(parsed["name"])
    if not isinstance(reference, avro.schema.RecordSchema) or reference.fullname != fullname:
        raise SchemaError(f"{path.name}: parsers disagree on the record name ({fullname})")
    contract = CONTRACT_BY_FULLNAME.get(fullname)
    if contract is None:
        raise SchemaError(f"{path.name}: record {fullname} is not in the contract table")
    _check_shape(path, schema_json, contract)
    return SchemaEntry(
        contract=contract,
        path=path,
        schema_json=schema_json,
        schema_str=json.dumps(schema_json, separators=(",", ":"), ensure_ascii=False),
        parsed=parsed,
    )


def _check_shape(path: Path, schema_json: Mapping[str, Any], contract: RecordContract) -> None:
    """Defaults fit their types; the envelope and key field FIN relies on are in the file."""
    _check_defaults(path, schema_json)
    fields = {field["name"]: field for field in schema_json["fields"]}
    if contract.has_envelope:
        absent = [name for name in ENVELOPE_FIELDS if name not in fields]
        if absent:
            raise SchemaError(f"{path.name}: envelope field(s) missing: {', '.join(absent)}")
    level: Mapping[str, Any] = schema_json
    for name in contract.key_path:
        by_name = {field["name"]: field for field in level.get("fields", ())}
        if name not in by_name:
            raise SchemaError(f"{path.name}: key field {'.'.join(contract.key_path)} missing")
        level = by_name[name]["type"] if isinstance(by_name[name]["type"], dict) else {}


_DEFAULT_TYPES: Mapping[str, type | tuple[type, ...]] = MappingProxyType(
    {
        "null": type(None),
        "boolean": bool,
        "int": int,
        "long": int,
        "float": (int, float),
        "double": (int, float),
        "string": str,
        "bytes": str,
        "array": list,
        "map": dict,
        "record": dict,
        "enum": str,
        "fixed": str,
    }
)


def _check_defaults(path: Path, schema: Any, prefix: str = "") -> None:
    """A default must fit the field's type, or the first branch of a union (Avro spec).

    Neither parser checks that for unions, and a registry that does refuses the schema only at
    registration; the usual slip is `["null", "string"]` with a non-null default.
    """
    if isinstance(schema, list):
        for branch in schema:
            _check_defaults(path, branch, prefix)
        return
    if not isinstance(schema, Mapping):
        return
    for field in schema.get("fields", ()):
        field_path = f"{prefix}{field['name']}"
        field_type = field["type"]
        if "default" in field:
            first = field_type[0] if isinstance(field_type, list) else field_type
            kind = first.get("type") if isinstance(first, Mapping) else first
            expected = _DEFAULT_TYPES.get(str(kind))
            default = field["default"]
            wrong_bool = isinstance(default, bool) and kind not in ("boolean",)
            if expected is not None and (not isinstance(default, expected) or wrong_bool):
                raise SchemaError(
                    f"{path.name}: default of {field_path} ({default!r}) does not fit {kind}"
                )
        _check_defaults(path, field_type, field_path + ".")
    if "items" in schema:
        _check_defaults(path, schema["items"], prefix)
    if "values" in schema:
        _check_defaults(path, schema["values"], prefix)
