"""The building blocks of FIN's OpenAPI document (``api.openapi``): its paths, the
``Operation`` record, and the JSON Schema pieces shared by the schemas and the operations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from api import params

PREFIX: Final = "/api/v1/fin"
OPENAPI_PATH: Final = PREFIX + "/openapi.json"
INTEGRITY_PARTIAL_PATH: Final = PREFIX + "/internal/integrity-partial"
API_VERSION: Final = "1.0.0"

Access = Literal["public", "read", "write", "status_page"]
Json = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One method on one path: what it takes, what it answers and who may call it."""

    method: str  # lower-case, as in an OpenAPI path item
    path: str
    operation_id: str
    summary: str
    access: Access
    tag: str
    responses: Mapping[str, Json]
    parameters: tuple[Json, ...] = ()
    request_body: Json | None = None
    description: str = ""
    extra_errors: tuple[int, ...] = field(default=())


# --- schemas -------------------------------------------------------------------------------


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def object_schema(properties: Mapping[str, Json], *, optional: tuple[str, ...] = ()) -> Json:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def counts() -> Json:
    return {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}


MONEY_OUT: Final[Json] = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]{2}$",
    "description": "Money as decimal text with two places, e.g. 125000.00 (never a number).",
    "examples": ["125000.00"],
}
RATIO_OUT: Final[Json] = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]+$",
    "description": "A ratio as decimal text, e.g. 0.25 (up to four places).",
}
UUID_SCHEMA: Final[Json] = {"type": "string", "format": "uuid", "pattern": params.UUID_PATTERN}
NON_NIL_UUID_SCHEMA: Final[Json] = {**UUID_SCHEMA, "not": {"const": params.NIL_UUID}}
ENTITY_ID_SCHEMA: Final[Json] = {
    "type": "string",
    "pattern": params.ENTITY_ID_PATTERN,
    "minLength": 1,
    "maxLength": params.ENTITY_ID_LENGTH_MAX,
    "examples": ["CUS-001"],
}
PERIOD_SCHEMA: Final[Json] = {
    "type": "string",
    "pattern": params.PERIOD_PATTERN,
    "description": "A month (2024-03) or a quarter (2024-Q1).",
    "examples": ["2024-Q1"],
}
POSITIVE_MONEY_IN: Final[Json] = {
    "type": "string",
    "pattern": params.POSITIVE_MONEY_PATTERN,
    "description": "A positive amount as decimal text: at most 16 integer digits and 2 decimals.",
    "examples": ["5000.00"],
}
NON_NEGATIVE_MONEY_IN: Final[Json] = {
    "type": "string",
    "pattern": params.NON_NEGATIVE_MONEY_PATTERN,
    "description": "An amount >= 0 as decimal text: at most 16 integer digits and 2 decimals.",
    "examples": ["500000.00"],
}
DATE_SCHEMA: Final[Json] = {"type": "string", "format": "date", "examples": ["2024-03-15"]}


def path_parameter(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def query_parameter(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def json_content(schema_name: str, description: str) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }


def problem_content(description: str) -> Json:
    return json_content("Problem", description)
