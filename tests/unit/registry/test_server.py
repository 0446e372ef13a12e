"""The REST contract (Confluent's paths, bodies, media types, error codes) over an in-memory log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.server import CONTENT_TYPE_V1, create_app
from registry.service import SchemaRegistry
from tests.unit.registry.fakes import MemoryLog

V1 = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "string"},
            {"name": "b", "type": ["null", "long"], "default": None},
        ],
    }
)
V2_REQUIRED = json.dumps(
    {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "long"}],
    }
)
HEADERS = {"Content-Type": CONTENT_TYPE_V1}

Scenario = Callable[[TestClient[Any, Any]], Awaitable[None]]


def with_client(scenario: Scenario, log: MemoryLog | None = None) -> None:
    async def main() -> None:
        registry = SchemaRegistry(log if log is not None else MemoryLog())
        await registry.load()
        async with TestClient(TestServer(create_app(registry))) as client:
            await scenario(client)

    asyncio.run(main())


async def call(
    client: TestClient[Any, Any], method: str, path: str, body: object = None, **kwargs: Any
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    headers = kwargs.pop("headers", HEADERS)
    async with client.request(method, path, data=data, headers=headers, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def test_register_then_read_back_every_way():
    async def scenario(client: TestClient[Any, Any]) -> None:
        assert await call(client, "POST", "/subjects/s-value/versions", {"schema": V1}) == (
            200,
            {"id": 1},
        )
        assert await call(client, "GET", "/subjects") == (200, ["s-value"])
        assert await call(client, "GET", "/subjects/s-value/versions") == (200, [1])
        status, document = await call(client, "GET", "/subjects/s-value/versions/latest")
        assert status == 200
        assert {key: document[key] for key in ("subject", "version", "id")} == {
            "subject": "s-value",
            "version": 1,
            "id": 1,
        }
        assert json.loads(document["schema"]) == json.loads(V1)
        status, raw = await call(client, "GET", "/subjects/s-value/versions/1/schema")
        assert (status, raw) == (200, json.loads(V1))
        status, by_id = await call(client, "GET", "/schemas/ids/1")
        assert status == 200
        assert set(by_id) == {"schema"}
        assert json.loads(by_id["schema"]) == json.loads(V1)
        assert await call(client, "GET", "/schemas/ids/1/versions") == (
            200,
            [{"subject": "s-value", "version": 1}],
        )
        assert await call(client, "GET", "/schemas/ids/1/subjects") == (200, ["s-value"])
        assert await call(client, "GET", "/schemas/types") == (200, ["AVRO"])
        status, found = await call(client, "POST", "/subjects/s-value", {"schema": V1})
        assert (status, found["id"], found["version"]) == (200, 1, 1)

    with_client(scenario)


def test_answers_carry_confluents_media_type():
    async def scenario(client: TestClient[Any, Any]) -> None:
        async with client.get("/subjects") as response:
            assert response.headers["Content-Type"].startswith(CONTENT_TYPE_V1)
        async with client.get("/subjects", headers={"Accept": "application/json"}) as response:
            assert response.headers["Content-Type"].startswith("application/json")
        async with client.get("/subjects", headers={"Accept": "text/html"}) as response:
            assert response.status == 406
            assert (await response.json(content_type=None))["error_code"] == 406

    with_client(scenario)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_code"),
    [
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/s/versions/9", None, 404, 40402),
        ("GET", "/subjects/s/versions/zero", None, 422, 42202),
        ("GET", "/schemas/ids/99", None, 404, 40403),
        ("POST", "/subjects/s", {"schema": V2}, 404, 40403),
        ("POST", "/subjects/nope", {"schema": V1}, 404, 40401),
        ("POST", "/subjects/s/versions", {"schema": "{broken"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": V1, "schemaType": "JSON"}, 422, 42201),
        ("POST", "/subjects/s/versions", {}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": V2_REQUIRED}, 409, 409),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("GET", "/config/s", None, 404, 40408),
        ("DELETE", "/subjects/s?permanent=true", None, 404, 40405),
        ("DELETE", "/subjects/s/versions/1?permanent=true", None, 404, 40407),
        ("POST", "/compatibility/subjects/nope/versions/latest", {"schema": V1}, 404, 40401),
        ("POST", "/compatibility/subjects/s/versions/7", {"schema": V1}, 404, 40402),
        ("GET", "/no/such/path", None, 404, 404),
        ("PATCH", "/subjects", None, 405, 405),
    ],
)
def test_errors_use_confluents_codes(method, path, body, status, error_code):
    async def scenario(client: TestClient[Any, Any]) -> None:
        await call(client, "POST", "/subjects/s/versions", {"schema": V1})
        answer_status, document = await call(client, method, path, body)
        assert (answer_status, document["error_code"]) == (status, error_code), document
        assert isinstance(document["message"], str)
        assert document["message"]

    with_client(scenario)


def test_malformed_and_oversized_bodies_are_refused_with_json_errors():
    async def scenario(client: TestClient[Any, Any]) -> None:
        async with client.post("/subjects/s/versions", data="{", headers=HEADERS) as response:
            assert response.status == 400
            assert (await response.json(content_type=None))["error_code"] == 400
        big = json.dumps({"schema": "x" * (2 * 1024 * 1024 + 10)})
        async with client.post("/subjects/s/versions", data=big, headers=HEADERS) as response:
            assert response.status == 413
            assert (await response.json(content_type=None))["error_code"] == 413
        async with client.post(
            "/subjects/s/versions",
            data=json.dumps({"schema": V1}),
            headers={"Content-Type": "text/plain"},
        ) as response:
            assert response.status == 415

    with_client(scenario)


def test_config_get_put_and_delete_as_confluent_spells_them():
    async def scenario(client: TestClient[Any, Any]) -> None:
        assert await call(client, "GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
        assert await call(client, "PUT", "/config", {"compatibility": "full_transitive"}) == (
            200,
            {"compatibility": "FULL_TRANSITIVE"},
        )
        assert await call(client, "GET", "/config") == (
            200,
            {"compatibilityLevel": "FULL_TRANSITIVE"},
        )
        assert await call(client, "PUT", "/config/s", {"compatibility": "NONE"}) == (
            200,
            {"compatibility": "NONE"},
        )
        assert await call(client, "GET", "/config/s") == (200, {"compatibilityLevel": "NONE"})
        assert await call(client, "DELETE", "/config/s") == (200, {"compatibilityLevel": "NONE"})
        assert await call(client, "GET", "/config/s?defaultToGlobal=true") == (
            200,
            {"compatibilityLevel": "FULL_TRANSITIVE"},
        )

    with_client(scenario)


def test_compatibility_endpoint_says_what_is_wrong():
    async def scenario(client: TestClient[Any, Any]) -> None:
        await call(client, "POST", "/subjects/s/versions", {"schema": V1})
        assert await call(
            client, "POST", "/compatibility/subjects/s/versions/latest", {"schema": V2}
        ) == (200, {"is_compatible": True, "messages": []})
        status, document = await call(
            client,
            "POST",
            "/compatibility/subjects/s/versions/1?verbose=true",
            {"schema": V2_REQUIRED},
        )
        assert status == 200
        assert document["is_compatible"] is False
        assert any("'b'" in message for message in document["messages"])
        status, document = await call(
            client, "POST", "/compatibility/subjects/s/versions", {"schema": V2_REQUIRED}
        )
        assert (status, document["is_compatible"]) == (200, False)

    with_client(scenario)


def test_soft_delete_then_permanent_delete_over_http():
    async def scenario(client: TestClient[Any, Any]) -> None:
        await call(client, "POST", "/subjects/s/versions", {"schema": V1})
        await call(client, "POST", "/subjects/s/versions", {"schema": V2})
        assert await call(client, "DELETE", "/subjects/s/versions/2") == (200, 2)
        assert await call(client, "GET", "/subjects/s/versions") == (200, [1])
        assert await call(client, "GET", "/subjects/s/versions?deleted=true") == (200, [1, 2])
        status, document = await call(client, "GET", "/subjects/s/versions/2?deleted=true")
        assert (status, document["version"]) == (200, 2)
        assert await call(client, "DELETE", "/subjects/s") == (200, [1])
        assert await call(client, "GET", "/subjects") == (200, [])
        assert await call(client, "GET", "/subjects?deleted=true") == (200, ["s"])
        assert await call(client, "DELETE", "/subjects/s?permanent=true") == (200, [1, 2])
        assert await call(client, "GET", "/subjects?deleted=true") == (200, [])

    with_client(scenario)


def test_subjects_with_special_characters_round_trip():
    async def scenario(client: TestClient[Any, Any]) -> None:
        subject = "hr.events-erp.hr.Payroll Processed:ü"
        quoted = "hr.events-erp.hr.Payroll%20Processed:%C3%BC"
        assert await call(client, "POST", f"/subjects/{quoted}/versions", {"schema": V1}) == (
            200,
            {"id": 1},
        )
        assert await call(client, "GET", "/subjects") == (200, [subject])

    with_client(scenario)


def test_store_failure_answers_500_with_50001():
    log = MemoryLog()

    async def scenario(client: TestClient[Any, Any]) -> None:
        log.fail_appends = True
        status, document = await call(client, "POST", "/subjects/s/versions", {"schema": V1})
        assert (status, document["error_code"]) == (500, 50001)
        assert "Kafka" in document["message"]

    with_client(scenario, log)
