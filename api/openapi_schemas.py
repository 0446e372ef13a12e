"""The component schemas of FIN's OpenAPI document: the bodies every endpoint answers or takes."""

from __future__ import annotations

from api import params
from api.openapi_parts import (
    DATE_SCHEMA,
    ENTITY_ID_SCHEMA,
    MONEY_OUT,
    NON_NEGATIVE_MONEY_IN,
    NON_NIL_UUID_SCHEMA,
    POSITIVE_MONEY_IN,
    RATIO_OUT,
    UUID_SCHEMA,
    Json,
    counts,
    nullable,
    object_schema,
    ref,
)
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


def component_schemas() -> dict[str, Json]:
    return {
        **_error_schemas(),
        **_table_schemas(),
        **_ledger_schemas(),
        **_integrity_schemas(),
        "Status": _status_schema(),
        **_probe_schemas(),
        **_command_schemas(),
    }


def _error_schemas() -> dict[str, Json]:
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
    freshness = object_schema(
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
    return {
        "Problem": problem,
        "Freshness": freshness,
    }


def _table_schemas() -> dict[str, Json]:
    payment = object_schema(
        {
            "payment_id": {"type": "string"},
            "amount": MONEY_OUT,
            "business_date": nullable(DATE_SCHEMA),
        }
    )
    aging = object_schema(
        {
            name: MONEY_OUT
            for name in ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")
        }
    )
    return {
        "BudgetStatus": object_schema(
            {
                "department": {"type": "string"},
                "category": {"type": "string"},
                "period": {"type": "string"},
                "budget": nullable(MONEY_OUT),
                "actual": MONEY_OUT,
                "available": nullable(MONEY_OUT),
                "utilisation": nullable(RATIO_OUT),
                "status": {"type": "string", "enum": ["no_budget", "ok", "near", "exceeded"]},
                "fits": {
                    "type": ["boolean", "null"],
                    "description": "Whether `amount` more would stay within the budget; "
                    "null without `amount` or without a budget.",
                },
                "freshness": ref("Freshness"),
            }
        ),
        "VendorPaymentStatus": object_schema(
            {
                "vendor_id": {"type": "string"},
                "as_of": DATE_SCHEMA,
                "open": MONEY_OUT,
                "overdue": MONEY_OUT,
                "paid": MONEY_OUT,
                "aging": aging,
                "last_payment": nullable(payment),
                "open_items": {"type": "integer", "minimum": 0},
                "freshness": ref("Freshness"),
            }
        ),
        "CreditStatus": object_schema(
            {
                "customer_id": {"type": "string"},
                "limit": nullable(MONEY_OUT),
                "exposure": MONEY_OUT,
                "available": nullable(MONEY_OUT),
                "status": {"type": "string", "enum": ["no_limit", "ok", "near", "over"]},
                "freshness": ref("Freshness"),
            }
        ),
    }


def _ledger_schemas() -> dict[str, Json]:
    journal_line = object_schema(
        {
            "account": {"type": "string"},
            "debit": MONEY_OUT,
            "credit": MONEY_OUT,
            "dimensions": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    )
    return {
        "TrialBalance": object_schema(
            {
                "period": {"type": "string"},
                "lines": {
                    "type": "array",
                    "items": object_schema(
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
                "freshness": ref("Freshness"),
            }
        ),
        "AccountBalance": object_schema(
            {
                "account": {"type": "string"},
                "period": {"type": "string"},
                "debit": MONEY_OUT,
                "credit": MONEY_OUT,
                "balance": MONEY_OUT,
                "freshness": ref("Freshness"),
            }
        ),
        "JournalEntry": object_schema(
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
    }


def _integrity_schemas() -> dict[str, Json]:
    return {
        "IntegrityReport": object_schema(
            {
                "ok": {"type": "boolean"},
                "errors": {
                    "type": "array",
                    "items": object_schema(
                        {"check": {"type": "string"}, "detail": {"type": "string"}}
                    ),
                },
                "counts": object_schema(
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
        "IntegrityPartial": object_schema(
            {name: {"type": "object"} for name in ("periods", "customers", "vendors", "stats")}
        ),
    }


def _status_schema() -> Json:
    return object_schema(
        {
            "worker": {"type": "string"},
            "uptime_s": {"type": "number", "minimum": 0},
            "ready": {"type": "boolean"},
            "consumed_per_second": {"type": "number", "minimum": 0},
            "consumed_by_topic": counts(),
            "posted_by_type": counts(),
            "duplicates_by_type": counts(),
            "rejected_by_reason": counts(),
            "dead_letters_by_reason": counts(),
            "retries_by_dependency": counts(),
            "integrity_failures": counts(),
            "lag": {
                "type": "array",
                "items": object_schema(
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
            "history": _status_history_schema(),
            "business": _status_business_schema(),
            "business_error": {"type": ["string", "null"]},
            "recent_dead_letters": {
                "type": "array",
                "maxItems": 20,
                "items": object_schema(
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
    )


def _status_history_schema() -> Json:
    return object_schema(
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
    )


def _status_business_schema() -> Json:
    return nullable(
        object_schema(
            {
                "budgets_near": {"type": "integer", "minimum": 0},
                "budgets_exceeded": {"type": "integer", "minimum": 0},
                "budgets": {
                    "type": "array",
                    "items": object_schema(
                        {
                            "department": {"type": "string"},
                            "category": {"type": "string"},
                            "period": {"type": "string"},
                            "budget": MONEY_OUT,
                            "actual": MONEY_OUT,
                            "utilisation": nullable(RATIO_OUT),
                            "status": {"type": "string", "enum": ["near", "exceeded"]},
                        }
                    ),
                },
                "customers_over": {"type": "integer", "minimum": 0},
                "customers": {
                    "type": "array",
                    "items": object_schema(
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
                    "items": object_schema(
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
    )


def _probe_schemas() -> dict[str, Json]:
    return {
        "Health": object_schema(
            {
                "status": {"const": "alive"},
                "uptime_s": {"type": "number", "minimum": 0},
            }
        ),
        "Readiness": object_schema(
            {
                "ready": {"type": "boolean"},
                "tables_recovered": {"type": "boolean"},
                "registry_reachable": {"type": "boolean"},
            }
        ),
    }


def _command_schemas() -> dict[str, Json]:
    return {
        "CommandAccepted": object_schema(
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
        "BudgetAmount": object_schema({"amount": NON_NEGATIVE_MONEY_IN}),
        "DepartmentRegistration": object_schema(
            {
                "name": {"type": "string", "maxLength": 1000},
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("name", "reason"),
        ),
        "DepartmentRename": object_schema(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 1000},
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("reason",),
        ),
        "DepartmentRetirement": object_schema(
            {
                "requested_by": {"type": "string", "minLength": 1, "maxLength": 1000},
                "reason": {"type": "string", "maxLength": 1000},
            },
            optional=("reason",),
        ),
        "Department": object_schema(
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
        "Departments": object_schema(
            {"departments": {"type": "array", "items": ref("Department")}}
        ),
        "PeriodChange": object_schema(
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
                "periods": {"type": "array", "items": ref("PeriodState")},
            },
        },
        "CreditLimit": object_schema({"credit_limit": NON_NEGATIVE_MONEY_IN}),
        "Payment": object_schema(
            {
                "payment_id": ENTITY_ID_SCHEMA,
                "amount": POSITIVE_MONEY_IN,
                "business_date": {
                    **nullable(DATE_SCHEMA),
                    "description": "The date the payment belongs to; default the UTC date "
                    "of the request. Within 2000-01-01 .. one year ahead.",
                },
            },
            optional=("business_date",),
        ),
        "Compensation": object_schema(
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
