"""Hand-written fakes and strategies for the schemas tests: no network, no mocks."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from decimal import Decimal
from functools import cache
from typing import Any

import fastavro
from hypothesis import strategies as st

from errors import RegistryUnavailableError
from schemas.catalog import SchemaCatalog, SchemaEntry
from schemas.codec import Decoder, Encoder
from schemas.registry import SchemaNotFound
from schemas.wire import frame

SALES = "erp.crm.SalesOrderCompleted"
GOODS = "erp.scm.GoodsReceived"
PAYROLL = "erp.hr.PayrollProcessed"

# Fake registry ids beyond the catalog's own (which get 1..12 in catalog order).
ID_SALES_WITH_EXTRA_FIELD = 101
ID_SALES_AMOUNT_PLAIN_BYTES = 102
ID_SALES_AMOUNT_AS_STRING = 103
ID_NOT_A_RECORD = 104
ID_NOT_JSON = 105
ID_UNKNOWN_RECORD = 106
ID_SALES_WITH_DOUBLE = 107
ID_SALES_WIDE_DECIMAL = 108
ID_MISSING = 999


@cache
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


def entry(fullname: str) -> SchemaEntry:
    return catalog().by_fullname[fullname]


def catalog_ids() -> dict[str, int]:
    """Contract subject -> fake id."""
    return {item.subject: index for index, item in enumerate(catalog().entries, start=1)}


def id_of(fullname: str) -> int:
    return catalog_ids()[entry(fullname).subject]


def sales_schema_with(
    field: dict[str, Any] | None = None, amount_type: Any = None, precision: int | None = None
) -> dict[str, Any]:
    """The sales order schema, changed the way another producer's version might be."""
    schema = copy.deepcopy(dict(entry(SALES).schema_json))
    data_fields = schema["fields"][4]["type"]["fields"]
    if field is not None:
        data_fields.append(field)
    for data_field in data_fields:
        if data_field["name"] == "total_amount":
            if amount_type is not None:
                data_field["type"] = amount_type
            if precision is not None:
                data_field["type"]["precision"] = precision
    return schema


EXTRA_OPTIONAL_FIELD = {
    "name": "sales_channel",
    "type": ["null", "string"],
    "default": None,
    "doc": "Where the order was taken (added in a later version).",
}


class FakeRegistry:
    """Serves schema texts by id like GET /schemas/ids/{id}; counts calls; can be 'down'."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        for item in catalog().entries:
            self.texts[catalog_ids()[item.subject]] = item.schema_str
        self.texts[ID_SALES_WITH_EXTRA_FIELD] = json.dumps(sales_schema_with(EXTRA_OPTIONAL_FIELD))
        self.texts[ID_SALES_AMOUNT_PLAIN_BYTES] = json.dumps(sales_schema_with(amount_type="bytes"))
        self.texts[ID_SALES_AMOUNT_AS_STRING] = json.dumps(sales_schema_with(amount_type="string"))
        self.texts[ID_NOT_A_RECORD] = json.dumps("string")
        self.texts[ID_NOT_JSON] = 'syntax = "proto3"; message Order {}'
        self.texts[ID_UNKNOWN_RECORD] = json.dumps(
            {"type": "record", "name": "erp.crm.Unheard", "fields": []}
        )
        self.texts[ID_SALES_WITH_DOUBLE] = json.dumps(
            sales_schema_with({"name": "discount_ratio", "type": "double", "doc": "share"})
        )
        self.texts[ID_SALES_WIDE_DECIMAL] = json.dumps(sales_schema_with(precision=38))
        self.calls: list[int] = []
        self.down = False

    def fetch_schema(self, schema_id: int) -> str:
        self.calls.append(schema_id)
        if self.down:
            raise RegistryUnavailableError("registry is down (fake)")
        if schema_id not in self.texts:
            raise SchemaNotFound(f"schema {schema_id} not found (fake)", 40403)
        return self.texts[schema_id]


def decoder(registry: FakeRegistry | None = None) -> Decoder:
    return Decoder(catalog(), (registry or FakeRegistry()).fetch_schema)


def encoder() -> Encoder:
    ids = catalog_ids()
    return Encoder(catalog(), ids.__getitem__)


def avro_body(schema: Any, record: dict[str, Any]) -> bytes:
    """fastavro's plain encoding (no FIN strictness), for hand-built bad values."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def framed(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    return frame(schema_id, avro_body(schema, record))


def sales_order(**data_changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_type": "crm.sales_order.completed",
        "event_id": "2d8b4d30-6f2c-4e77-9c79-3b208dbf4c03",
        "timestamp": dt.datetime(2024, 3, 15, 11, 0, tzinfo=dt.UTC),
        "source": "crm-service",
        "data": {
            "sales_order_id": "SO-2024-001234",
            "customer_id": "CUS-001",
            "total_amount": Decimal("25000.00"),
            "currency": "USD",
            "business_date": None,
        },
    }
    record["data"].update(data_changes)
    return record


# --- Hypothesis: any record of any FIN schema, built from the schema itself -------------------

MONEY_UNSCALED_MAX = 10**18 - 1
TIMESTAMP_MIN = dt.datetime(1, 1, 2)
TIMESTAMP_MAX = dt.datetime(9999, 12, 30)


def _timestamps() -> st.SearchStrategy[dt.datetime]:
    # Avro timestamp-millis keeps milliseconds: generate exactly what survives.
    return st.datetimes(
        min_value=TIMESTAMP_MIN, max_value=TIMESTAMP_MAX, timezones=st.just(dt.UTC)
    ).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def _money() -> st.SearchStrategy[Decimal]:
    return st.integers(-MONEY_UNSCALED_MAX, MONEY_UNSCALED_MAX).map(
        lambda unscaled: Decimal(unscaled).scaleb(-2)
    )


def values_for(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Python values of FIN's record shape for a fastavro-parsed schema node."""
    if isinstance(schema, list):
        return st.one_of([values_for(branch, named) for branch in schema])
    if isinstance(schema, str) and schema in named:
        return values_for(named[schema], named)
    if isinstance(schema, dict) and "logicalType" in schema:
        logical_type = schema["logicalType"]
        if logical_type == "decimal":
            assert (schema["precision"], schema["scale"]) == (18, 2)
            return _money()
        if logical_type == "date":
            return st.dates()
        if logical_type == "timestamp-millis":
            return _timestamps()
        if logical_type == "uuid":
            return st.uuids().map(str)
        raise AssertionError(f"no strategy for logical type {logical_type}")
    kind = schema["type"] if isinstance(schema, dict) else schema
    if kind == "record":
        return st.fixed_dictionaries(
            {field["name"]: values_for(field["type"], named) for field in schema["fields"]}
        )
    if kind == "array":
        return st.lists(values_for(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    primitives: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "string": st.text(max_size=20),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "boolean": st.booleans(),
    }
    return primitives[kind]


def records_of(item: SchemaEntry) -> st.SearchStrategy[dict[str, Any]]:
    strategy = values_for(item.parsed, item.parsed.get("__named_schemas", {}))
    if item.contract.event_type is None:
        return strategy
    # The envelope's event_type is what the encoder dispatches on: it must be the contract's.
    return strategy.map(lambda record: {**record, "event_type": item.contract.event_type})


def any_record() -> st.SearchStrategy[tuple[SchemaEntry, dict[str, Any]]]:
    return st.sampled_from(catalog().entries).flatmap(
        lambda item: records_of(item).map(lambda record: (item, record))
    )
