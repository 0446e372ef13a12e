"""Every endpoint of FIN's HTTP interface as an ``Operation`` (method, path, parameters, body,
responses, who may call it), in the order the OpenAPI document lists them."""

from __future__ import annotations

from dataclasses import dataclass

from api.openapi_parts import (
    DATE_SCHEMA,
    ENTITY_ID_SCHEMA,
    INTEGRITY_PARTIAL_PATH,
    NON_NEGATIVE_MONEY_IN,
    NON_NIL_UUID_SCHEMA,
    OPENAPI_PATH,
    PERIOD_SCHEMA,
    PREFIX,
    UUID_SCHEMA,
    Json,
    Operation,
    json_content,
    path_parameter,
    query_parameter,
    ref,
)
from ledger.chart import ChartOfAccounts

ROUTED = (
    "Answered by the worker that owns the key (requests for keys owned by another worker are "
    "forwarded there), with `freshness` saying which partition answered and when."
)


@dataclass(frozen=True)
class _Shared:
    """Parameters and responses several operations take."""

    chart: ChartOfAccounts
    department: Json
    category: Json
    period: Json
    customer: Json
    month: Json
    vendor: Json
    idempotency_key: Json
    accepted: Json
    command_errors: tuple[int, ...]

    @staticmethod
    def body(schema_name: str) -> Json:
        return {
            "required": True,
            "content": {"application/json": {"schema": ref(schema_name)}},
        }


def operations(chart: ChartOfAccounts) -> tuple[Operation, ...]:
    s = _shared(chart)
    return (
        *_budget_and_department_operations(s),
        *_payables_and_receivables_operations(s),
        *_period_operations(s),
        *_ledger_operations(s),
        *_operations_endpoints(s),
    )


def _shared(chart: ChartOfAccounts) -> _Shared:
    department = path_parameter(
        "dept",
        ENTITY_ID_SCHEMA,
        "Department id, e.g. ENG-001: one of the chart of accounts' departments or one "
        "registered since by command (GET /departments lists them).",
    )
    category = query_parameter(
        "category",
        {"type": "string", "enum": sorted(chart.budget_categories), "default": "SALARY"},
        "Budget category (default SALARY).",
    )
    period = query_parameter("period", PERIOD_SCHEMA, "Accounting period.", required=True)
    customer = path_parameter("customer", ENTITY_ID_SCHEMA, "Customer id, e.g. CUS-001.")
    month = path_parameter(
        "period",
        {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"},
        "A month, e.g. 2024-03.",
    )
    vendor = path_parameter("vendor", ENTITY_ID_SCHEMA, "Vendor id, e.g. VEN-001.")
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
        "202": json_content(
            "CommandAccepted",
            "Published on fin.commands (acknowledged by "
            "Kafka); the tables change once the worker has processed it.",
        )
    }
    command_errors = (400, 409)
    return _Shared(
        chart,
        department,
        category,
        period,
        customer,
        month,
        vendor,
        idempotency_key,
        accepted,
        command_errors,
    )


def _budget_and_department_operations(s: _Shared) -> tuple[Operation, ...]:
    return (
        Operation(
            "get",
            PREFIX + "/budgets/department/{dept}",
            "getBudgetStatus",
            "Budget, actual, available, utilisation and status of a department's budget",
            "read",
            "budgets",
            {"200": json_content("BudgetStatus", "The budget and what has been spent against it.")},
            (
                s.department,
                s.category,
                s.period,
                query_parameter(
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
            s.accepted,
            (s.department, s.category, s.period, s.idempotency_key),
            s.body("BudgetAmount"),
            description="Publishes fin.budget.set keyed by the department.",
            extra_errors=s.command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/departments",
            "listDepartments",
            "Every department this worker knows, active or retired, with its last change",
            "read",
            "departments",
            {"200": json_content("Departments", "Departments, by id.")},
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
            {"200": json_content("Department", "The department.")},
            (s.department,),
            extra_errors=(400, 404),
        ),
        Operation(
            "put",
            PREFIX + "/departments/{dept}",
            "registerDepartment",
            "Register a department (or make a retired one active again)",
            "write",
            "commands",
            s.accepted,
            (s.department, s.idempotency_key),
            s.body("DepartmentRegistration"),
            description="Publishes fin.department.changed (REGISTER) keyed by the department; "
            "every worker knows it once the command is processed, without a restart.",
            extra_errors=s.command_errors,
        ),
        Operation(
            "patch",
            PREFIX + "/departments/{dept}",
            "renameDepartment",
            "Rename a department",
            "write",
            "commands",
            s.accepted,
            (s.department, s.idempotency_key),
            s.body("DepartmentRename"),
            description="Publishes fin.department.changed (RENAME).",
            extra_errors=s.command_errors,
        ),
        Operation(
            "delete",
            PREFIX + "/departments/{dept}",
            "retireDepartment",
            "Retire a department: events naming it are refused (reference_unknown) from then on",
            "write",
            "commands",
            s.accepted,
            (s.department, s.idempotency_key),
            s.body("DepartmentRetirement"),
            description="Publishes fin.department.changed (RETIRE). Entries and budgets "
            "already booked stay.",
            extra_errors=s.command_errors,
        ),
    )


def _payables_and_receivables_operations(s: _Shared) -> tuple[Operation, ...]:
    return (
        Operation(
            "get",
            PREFIX + "/ap/vendors/{vendor}/payment-status",
            "getVendorPaymentStatus",
            "Open, overdue and paid payables of a vendor, aged",
            "read",
            "payables",
            {"200": json_content("VendorPaymentStatus", "The vendor's payables.")},
            (s.vendor, query_parameter("as_of", DATE_SCHEMA, "Ageing date (default today, UTC).")),
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
            s.accepted,
            (s.vendor, s.idempotency_key),
            s.body("Payment"),
            description="Publishes fin.vendor_payment.made keyed by the vendor.",
            extra_errors=s.command_errors,
        ),
        Operation(
            "get",
            PREFIX + "/ar/customers/{customer}/credit-status",
            "getCreditStatus",
            "Credit limit, exposure, available credit and status of a customer",
            "read",
            "receivables",
            {"200": json_content("CreditStatus", "The customer's credit.")},
            (s.customer,),
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
            s.accepted,
            (s.customer, s.idempotency_key),
            s.body("CreditLimit"),
            description="Publishes fin.credit_limit.set keyed by the customer.",
            extra_errors=s.command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/ar/customers/{customer}/payments",
            "recordCustomerPayment",
            "Record a payment received from a customer",
            "write",
            "commands",
            s.accepted,
            (s.customer, s.idempotency_key),
            s.body("Payment"),
            description="Publishes fin.customer_payment.received keyed by the customer.",
            extra_errors=s.command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/compensations",
            "requestCompensation",
            "Reverse a posted event (a compensating entry linked to the original)",
            "write",
            "commands",
            s.accepted,
            (s.idempotency_key,),
            s.body("Compensation"),
            description="Publishes fin.compensation.requested keyed by the target event id. "
            "A target that was never posted is dead-lettered by the worker "
            "(compensation_target_unknown), not refused here.",
            extra_errors=s.command_errors,
        ),
    )


def _period_operations(s: _Shared) -> tuple[Operation, ...]:
    return (
        Operation(
            "get",
            PREFIX + "/ledger/trial-balance",
            "getTrialBalance",
            "Debits, credits and balance of every account in a period",
            "read",
            "ledger",
            {"200": json_content("TrialBalance", "The period's trial balance.")},
            (s.period,),
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
            {
                "200": json_content(
                    "Periods", "Every month with a close or re-open, and the policy."
                )
            },
        ),
        Operation(
            "get",
            PREFIX + "/periods/{period}",
            "getPeriod",
            "One month's state: closed or open, its quarter's, the last change",
            "read",
            "periods",
            {"200": json_content("PeriodState", "The month.")},
            (s.month,),
            extra_errors=(400,),
        ),
        Operation(
            "post",
            PREFIX + "/periods/{period}/close",
            "closePeriod",
            "Close a month (its quarter too when it is the quarter's last month)",
            "write",
            "commands",
            s.accepted,
            (s.month, s.idempotency_key),
            s.body("PeriodChange"),
            description="Publishes fin.period.changed (CLOSE) keyed by the month. From then on "
            "an event dated in it is booked late in the first open month or refused as "
            "period_closed (closed_period_policy in the chart of accounts).",
            extra_errors=s.command_errors,
        ),
        Operation(
            "post",
            PREFIX + "/periods/{period}/reopen",
            "reopenPeriod",
            "Re-open a closed month",
            "write",
            "commands",
            s.accepted,
            (s.month, s.idempotency_key),
            s.body("PeriodChange"),
            description="Publishes fin.period.changed (REOPEN): events dated in it post there "
            "again.",
            extra_errors=s.command_errors,
        ),
    )


def _ledger_operations(s: _Shared) -> tuple[Operation, ...]:
    return (
        Operation(
            "get",
            PREFIX + "/ledger/accounts/{account}",
            "getAccountBalance",
            "One account's debits, credits and balance in a period",
            "read",
            "ledger",
            {"200": json_content("AccountBalance", "The account's turnover and balance.")},
            (
                path_parameter(
                    "account",
                    {"type": "string", "enum": sorted(s.chart.accounts)},
                    "Account code from the chart of accounts, e.g. 1100.",
                ),
                s.period,
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
            {"200": json_content("JournalEntry", "The entry as published on fin.ledger.postings.")},
            (path_parameter("entry_id", UUID_SCHEMA, "Journal entry id (a UUID)."),),
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
                "200": json_content(
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
            {"200": json_content("IntegrityPartial", "Rows of the local partitions.")},
        ),
    )


def _operations_endpoints(s: _Shared) -> tuple[Operation, ...]:
    return (
        Operation(
            "get",
            PREFIX + "/status",
            "getStatus",
            "What the status page shows, as JSON",
            "read",
            "operations",
            {"200": json_content("Status", "Counters, lag per partition and throughput.")},
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
            {"200": json_content("Health", "The worker is alive.")},
        ),
        Operation(
            "get",
            "/ready",
            "getReadiness",
            "Readiness (no key needed)",
            "public",
            "operations",
            {
                "200": json_content("Readiness", "Tables are recovered; the worker can answer."),
                "503": json_content("Readiness", "Tables are still being recovered."),
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
