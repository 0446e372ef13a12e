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
from typing import Final

from api.openapi_operations import operations
from api.openapi_parts import (
    API_VERSION,
    INTEGRITY_PARTIAL_PATH,
    OPENAPI_PATH,
    PREFIX,
    Access,
    Json,
    Operation,
    problem_content,
)
from api.openapi_schemas import component_schemas
from ledger.chart import ChartOfAccounts

# The paths and the operations are defined beside (api/openapi_parts.py,
# api/openapi_operations.py) and re-exported: the views and the tests take them from here.
__all__ = [
    "INTEGRITY_PARTIAL_PATH",
    "OPENAPI_PATH",
    "PREFIX",
    "Operation",
    "build_document",
    "operations",
]

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
        responses[str(status)] = problem_content(ERROR_DESCRIPTIONS[status])
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
