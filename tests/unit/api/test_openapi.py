"""The OpenAPI document describes exactly the routes the worker registers, and is well formed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp import web as aiohttp_web
from schemathesis.core.result import Ok

from api.openapi import OPENAPI_PATH, build_document, operations
from streams.hub import Hub
from tests.unit.api.fixtures import chart, hub_with_routes

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield hub_with_routes(tmp_path_factory.mktemp("data"), read_key="r", write_key="w")


def registered_routes(hub: Hub) -> set[tuple[str, str]]:
    web_app = getattr(hub.app.web, "web_app", None)
    assert isinstance(web_app, aiohttp_web.Application)
    return {
        (route.method.lower(), route.resource.canonical)
        for route in web_app.router.routes()
        # faust adds HEAD beside every view; HEAD follows GET and is not documented.
        if route.resource is not None and route.method != "HEAD"
    }


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def document(*, read_protected: bool = True, write_protected: bool = True) -> dict[str, Any]:
    return build_document(chart(), read_protected=read_protected, write_protected=write_protected)


def test_every_route_registered_on_the_app_is_in_the_document_and_nothing_else(hub: Hub) -> None:
    registered = registered_routes(hub)
    documented = documented_routes(document())

    assert registered - documented == set(), "routes missing from the document"
    assert documented - registered == set(), "documented operations the app does not serve"
    assert ("put", "/api/v1/fin/budgets/department/{dept}") in registered
    assert ("get", OPENAPI_PATH) in registered


def test_fausts_debug_endpoints_are_not_registered(hub: Hub) -> None:
    paths = {path for _, path in registered_routes(hub)}

    assert not any(path.startswith(("/router", "/table", "/stats", "/graph")) for path in paths)


def test_every_path_parameter_in_a_route_is_declared_on_its_operation() -> None:
    for operation in operations(chart()):
        in_template = {
            segment[1:-1]
            for segment in operation.path.split("/")
            if segment.startswith("{") and segment.endswith("}")
        }
        declared = {p["name"] for p in operation.parameters if p["in"] == "path"}
        assert in_template == declared, operation.operation_id


def test_operation_ids_are_unique() -> None:
    ids = [operation.operation_id for operation in operations(chart())]

    assert len(ids) == len(set(ids))


def test_schemathesis_loads_every_operation_of_the_document() -> None:
    schema = schemathesis.openapi.from_dict(document())
    results = list(schema.get_all_operations())

    assert all(isinstance(result, Ok) for result in results), [
        result for result in results if not isinstance(result, Ok)
    ]
    assert len(results) == len(documented_routes(document()))


def test_every_reference_in_the_document_resolves() -> None:
    built = document()
    schemas = built["components"]["schemas"]

    def references(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for value in node:
                yield from references(value)

    found = set(references(built))
    assert found, "the document uses shared schemas"
    for reference in found:
        prefix = "#/components/schemas/"
        assert reference.startswith(prefix) and reference[len(prefix) :] in schemas, reference


def test_reads_and_writes_require_keys_and_health_does_not() -> None:
    paths = document()["paths"]

    assert paths["/health"]["get"]["security"] == []
    assert paths["/ready"]["get"]["security"] == []
    assert {"ApiKeyHeader": []} in paths["/api/v1/fin/ledger/trial-balance"]["get"]["security"]
    assert {"ApiKeyHeader": []} in paths["/api/v1/fin/compensations"]["post"]["security"]
    assert {"StatusPageKey": []} in paths["/"]["get"]["security"]
    assert {"StatusPageKey": []} not in paths["/metrics"]["get"]["security"]


def test_a_worker_without_keys_documents_no_security_requirement() -> None:
    paths = document(read_protected=False, write_protected=False)["paths"]

    assert all(
        item[method]["security"] == []
        for item in paths.values()
        for method in item
        if method in HTTP_METHODS
    )


def test_write_endpoints_document_401_403_and_the_command_accepted_body() -> None:
    post = document()["paths"]["/api/v1/fin/ar/customers/{customer}/payments"]["post"]

    assert {"202", "400", "401", "403", "409", "413", "415", "503"} <= set(post["responses"])
    assert post["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommandAccepted"
    }
    assert post["requestBody"]["required"] is True


def test_amounts_are_documented_as_strings_with_a_decimal_pattern() -> None:
    schemas = document()["components"]["schemas"]

    for name, field in (
        ("Payment", "amount"),
        ("BudgetAmount", "amount"),
        ("CreditLimit", "credit_limit"),
    ):
        amount = schemas[name]["properties"][field]
        assert amount["type"] == "string" and "pattern" in amount, name
    assert schemas["CreditStatus"]["properties"]["exposure"]["type"] == "string"


def test_enumerations_come_from_the_chart_of_accounts_and_departments_are_master_data() -> None:
    budget = document()["paths"]["/api/v1/fin/budgets/department/{dept}"]["get"]
    by_name = {parameter["name"]: parameter for parameter in budget["parameters"]}

    # Departments change by command while workers run (issue 16): no enumeration to go stale.
    assert "enum" not in by_name["dept"]["schema"]
    assert by_name["category"]["schema"]["enum"] == sorted(chart().budget_categories)


def test_the_document_is_openapi_3_1_with_an_api_key_header_scheme() -> None:
    built = document()

    assert built["openapi"] == "3.1.0"
    assert built["components"]["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }


def test_head_is_routed_beside_every_get_and_nowhere_else(hub: Hub) -> None:
    web_app = getattr(hub.app.web, "web_app", None)
    assert isinstance(web_app, aiohttp_web.Application)
    by_method: dict[str, set[str]] = {}
    for route in web_app.router.routes():
        assert route.resource is not None
        by_method.setdefault(route.method, set()).add(route.resource.canonical)

    assert by_method["HEAD"] == by_method["GET"]
    assert "/api/v1/fin/compensations" not in by_method["HEAD"]
