"""The OpenAPI 3.1 document of FIN's HTTP interface, built from data.

``operations(chart)`` lists every endpoint the worker serves (method, path, parameters, body,
responses, who may call it); ``api.routes`` registers exactly these paths, and a unit test
checks that the routes on the app and the operations here are the same set. Parameter shapes
come from ``api.params``, the module the handlers parse with, and enumerations (departments,
budget categories, accounts) from the chart the worker runs with, so the document describes
this worker, not a copy of it.

The document is served at ``/api/v1/fin/openapi.json`` behind the read key like every other
endpoint but ``/health`` and ``/ready``: it names internal endpoints, and every client of the
API holds a key anyway. Security requirements appear only for the kinds of key the worker is
configured with (none in local development).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from api import params
from ledger.chart import ChartOfAccounts
from ledger.contract import (
    BUDGET_SET,
    COMPENSATION_REQUESTED,
    CREDIT_LIMIT_SET,
    CUSTOMER_PAYMENT_RECEIVED,
    DEPARTMENT_CHANGED,
    PERIOD_CHANGED,
    VENDOR_PAYMENT_MADE,
)
from ledger.rejections import Reason

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


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: Mapping[str, Json], *, optional: tuple[str, ...] = ()) -> Json:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def _counts() -> Json:
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


def component_schemas() -> dict[str, Json]:
    problem = {
        "type": "object",
        "description": "Every error: status, a short title and a readable detail.",
        "properties": {
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "title": {"type": "string"},
            "detail": {"type": "string"},
            "parameter": {
                "type": "string",
                "description": "The path, query, header or body parameter at fault.",
            },
            "reason": {
                "type": "string",
                "enum": [reason.value for reason in Reason],
                "description": "The ledger's named rejection, as fin.dlq would name it.",
            },
        },
        "required": ["status", "title", "detail"],
    }
    freshness = _object(
        {
            "table": {"type": "string"},
            "partition": {"type": "integer", "minimum": 0},
            "worker": {"type": "string"},
            "as_of": {"type": "string", "format": "date-time"},
            "applied_offset": {
                "type": ["integer", "null"],
                "description": "Committed offset of the partition's input topic on the answering "
                "worker (null before its first commit).",
            },
            "lag": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Records of that partition not yet applied, as last sampled "
                "(every 5 s); null when not sampled yet.",
            },
        },
        optional=("applied_offset", "lag"),
    )
    payment = _object(
        {
            "payment_id": {"type": "string"},
            "amount": MONEY_OUT,
            "business_date": _nullable(DATE_SCHEMA),
        }
    )
    aging = _object(
        {
            name: MONEY_OUT
            for name in ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")
        }
    )
    journal_line = _object(
        {
            "account": {"type": "string"},
            "debit": MONEY_OUT,
            "credit": MONEY_OUT,
            "dimensions": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    )
    return {
        "Problem": problem,
        "Freshness": freshness,
        "BudgetStatus": _object(
            {
                "department": {"type": "string"},
                "category": {"type": "string"},
                "period": {"type": "string"},
                "budget": _nullable(MONEY_OUT),
                "actual": MONEY_OUT,
                "available": _nullable(MONEY_OUT),
                "utilisation": _nullable(RATIO_OUT),
                "status": {"type": "string", "enum": ["no_budget", "ok", "near", "exceeded"]},
                "fits": {
                    "type": ["boolean", "null"],
                    "description": "Whether `amount` more would stay within the budget; "
                    "null without `amount` or without a budget.",
                },
                "freshness": _ref("Freshness"),
            }
        ),
        "VendorPaymentStatus": _object(
            {
                "vendor_id": {"type": "string"},
                "as_of": DATE_SCHEMA,
                "open": MONEY_OUT,
                "overdue": MONEY_OUT,
                "paid": MONEY_OUT,
                "aging": aging,
                "last_payment": _nullable(payment),
                "open_items": {"type": "integer", "minimum": 0},
                "freshness": _ref("Freshness"),
            }
        ),
        "CreditStatus": _object(
            {
                "customer_id": {"type": "string"},
                "limit": _nullable(MONEY_OUT),
                "exposure": MONEY_OUT,
                "available": _nullable(MONEY_OUT),
                "status": {"type": "string", "enum": ["no_limit", "ok", "near", "over"]},
                "freshness": _ref("Freshness"),
            }
        ),
        "TrialBalance": _object(
            {
                "period": {"type": "string"},
                "lines": {
                    "type": "array",
                    "items": _object(
                        {
                            "account": {"type": "string"},
                            "debit": MONEY_OUT,
                            "credit": MONEY_OUT,
                            "balance": MONEY_OUT,
                        }
                    ),
                },
                "total_debit": MONEY_OUT,
                "total_credit": MONEY_OUT,
                "entry_count": {"type": "integer", "minimum": 0},
                "closed": {
                    "type": "boolean",
                    "description": "The period is closed: its totals do not change until it is "
                    "re-opened (issue 16).",
                },
                "late_entries_to_later_periods": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Entries dated in this period that were booked in a later "
                    "one because this one was closed.",
                },
                "balanced": {"type": "boolean"},
                "freshness": _ref("Freshness"),
            }
        ),
        "AccountBalance": _object(
            {
                "account": {"type": "string"},
                "period": {"type": "string"},
                "debit": MONEY_OUT,
                "credit": MONEY_OUT,
                "balance": MONEY_OUT,
                "freshness": _ref("Freshness"),
            }
        ),
        "JournalEntry": _object(
            {
                "entry_id": UUID_SCHEMA,
                "source_event_id": {"type": "string"},
                "source_event_type": {"type": "string"},
                "source_topic": {"type": "string"},
                "source_partition": {"type": "integer", "minimum": 0},
                "source_offset": {"type": "integer", "minimum": 0},
                "rule_version": {"type": "string"},
                "business_date": DATE_SCHEMA,
                "period": {"type": "string"},
                "quarter": {"type": "string"},
                "currency": {"type": "string"},
                "reverses_entry_id": {"type": ["string", "null"]},
                "lines": {"type": "array", "minItems": 2, "items": journal_line},
                # Tamper evidence (ledger/chain.py): null on an entry written before chains.
                "chain_partition": {"type": ["integer", "null"], "minimum": 0},
                "chain_sequence": {"type": ["integer", "null"], "minimum": 1},
                "previous_hash": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                "entry_hash": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                # Booked late in this month because its own was closed (null: in its own).
                "posting_period": {"type": ["string", "null"]},
            },
            optional=(
                "chain_partition",
                "chain_sequence",
                "previous_hash",
                "entry_hash",
                "posting_period",
            ),
        ),
        "IntegrityReport": _object(
            {
                "ok": {"type": "boolean"},
                "errors": {
                    "type": "array",
                    "items": _object({"check": {"type": "string"}, "detail": {"type": "string"}}),
                },
                "counts": _object(
                    {
                        name: {"type": "integer", "minimum": 0}
                        for name in ("events_in", "postings", "rejections", "duplicates")
                    }
                ),
                "workers": {"type": "integer", "minimum": 1},
                "periods_checked": {"type": "integer", "minimum": 0},
                "ledger_chains": {
                    "type": "object",
                    "description": "The ledger's hash chains verified from this worker's copy of "
                    "the ledger topic: per chain, the entries seen, the last verified sequence, "
                    "its hash and where it was read, and the first break if any (ledger/chain.py)",
                },
            },
            optional=("ledger_chains",),
        ),
        "IntegrityPartial": _object(
            {name: {"type": "object"} for name in ("periods", "customers", "vendors", "stats")}
        ),
        "Status": _object(
            {
                "worker": {"type": "string"},
                "uptime_s": {"type": "number", "minimum": 0},
                "ready": {"type": "boolean"},
                "consumed_per_second": {"type": "number", "minimum": 0},
                "consumed_by_topic": _counts(),
                "posted_by_type": _counts(),
                "duplicates_by_type": _counts(),
                "rejected_by_reason": _counts(),
                "dead_letters_by_reason": _counts(),
                "retries_by_dependency": _counts(),
                "integrity_failures": _counts(),
                "lag": {
                    "type": "array",
                    "items": _object(
                        {
                            "topic": {"type": "string"},
                            "partition": {"type": "integer", "minimum": 0},
                            "lag": {"type": "integer", "minimum": 0},
                        }
                    ),
                },
                # The status page's live parts (api/status_board.py).
                "registry_reachable": {"type": "boolean"},
                "integrity_leader": {"type": "boolean"},
                "history": _object(
                    {
                        "window_s": {"type": "number", "minimum": 0},
                        "samples": {"type": "integer", "minimum": 0},
                        **{
                            name: {
                                "type": "object",
                                "description": description,
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 2,
                                        "maxItems": 2,
                                    },
                                },
                            }
                            for name, description in (
                                ("events_per_second", "in, posted, rejected: [unix s, per s]"),
                                ("lag_by_topic", "per topic: [unix s, records]"),
                                ("event_to_posting_s", "p50, p99: [unix s, seconds]"),
                                ("dead_letters_per_minute", "per reason: [unix s, per minute]"),
                            )
                        },
                    }
                ),
                "business": _nullable(
                    _object(
                        {
                            "budgets_near": {"type": "integer", "minimum": 0},
                            "budgets_exceeded": {"type": "integer", "minimum": 0},
                            "budgets": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "department": {"type": "string"},
                                        "category": {"type": "string"},
                                        "period": {"type": "string"},
                                        "budget": MONEY_OUT,
                                        "actual": MONEY_OUT,
                                        "utilisation": _nullable(RATIO_OUT),
                                        "status": {"type": "string", "enum": ["near", "exceeded"]},
                                    }
                                ),
                            },
                            "customers_over": {"type": "integer", "minimum": 0},
                            "customers": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "customer": {"type": "string"},
                                        "limit": MONEY_OUT,
                                        "exposure": MONEY_OUT,
                                        "over_by": MONEY_OUT,
                                    }
                                ),
                            },
                            "vendors_overdue": {"type": "integer", "minimum": 0},
                            "overdue_total": MONEY_OUT,
                            "vendors": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "vendor": {"type": "string"},
                                        "overdue": MONEY_OUT,
                                        "open": MONEY_OUT,
                                        "open_items": {"type": "integer", "minimum": 0},
                                    }
                                ),
                            },
                            "rows_read": {"type": "integer", "minimum": 0},
                            "rows_unreadable": {"type": "integer", "minimum": 0},
                            "as_of": {"type": "string", "format": "date"},
                            "top": {"type": "integer", "minimum": 1},
                        }
                    )
                ),
                "business_error": {"type": ["string", "null"]},
                "recent_dead_letters": {
                    "type": "array",
                    "maxItems": 20,
                    "items": _object(
                        {
                            "position": {"type": "string", "pattern": r"^[0-9]+:[0-9]+$"},
                            "rejected_at": {"type": "string", "format": "date-time"},
                            "reason": {"type": "string"},
                            "source": {"type": "string"},
                            "event_id": {"type": ["string", "null"]},
                            "detail": {"type": "string"},
                            "show": {"type": "string"},
                        }
                    ),
                },
                "recent_dead_letters_error": {"type": ["string", "null"]},
            }
        ),
        "Health": _object(
            {
                "status": {"const": "alive"},
                "uptime_s": {"type": "number", "minimum": 0},
            }
        ),
        "Readiness": _object(
            {
                "ready": {"type": "boolean"},
                "tables_recovered": {"type": "boolean"},
                "registry_reachable": {"type": "boolean"},
            }
        ),
        "CommandAccepted": _object(
            {
                "command_id": UUID_SCHEMA,
                "status": {"const": "accepted"},
                "event_type": {
                    "type": "string",
                    "enum": [
                        BUDGET_SET,
                        CREDIT_LIMIT_SET,
                        VENDOR_PAYMENT_MADE,
                        CUSTOMER_PAYMENT_RECEIVED,
                        COMPENSATION_REQUESTED,
                        DEPARTMENT_CHANGED,
                        PERIOD_CHANGED,
                    ],
                },
                "partition": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
            }
        ),
        "BudgetAmount": _object({"amount": NON_NEGATIVE_MONEY_IN}),
        "DepartmentRegistration": _object(
            {
                "name": {"type": "string", "maxLength": 1000},
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("name", "reason"),
        ),
        "DepartmentRename": _object(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 1000},
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("reason",),
        ),
        "DepartmentRetirement": _object(
            {
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("reason",),
        ),
        "Department": _object(
            {
                "department_id": {"type": "string"},
                "name": {"type": "string"},
                "status": {"type": "string", "enum": ["active", "retired"]},
                "changed_by": {"type": "string"},
                "reason": {"type": "string"},
                "changed_at_ms": {"type": "integer", "minimum": 0},
                "changes": {"type": "integer", "minimum": 0},
            }
        ),
        "Departments": _object({"departments": {"type": "array", "items": _ref("Department")}}),
        "PeriodChange": _object(
            {
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("reason",),
        ),
        "PeriodState": {
            "type": "object",
            "description": "A month: closed (by itself or by its quarter's last month), its "
            "quarter, whether the quarter is closed, and the last change (who, why, when).",
            "required": ["period", "closed", "quarter", "quarter_closed", "last_change"],
        },
        "Periods": {
            "type": "object",
            "required": ["closed_period_policy", "periods"],
            "properties": {
                "closed_period_policy": {"type": "string", "enum": ["late", "reject"]},
                "periods": {"type": "array", "items": _ref("PeriodState")},
            },
        },
        "CreditLimit": _object({"credit_limit": NON_NEGATIVE_MONEY_IN}),
        "Payment": _object(
            {
                "payment_id": ENTITY_ID_SCHEMA,
                "amount": POSITIVE_MONEY_IN,
                "business_date": {
                    **_nullable(DATE_SCHEMA),
                    "description": "The date the payment belongs to; default the UTC date "
                    "of the request. Within 2000-01-01 .. one year ahead.",
                },
            },
            optional=("business_date",),
        ),
        "Compensation": _object(
            {
                "target_event_id": NON_NIL_UUID_SCHEMA,
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": params.REASON_LENGTH_MAX,
                    "pattern": r"\S",
                },
            }
        ),
    }


# --- parameters and responses --------------------------------------------------------------


def _path(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _query(name: str, schema: Json, description: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _json(schema_name: str, description: str) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }


def _problem(description: str) -> Json:
    return _json("Problem", description)


ERROR_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "A parameter is missing or malformed (`parameter` names it), or the command is "
    "invalid (`reason` names the ledger's rejection).",
    401: "No key, or an unknown key. The body carries no data.",
    403: "The read key on an endpoint that needs the write key. The body carries no data.",
    404: "No such key in the table (a readable body says what was looked for).",
    409: "The Idempotency-Key (for a payment sent without one: its payment_id) was already "
    "used for a different request.",
    413: "The request body is too large.",
    415: "The request body is not application/json.",
    503: "The worker owning the key cannot be reached, or Kafka did not take the command.",
}


def _responses(operation: Operation) -> Json:
    responses = {status: dict(response) for status, response in operation.responses.items()}
    errors = list(operation.extra_errors)
    if operation.access in ("read", "write", "status_page"):
        errors.append(401)
    if operation.access == "write":
        errors += [403, 413, 415, 503]
    for status in sorted(set(errors)):
        responses[str(status)] = _problem(ERROR_DESCRIPTIONS[status])
    return responses


def _security(access: Access, *, read_protected: bool, write_protected: bool) -> list[Json] | None:
    header_or_bearer: list[Json] = [{"ApiKeyHeader": []}, {"BearerKey": []}]
    if access == "public":
        return []
    if access == "write":
        return header_or_bearer if write_protected else []
    if not read_protected:
        return []
    if access == "status_page":
        return [*header_or_bearer, {"StatusPageKey": []}]
    return header_or_bearer


# --- the operations ------------------------------------------------------------------------

ROUTED = (
    "Answered by the worker that owns the key (requests for keys owned by another worker are "
    "forwarded there), with `freshness` saying which partition answered and when."
)


def operations(chart: ChartOfAccounts) -> tuple[Operation, ...]:
    department = _path(
        "dept",
        ENTITY_ID_SCHEMA,
        "Department id, e.g. ENG-001: one of the chart of accounts' departments or one "
        "registered since by command (GET /departments lists them).",
    )
    category = _query(
        "category",
        {"type": "string", "enum": sorted(chart.budget_categories), "default": "SALARY"},
        "Budget category (default SALARY).",
    )
    period = _query("period", PERIOD_SCHEMA, "Accounting period.", required=True)
    customer = _path("customer", ENTITY_ID_SCHEMA, "Customer id, e.g. CUS-001.")
    month = _path(
        "period",
        {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"},
        "A month, e.g. 2024-03.",
    )
    vendor = _path("vendor", ENTITY_ID_SCHEMA, "Vendor id, e.g. VEN-001.")
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": NON_NIL_UUID_SCHEMA,
        "description": "Becomes the command's event_id, so a retried request is recognised "
        "as a duplicate instead of a second command. Without it a payment's event_id is derived "
        "from the vendor or customer and its payment_id (the same payment sent twice is one "
        "payment); any other command gets a new UUID.",
    }
    accepted = {
        "202": _json(
            "CommandAccepted",
            "Published on fin.commands (acknowledged by "
            "Kafka); the tables change once the worker has processed it.",
        )
    }
    command_errors = (400, 409)

    def body(schema_name: str) -> Json:
        return {
            "required": True,
            "content": {"application/json": {"schema": _ref(schema_name)}},
        }

    return (
        Operation(
            "get",
            PREFIX + "/budgets/department/{dept}",
            "getBudgetStatus",
            "Budget, actual, available, utilisation and status of a department's budget",
            "read",
            "budgets",
            {"200": _json("BudgetStatus", "The budget and what has been spent against it.")},
            (
                department,
                category,
                period,
                _query(
                    "amount",
                    NON_NEGATIVE_MONEY_IN,
                    "Asks whether spending this much more would stay within the budget (`fits`).",
                ),
            ),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "put",
            PREFIX + "/budgets/department/{dept}",
            "setBudget",
            "Set (replace) a department's budget for a category and period",
            "write",
            "commands",
            accepted,
            (department, category, period, idempotency_key),
            body("BudgetAmount"),
            description="Publishes fin.budget.set keyed by the department.",
            extra_errors=command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/departments",
            "listDepartments",
            "Every department this worker knows, active or retired, with its last change",
            "read",
            "departments",
            {"200": _json("Departments", "Departments, by id.")},
            description="Master data: seeded from the chart of accounts, changed by command; "
            "every worker holds all of it.",
        ),
        Operation(
            "get",
            PREFIX + "/departments/{dept}",
            "getDepartment",
            "One department: name, status (active or retired), who changed it last and why",
            "read",
            "departments",
            {"200": _json("Department", "The department.")},
            (department,),
            extra_errors=(400, 404),
        ),
        Operation(
            "put",
            PREFIX + "/departments/{dept}",
            "registerDepartment",
            "Register a department (or make a retired one active again)",
            "write",
            "commands",
            accepted,
            (department, idempotency_key),
            body("DepartmentRegistration"),
            description="Publishes fin.department.changed (REGISTER) keyed by the department; "
            "every worker knows it once the command is processed, without a restart.",
            extra_errors=command_errors,
        ),
        Operation(
            "patch",
            PREFIX + "/departments/{dept}",
            "renameDepartment",
            "Rename a department",
            "write",
            "commands",
            accepted,
            (department, idempotency_key),
            body("DepartmentRename"),
            description="Publishes fin.department.changed (RENAME).",
            extra_errors=command_errors,
        ),
        Operation(
            "delete",
            PREFIX + "/departments/{dept}",
            "retireDepartment",
            "Retire a department: events naming it are refused (reference_unknown) from then on",
            "write",
            "commands",
            accepted,
            (department, idempotency_key),
            body("DepartmentRetirement"),
            description="Publishes fin.department.changed (RETIRE). Entries and budgets "
            "already booked stay.",
            extra_errors=command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/ap/vendors/{vendor}/payment-status",
            "getVendorPaymentStatus",
            "Open, overdue and paid payables of a vendor, aged",
            "read",
            "payables",
            {"200": _json("VendorPaymentStatus", "The vendor's payables.")},
            (vendor, _query("as_of", DATE_SCHEMA, "Ageing date (default today, UTC).")),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "post",
            PREFIX + "/ap/vendors/{vendor}/payments",
            "recordVendorPayment",
            "Record a payment made to a vendor",
            "write",
            "commands",
            accepted,
            (vendor, idempotency_key),
            body("Payment"),
            description="Publishes fin.vendor_payment.made keyed by the vendor.",
            extra_errors=command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/ar/customers/{customer}/credit-status",
            "getCreditStatus",
            "Credit limit, exposure, available credit and status of a customer",
            "read",
            "receivables",
            {"200": _json("CreditStatus", "The customer's credit.")},
            (customer,),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "put",
            PREFIX + "/ar/customers/{customer}/credit-limit",
            "setCreditLimit",
            "Set a customer's credit limit",
            "write",
            "commands",
            accepted,
            (customer, idempotency_key),
            body("CreditLimit"),
            description="Publishes fin.credit_limit.set keyed by the customer.",
            extra_errors=command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/ar/customers/{customer}/payments",
            "recordCustomerPayment",
            "Record a payment received from a customer",
            "write",
            "commands",
            accepted,
            (customer, idempotency_key),
            body("Payment"),
            description="Publishes fin.customer_payment.received keyed by the customer.",
            extra_errors=command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/compensations",
            "requestCompensation",
            "Reverse a posted event (a compensating entry linked to the original)",
            "write",
            "commands",
            accepted,
            (idempotency_key,),
            body("Compensation"),
            description="Publishes fin.compensation.requested keyed by the target event id. "
            "A target that was never posted is dead-lettered by the worker "
            "(compensation_target_unknown), not refused here.",
            extra_errors=command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/ledger/trial-balance",
            "getTrialBalance",
            "Debits, credits and balance of every account in a period",
            "read",
            "ledger",
            {"200": _json("TrialBalance", "The period's trial balance.")},
            (period,),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "get",
            PREFIX + "/periods",
            "listPeriods",
            "Months closed or re-opened so far, with their state and last change",
            "read",
            "periods",
            {"200": _json("Periods", "Every month with a close or re-open, and the policy.")},
        ),
        Operation(
            "get",
            PREFIX + "/periods/{period}",
            "getPeriod",
            "One month's state: closed or open, its quarter's, the last change",
            "read",
            "periods",
            {"200": _json("PeriodState", "The month.")},
            (month,),
            extra_errors=(400,),
        ),
        Operation(
            "post",
            PREFIX + "/periods/{period}/close",
            "closePeriod",
            "Close a month (its quarter too when it is the quarter's last month)",
            "write",
            "commands",
            accepted,
            (month, idempotency_key),
            body("PeriodChange"),
            description="Publishes fin.period.changed (CLOSE) keyed by the month. From then on "
            "an event dated in it is booked late in the first open month or refused as "
            "period_closed (closed_period_policy in the chart of accounts).",
            extra_errors=command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/periods/{period}/reopen",
            "reopenPeriod",
            "Re-open a closed month",
            "write",
            "commands",
            accepted,
            (month, idempotency_key),
            body("PeriodChange"),
            description="Publishes fin.period.changed (REOPEN): events dated in it post there "
            "again.",
            extra_errors=command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/ledger/accounts/{account}",
            "getAccountBalance",
            "One account's debits, credits and balance in a period",
            "read",
            "ledger",
            {"200": _json("AccountBalance", "The account's turnover and balance.")},
            (
                _path(
                    "account",
                    {"type": "string", "enum": sorted(chart.accounts)},
                    "Account code from the chart of accounts, e.g. 1100.",
                ),
                period,
            ),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "get",
            PREFIX + "/ledger/entries/{entry_id}",
            "getJournalEntry",
            "One journal entry by id",
            "read",
            "ledger",
            {"200": _json("JournalEntry", "The entry as published on fin.ledger.postings.")},
            (_path("entry_id", UUID_SCHEMA, "Journal entry id (a UUID)."),),
            description=ROUTED,
            extra_errors=(400, 404, 503),
        ),
        Operation(
            "get",
            PREFIX + "/ledger/integrity",
            "getIntegrity",
            "Integrity of the whole ledger, gathered from every worker",
            "read",
            "ledger",
            {
                "200": _json(
                    "IntegrityReport",
                    "Trial balances, sub-ledgers, outcome counts and the ledger's hash chains.",
                )
            },
            extra_errors=(503,),
        ),
        Operation(
            "get",
            INTEGRITY_PARTIAL_PATH,
            "getIntegrityPartial",
            "This worker's rows for the cluster-wide integrity check (internal)",
            "read",
            "internal",
            {"200": _json("IntegrityPartial", "Rows of the local partitions.")},
        ),
        Operation(
            "get",
            PREFIX + "/status",
            "getStatus",
            "What the status page shows, as JSON",
            "read",
            "operations",
            {"200": _json("Status", "Counters, lag per partition and throughput.")},
        ),
        Operation(
            "get",
            OPENAPI_PATH,
            "getOpenApi",
            "This document",
            "read",
            "operations",
            {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        ),
        Operation(
            "get",
            "/",
            "getStatusPage",
            "Status page for people (HTML, refreshes itself)",
            "status_page",
            "operations",
            {
                "200": {
                    "description": "The page.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
            description="Browsers cannot easily send a header, so this page alone also takes "
            "the read key as the `key` query parameter.",
        ),
        Operation(
            "get",
            "/health",
            "getHealth",
            "Liveness (no key needed)",
            "public",
            "operations",
            {"200": _json("Health", "The worker is alive.")},
        ),
        Operation(
            "get",
            "/ready",
            "getReadiness",
            "Readiness (no key needed)",
            "public",
            "operations",
            {
                "200": _json("Readiness", "Tables are recovered; the worker can answer."),
                "503": _json("Readiness", "Tables are still being recovered."),
            },
        ),
        Operation(
            "get",
            "/metrics",
            "getMetrics",
            "Prometheus metrics",
            "read",
            "operations",
            {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
    )


def build_document(chart: ChartOfAccounts, *, read_protected: bool, write_protected: bool) -> Json:
    """The whole document; ``*_protected`` say which kinds of key the worker requires."""
    paths: dict[str, Json] = {}
    for operation in operations(chart):
        item: Json = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": list(operation.parameters),
            "responses": _responses(operation),
            "security": _security(
                operation.access,
                read_protected=read_protected,
                write_protected=write_protected,
            ),
        }
        if operation.description:
            item["description"] = operation.description
        if operation.request_body is not None:
            item["requestBody"] = operation.request_body
        paths.setdefault(operation.path, {})[operation.method] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FIN — financial integration hub",
            "version": API_VERSION,
            "description": (
                "Reads of FIN's tables (budgets, payables, credit, ledger) from any worker, "
                "commands published to fin.commands, and operations endpoints. Amounts are "
                "decimal strings, never JSON numbers. Errors are JSON problems "
                "{status, title, detail}."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The same key as a bearer token.",
                },
                "StatusPageKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "The read key, on the status page only.",
                },
            },
        },
    }
