"""The names of FIN's contract, in one place: topics, tables, headers and event types.

Producers, operators and FIN's own stages agree on these strings (docs/design.md, "Topics" and
"Event contract"); every module takes them from here rather than spelling them again. Standard
library only, so ``ledger/`` (the pure core, lowest layer) can import it like everything above it.
Topic names here are contract names: a deployment's real names carry ``FIN_TOPIC_PREFIX``
(``settings.Settings.topic``).
"""

from __future__ import annotations

from typing import Final

# --- topics -------------------------------------------------------------------------------------

HR_TOPIC: Final = "hr.events"
SCM_TOPIC: Final = "scm.events"
CRM_TOPIC: Final = "crm.events"
MFG_TOPIC: Final = "mfg.events"
PM_TOPIC: Final = "pm.events"
SOURCE_TOPICS: Final[tuple[str, ...]] = (HR_TOPIC, SCM_TOPIC, CRM_TOPIC, MFG_TOPIC, PM_TOPIC)
"""The source services' topics, one per service; several event types per topic."""
COMMANDS_TOPIC: Final = "fin.commands"
LEDGER_TOPIC: Final = "fin.ledger.postings"
ALERTS_TOPIC: Final = "fin.alerts"
DLQ_TOPIC: Final = "fin.dlq"
DLQ_REPLAYED_TOPIC: Final = "fin.dlq.replayed"
"""Compacted: one marker per dead letter replayed by ``python app.py dlq replay``."""
MASTER_DATA_TOPIC: Final = "fin.master-data"
"""Compacted: department and period changes, read by every worker (issue 16)."""
BY_EVENT_ID_TOPIC: Final = "fin.internal.by-event-id"
"""Internal: each accepted record's original Avro bytes, re-keyed by event id, with the
``H_SOURCE_*`` headers naming where it came from."""
DELTA_TOPIC_PREFIX: Final = "fin.internal.deltas."

# --- tables -------------------------------------------------------------------------------------

BUDGETS_TABLE: Final = "budgets"
CUSTOMERS_TABLE: Final = "customers"
VENDORS_TABLE: Final = "vendors"
PERIODS_TABLE: Final = "periods"
PROJECTS_TABLE: Final = "projects"
PRODUCTS_TABLE: Final = "products"
DELTA_TABLES: Final[tuple[str, ...]] = (
    BUDGETS_TABLE,
    CUSTOMERS_TABLE,
    VENDORS_TABLE,
    PERIODS_TABLE,
    PROJECTS_TABLE,
    PRODUCTS_TABLE,
)
"""The tables changed by deltas, each fed by its own delta topic (``delta_topic``)."""
PROCESSED_TABLE: Final = "processed"
ENTRIES_TABLE: Final = "entries"
STATS_TABLE: Final = "stats"
KEY_SEPARATOR: Final = "|"


def delta_topic(table: str) -> str:
    """The internal topic carrying the deltas of ``table`` (contract name)."""
    return f"{DELTA_TOPIC_PREFIX}{table}"


def budget_key(department_id: str, category: str, period: str) -> str:
    """The key of a row of the budgets table (and of its delta topic)."""
    return KEY_SEPARATOR.join((department_id, category, period))


# --- event types --------------------------------------------------------------------------------

PAYROLL_PROCESSED: Final = "hr.payroll.processed"
GOODS_RECEIVED: Final = "scm.goods.received"
SALES_ORDER_COMPLETED: Final = "crm.sales_order.completed"
PRODUCTION_ORDER_COMPLETED: Final = "mfg.production_order.completed"
TIME_LOGGED: Final = "pm.time.logged"
BUDGET_SET: Final = "fin.budget.set"
CREDIT_LIMIT_SET: Final = "fin.credit_limit.set"
VENDOR_PAYMENT_MADE: Final = "fin.vendor_payment.made"
CUSTOMER_PAYMENT_RECEIVED: Final = "fin.customer_payment.received"
COMPENSATION_REQUESTED: Final = "fin.compensation.requested"
DEPARTMENT_CHANGED: Final = "fin.department.changed"
PERIOD_CHANGED: Final = "fin.period.changed"

# --- headers ------------------------------------------------------------------------------------

# On a dead letter (fin.dlq), beside the refused record's unchanged key and value.
HEADER_REASON: Final = "fin.reason"
HEADER_DETAIL: Final = "fin.detail"
HEADER_SOURCE_TOPIC: Final = "fin.source.topic"
HEADER_SOURCE_PARTITION: Final = "fin.source.partition"
HEADER_SOURCE_OFFSET: Final = "fin.source.offset"
HEADER_SOURCE_TIMESTAMP_MS: Final = "fin.source.timestamp_ms"
HEADER_REJECTED_AT: Final = "fin.rejected_at"
HEADER_ATTEMPTS: Final = "fin.attempts"
HEADER_EVENT_ID: Final = "fin.event_id"
# Written by `app.py dlq replay` on the record it re-publishes to the source topic.
HEADER_REPLAY_ATTEMPT: Final = "fin.replay.attempt"
HEADER_REPLAY_OF: Final = "fin.replay.of"
# On a by-event-id record: where it came from (the same names as a dead letter's), its original
# key, and the posting stage's own bookkeeping (parked compensations and their steps).
HEADER_ORIGINAL_KEY: Final = "fin.original_key"
HEADER_PARK_ATTEMPT: Final = "fin.park.attempt"
HEADER_PARK_NOT_BEFORE_MS: Final = "fin.park.not_before_ms"
HEADER_COMPENSATION_STEP: Final = "fin.compensation.step"
HEADER_COMPENSATION_REVERSAL: Final = "fin.compensation.reversal"
