"""The registry client over a hand-written fake HTTP session (no network)."""

from __future__ import annotations

import json

import pytest
import requests

from errors import RegistryRequestError, RegistryUnavailableError
from schemas.registry import (
    FULL_TRANSITIVE,
    RegistryClient,
    SchemaIds,
    SchemaNotFound,
    check_all,
    register_all,
)
from tests.unit.schemas.fixtures import SALES, catalog, entry

APICURIO = "http://registry:8081/apis/ccompat/v7"


class FakeResponse:
    def __init__(self, status_code, body):
        self.status_code = status_code
        self._body = body
        self.text = body if isinstance(body, str) else json.dumps(body)

    def json(self):
        if isinstance(self._body, str):
            return json.loads(self._body)
        return self._body


class FakeSession:
    """Answers requests from a list of (method, path suffix) -> response rules; logs calls."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def request(self, method, url, data=None, headers=None, timeout=None):
        self.calls.append((method, url, json.loads(data) if data else None))
        assert timeout is not None, "every registry call needs a timeout"
        assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
        outcome = self.answer(method, url, json.loads(data) if data else None)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self):
        pass


def client_answering(answer, base_url=APICURIO):
    session = FakeSession(answer)
    return RegistryClient(base_url, timeout_s=2.0, session=session), session


def test_get_schema_calls_the_ids_path_under_a_base_url_with_a_path():
    client, session = client_answering(lambda *_: FakeResponse(200, {"schema": '"string"'}))

    assert client.get_schema(42) == '"string"'
    assert session.calls == [("GET", f"{APICURIO}/schemas/ids/42", None)]


def test_register_posts_the_schema_under_the_escaped_subject():
    client, session = client_answering(lambda *_: FakeResponse(200, {"id": 7}))

    assert client.register("crm.events-erp.crm.X", '{"type":"string"}') == 7
    method, url, body = session.calls[0]
    assert (method, url) == ("POST", f"{APICURIO}/subjects/crm.events-erp.crm.X/versions")
    assert body == {"schema": '{"type":"string"}'}


def test_a_404_is_schema_not_found_with_the_registry_error_code():
    client, _ = client_answering(
        lambda *_: FakeResponse(404, {"error_code": 40403, "message": "Schema not found"})
    )

    with pytest.raises(SchemaNotFound, match="Schema not found") as raised:
        client.get_schema(9)
    assert raised.value.error_code == 40403


@pytest.mark.parametrize(
    "outcome",
    [
        FakeResponse(500, {"error_code": 50001, "message": "store down"}),
        FakeResponse(503, "Service Unavailable"),
        requests.ConnectionError("connection refused"),
        requests.Timeout("read timed out"),
        FakeResponse(200, "<html>proxy error page</html>"),
    ],
    ids=["a 500", "a 503 in plain text", "a refused connection", "a timeout", "a non-JSON 200"],
)
def test_transient_failures_are_registry_unavailable(outcome):
    client, _ = client_answering(lambda *_: outcome)

    with pytest.raises(RegistryUnavailableError):
        client.get_schema(1)


def test_other_client_errors_carry_the_registry_message():
    client, _ = client_answering(
        lambda *_: FakeResponse(
            409, {"error_code": 409, "message": "Schema being registered is incompatible"}
        )
    )

    with pytest.raises(RegistryRequestError, match="incompatible"):
        client.register("s", '"string"')


def test_check_compatibility_returns_the_verdict_and_messages():
    client, session = client_answering(
        lambda *_: FakeResponse(200, {"is_compatible": False, "messages": ["field x removed"]})
    )

    assert client.check_compatibility("s", '"string"') == (False, ["field x removed"])
    assert session.calls[0][1] == f"{APICURIO}/compatibility/subjects/s/versions?verbose=true"


class FakeRegistryServer:
    """Just enough registry state for register_all / check_all / SchemaIds."""

    def __init__(self):
        self.versions = {}  # subject -> list of schema texts
        self.levels = {}
        self.incompatible = set()
        self.next_id = 1
        self.ids = {}

    def __call__(self, method, url, body):
        path = url.removeprefix(APICURIO)
        if method == "PUT" and path.startswith("/config/"):
            self.levels[path.removeprefix("/config/")] = body["compatibility"]
            return FakeResponse(200, body)
        if method == "GET" and path.startswith("/config/"):
            subject = path.removeprefix("/config/")
            if subject not in self.levels:
                return FakeResponse(404, {"error_code": 40408, "message": "no config"})
            return FakeResponse(200, {"compatibilityLevel": self.levels[subject]})
        if method == "POST" and path.endswith("/versions") and path.startswith("/subjects/"):
            subject = path.removeprefix("/subjects/").removesuffix("/versions")
            self.versions.setdefault(subject, []).append(body["schema"])
            return FakeResponse(200, {"id": self._id_of(body["schema"])})
        if method == "POST" and path.startswith("/subjects/"):
            subject = path.removeprefix("/subjects/")
            if body["schema"] not in self.versions.get(subject, []):
                return FakeResponse(404, {"error_code": 40403, "message": "Schema not found"})
            return FakeResponse(200, {"id": self._id_of(body["schema"])})
        if method == "GET" and path.endswith("/versions/latest"):
            subject = path.removeprefix("/subjects/").removesuffix("/versions/latest")
            if subject not in self.versions:
                return FakeResponse(404, {"error_code": 40401, "message": "Subject not found"})
            schema = self.versions[subject][-1]
            return FakeResponse(
                200,
                {
                    "subject": subject,
                    "version": len(self.versions[subject]),
                    "id": self._id_of(schema),
                    "schema": schema,
                },
            )
        if method == "POST" and path.startswith("/compatibility/subjects/"):
            subject = path.removeprefix("/compatibility/subjects/").split("/")[0]
            if subject in self.incompatible:
                return FakeResponse(
                    200, {"is_compatible": False, "messages": ["reader field x has no default"]}
                )
            return FakeResponse(200, {"is_compatible": True, "messages": []})
        return FakeResponse(404, {"error_code": 404, "message": f"no route {method} {path}"})

    def _id_of(self, schema):
        if schema not in self.ids:
            self.ids[schema] = self.next_id
            self.next_id += 1
        return self.ids[schema]


def test_register_all_sets_full_transitive_before_registering_each_subject():
    server = FakeRegistryServer()
    client, session = client_answering(server)

    ids = register_all(catalog(), client, topic_prefix="t1.")

    assert set(ids) == {item.subject for item in catalog().entries}
    real_subject = "t1.crm.events-erp.crm.SalesOrderCompleted"
    assert server.levels[real_subject] == FULL_TRANSITIVE
    order = [(method, url) for method, url, _ in session.calls]
    assert order.index(("PUT", f"{APICURIO}/config/{real_subject}")) < order.index(
        ("POST", f"{APICURIO}/subjects/{real_subject}/versions")
    )


def test_check_all_is_clean_after_register_all():
    server = FakeRegistryServer()
    client, _ = client_answering(server)
    register_all(catalog(), client)

    assert check_all(catalog(), client) == []


def test_check_all_reports_missing_incompatible_and_wrong_level_subjects():
    server = FakeRegistryServer()
    client, _ = client_answering(server)
    register_all(catalog(), client)
    sales = entry(SALES).subject
    goods = catalog().by_fullname["erp.scm.GoodsReceived"].subject
    payroll = catalog().by_fullname["erp.hr.PayrollProcessed"].subject
    del server.versions[sales]
    server.incompatible.add(goods)
    server.levels[payroll] = "BACKWARD"

    problems = check_all(catalog(), client)

    assert problems == [
        f"{payroll}: compatibility is BACKWARD, expected FULL_TRANSITIVE",
        f"{goods}: scm_goods_received.avsc is incompatible: reader field x has no default",
        f"{sales}: not registered",
    ]


def test_schema_ids_looks_up_then_registers_once_per_subject():
    server = FakeRegistryServer()
    client, session = client_answering(server)
    ids = SchemaIds(catalog(), client, topic_prefix="t2.")
    subject = entry(SALES).subject

    first = ids(subject)
    second = ids(subject)

    assert first == second
    methods = [(method, url.removeprefix(APICURIO)) for method, url, _ in session.calls]
    assert methods == [
        ("POST", "/subjects/t2.crm.events-erp.crm.SalesOrderCompleted"),
        ("POST", "/subjects/t2.crm.events-erp.crm.SalesOrderCompleted/versions"),
    ]


def test_schema_ids_without_auto_register_refuses_an_unregistered_subject():
    client, _ = client_answering(FakeRegistryServer())

    with pytest.raises(SchemaNotFound):
        SchemaIds(catalog(), client, auto_register=False)(entry(SALES).subject)
