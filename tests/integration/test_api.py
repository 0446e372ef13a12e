"""The REST API of a real worker: commands, errors, keys, the OpenAPI document under fuzzing,
what the web server exposes, and consumer lag under a burst (issue 5).

One worker per module, with the specification's samples processed, so reads find real keys.
The burst test runs last: it leaves the worker busy for a while.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import engine
from schemathesis.engine import events

from api.openapi import OPENAPI_PATH
from demo.generator import SAMPLE_EVENT_IDS, specification_samples, synthetic_events
from ledger.chart import load_chart
from ledger.entries import entry_id_for
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder
from schemas.registry import RegistryClient
from settings import Settings
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import TopicReader, wait_until
from tools.produce import EventProducer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PREFIX = "/api/v1/fin"
BURST_EVENTS = 3000
LAG_DEADLINE_S = 120.0
FUZZ_EXAMPLES_PER_OPERATION = 25
FUZZ_EXAMPLES_MASTER_DATA = 5
PROBLEM_FIELDS = {"status", "title", "detail"}


@dataclass(frozen=True)
class Api:
    deployment: Deployment
    worker: Worker
    read_key: str
    write_key: str

    @property
    def url(self) -> str:
        return self.worker.url

    def get(self, path: str, key: str | None = None, **params: Any) -> requests.Response:
        headers = {"X-API-Key": key if key is not None else self.read_key}
        return requests.get(self.url + path, params=params, headers=headers, timeout=30)

    def send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        all_headers = {"X-API-Key": key if key is not None else self.write_key, **(headers or {})}
        return requests.request(
            method, self.url + path, json=body, params=params, headers=all_headers, timeout=30
        )


def publish(deployment: Deployment, records: Any) -> int:
    producer = EventProducer(
        deployment.infra.bootstrap, deployment.infra.registry_url, topic_prefix=deployment.prefix
    )
    sent = 0
    try:
        for record in records:
            producer.send(record)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def start_worker(deployment: Deployment) -> Worker:
    worker = deployment.add_worker(start=False)
    # The worker keeps its tables under FIN_DATA_DIR/<app id> and creates only the last level.
    Path(worker.env["FIN_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    worker.start()
    worker.wait_ready()
    return worker


@pytest.fixture(scope="module")
def api(module_deployment: Deployment) -> Iterator[Api]:
    worker = start_worker(module_deployment)
    publish(module_deployment, specification_samples())
    ready = Api(
        module_deployment,
        worker,
        read_key=module_deployment.api_key,
        write_key=module_deployment.api_key + "-write",
    )

    def samples_processed() -> bool:
        credit = ready.get(f"{PREFIX}/ar/customers/CUS-001/credit-status")
        budget = ready.get(
            f"{PREFIX}/budgets/department/ENG-001", category="SALARY", period="2024-Q1"
        )
        return (
            credit.status_code == 200
            and credit.json()["exposure"] == "25000.00"
            and budget.status_code == 200
            and budget.json()["actual"] == "125000.00"
        )

    wait_until(samples_processed, "the specification samples to be processed", timeout_s=90)
    yield ready


def commands_end_offset(api: Api) -> int:
    consumer = KafkaConsumer(bootstrap_servers=api.deployment.infra.bootstrap)
    try:
        topic = api.deployment.topic("fin.commands")
        partitions = [
            TopicPartition(topic, number) for number in consumer.partitions_for_topic(topic) or ()
        ]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status, body
    return body


# --- commands --------------------------------------------------------------------------------


def test_a_budget_command_is_published_keyed_by_department_and_then_read_back(api: Api) -> None:
    response = api.send(
        "PUT",
        f"{PREFIX}/budgets/department/ENG-001",
        {"amount": "42000.00"},
        params={"category": "TRAINING", "period": "2024-Q2"},
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted" and accepted["event_type"] == "fin.budget.set"
    command_id = accepted["command_id"]
    assert str(uuid.UUID(command_id)) == command_id

    reader = TopicReader(api.deployment, "fin.commands")
    registry = RegistryClient(api.deployment.infra.registry_url)
    decoder = Decoder(SchemaCatalog.load(), registry.get_schema)
    try:
        records = reader.wait_for(
            lambda found: any(
                record.key == b"ENG-001"
                and record.partition == accepted["partition"]
                and record.offset == accepted["offset"]
                for record in found
            ),
            "the budget command",
        )
        published = next(
            r for r in records if r.offset == accepted["offset"] and r.key == b"ENG-001"
        )
        decoded = decoder.decode("fin.commands", published.value)
    finally:
        reader.close()
        registry.close()
    assert isinstance(decoded, Decoded), decoded
    assert decoded.record["event_id"] == command_id
    assert decoded.record["source"] == "fin-api"
    assert decoded.record["data"] == {
        "department_id": "ENG-001",
        "category": "TRAINING",
        "period": "2024-Q2",
        "amount": Decimal("42000.00"),
    }

    def budget_is_set() -> bool:
        read = api.get(
            f"{PREFIX}/budgets/department/ENG-001", category="TRAINING", period="2024-Q2"
        )
        return read.status_code == 200 and read.json()["budget"] == "42000.00"

    wait_until(budget_is_set, "the new budget to be readable")


def vendor_paid(api: Api, vendor: str) -> str | None:
    response = api.get(f"{PREFIX}/ap/vendors/{vendor}/payment-status")
    return response.json()["paid"] if response.status_code == 200 else None


def test_a_payment_retried_with_the_same_idempotency_key_is_one_payment(api: Api) -> None:
    vendor = f"VEN-IDEM-{uuid.uuid4().hex[:6]}"
    key = str(uuid.uuid4())
    body = {"payment_id": "BANK-REF-1", "amount": "1250.00", "business_date": "2024-03-20"}

    first = api.send(
        "POST", f"{PREFIX}/ap/vendors/{vendor}/payments", body, headers={"Idempotency-Key": key}
    )
    retry = api.send(
        "POST", f"{PREFIX}/ap/vendors/{vendor}/payments", body, headers={"Idempotency-Key": key}
    )

    assert first.status_code == retry.status_code == 202, (first.text, retry.text)
    assert first.json()["command_id"] == retry.json()["command_id"] == key
    wait_until(lambda: vendor_paid(api, vendor) is not None, "the payment to be applied")

    def duplicate_counted() -> bool:
        return (
            metric_sum(api, "fin_events_duplicate_total", event_type="fin.vendor_payment.made") >= 1
        )

    wait_until(duplicate_counted, "the retry to be counted as a duplicate")
    assert vendor_paid(api, vendor) == "1250.00"


def test_an_idempotency_key_reused_for_a_different_payment_is_refused_with_409(api: Api) -> None:
    key = str(uuid.uuid4())
    path = f"{PREFIX}/ar/customers/CUS-001/payments"

    first = api.send(
        "POST", path, {"payment_id": "P-1", "amount": "10.00"}, headers={"Idempotency-Key": key}
    )
    other = api.send(
        "POST", path, {"payment_id": "P-1", "amount": "99.00"}, headers={"Idempotency-Key": key}
    )

    assert first.status_code == 202, first.text
    body = assert_problem(other, 409)
    assert body["parameter"] == "Idempotency-Key"


def test_one_event_id_is_one_command_and_a_payment_sent_twice_without_a_key_is_one_payment(
    api: Api,
) -> None:
    """Issue 14, items 2 and 5. A compensation published with the event id of a posted payment
    (the same Idempotency-Key sent to two workers, say) is event_id_conflict: no second entry
    under that entry id, its target untouched and free for the next compensation. A payment
    resent without a key is a duplicate; another amount under its payment_id a 409."""
    rule_version = load_chart(Settings().chart_path).rule_version
    tag = uuid.uuid4().hex[:6]
    target_id, shared_id, later_id = (str(uuid.uuid4()) for _ in range(3))

    def pay(vendor: str, amount: str, key: str | None = None) -> requests.Response:
        body = {"payment_id": f"PAY-{tag}", "amount": amount, "business_date": "2024-03-20"}
        headers = {"Idempotency-Key": key} if key else None
        return api.send("POST", f"{PREFIX}/ap/vendors/{vendor}/payments", body, headers=headers)

    def compensation(event_id: str) -> dict[str, Any]:
        return {
            "event_type": "fin.compensation.requested",
            "event_id": event_id,
            "timestamp": datetime.now(UTC),
            "source": "another-fin-api",
            "data": {"target_event_id": target_id, "reason": "issue 14"},
        }

    duplicates_before = metric_sum(
        api, "fin_events_duplicate_total", event_type="fin.vendor_payment.made"
    )
    assert pay(f"VEN-TGT-{tag}", "100.00", target_id).status_code == 202
    assert pay(f"VEN-SHR-{tag}", "70.00", shared_id).status_code == 202
    wait_until(lambda: vendor_paid(api, f"VEN-SHR-{tag}") == "70.00", "the shared id's payment")
    wait_until(lambda: vendor_paid(api, f"VEN-TGT-{tag}") == "100.00", "the target's payment")
    publish(api.deployment, [compensation(shared_id)])

    dead_letters = TopicReader(api.deployment, "fin.dlq")
    by_id = TopicReader(api.deployment, "fin.internal.by-event-id")
    try:
        dead_letters.wait_for(
            lambda found: any(
                dict(r.headers or ()).get("fin.event_id") == shared_id.encode()
                and dict(r.headers or ()).get("fin.reason") == b"event_id_conflict"
                for r in found
            ),
            "the compensation's event_id_conflict",
        )
        # The next compensation of the target must land behind the release in its partition.
        by_id.wait_for(
            lambda found: any(
                r.key == target_id.encode()
                and dict(r.headers or ()).get("fin.compensation.step") == b"release"
                for r in found
            ),
            "the target's release",
        )
    finally:
        dead_letters.close()
        by_id.close()
    assert vendor_paid(api, f"VEN-TGT-{tag}") == "100.00"

    later = api.send(
        "POST",
        f"{PREFIX}/compensations",
        compensation(later_id)["data"],
        headers={"Idempotency-Key": later_id},
    )
    assert later.status_code == 202, later.text
    wait_until(lambda: vendor_paid(api, f"VEN-TGT-{tag}") == "0.00", "the target's reversal")
    ledger = TopicReader(api.deployment, "fin.ledger.postings")
    registry = RegistryClient(api.deployment.infra.registry_url)
    decoder = Decoder(SchemaCatalog.load(), registry.get_schema)
    wanted = {entry_id_for(event_id, rule_version) for event_id in (shared_id, later_id)}
    try:
        records = ledger.wait_for(
            lambda found: wanted <= {r.key.decode() for r in found}, "the two entries"
        )
        entries: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if record.key.decode() in wanted:
                decoded = decoder.decode("fin.ledger.postings", record.value)
                assert isinstance(decoded, Decoded), decoded
                entries.setdefault(record.key.decode(), []).append(decoded.record)
    finally:
        ledger.close()
        registry.close()
    shared_entries, reversals = (
        entries[entry_id_for(i, rule_version)] for i in (shared_id, later_id)
    )
    assert all(e == shared_entries[0] for e in shared_entries)  # copies at most, never another
    assert shared_entries[0]["source_event_type"] == "fin.vendor_payment.made"
    assert reversals[0]["reverses_entry_id"] == entry_id_for(target_id, rule_version)

    vendor = f"VEN-NOKEY-{tag}"
    first, again = pay(vendor, "55.00"), pay(vendor, "55.00")
    other = pay(vendor, "56.00")
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert first.json()["command_id"] == again.json()["command_id"]
    assert assert_problem(other, 409)["parameter"] == "payment_id"
    wait_until(lambda: vendor_paid(api, vendor) is not None, "the payment without a key")

    def duplicate_counted() -> bool:
        counted = metric_sum(
            api, "fin_events_duplicate_total", event_type="fin.vendor_payment.made"
        )
        return counted > duplicates_before

    wait_until(duplicate_counted, "the resend to be counted as a duplicate")
    assert vendor_paid(api, vendor) == "55.00"


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "reason", "parameter"),
    [
        (
            "POST",
            "/ap/vendors/VEN-001/payments",
            {},
            {"payment_id": "P", "amount": "-5.00"},
            "amount_must_be_positive",
            None,
        ),
        (
            "POST",
            "/ap/vendors/VEN-001/payments",
            {},
            {"payment_id": "P", "amount": "1.005"},
            "amount_exceeds_precision",
            None,
        ),
        (
            "POST",
            "/ar/customers/CUS-001/payments",
            {},
            {"payment_id": "P", "amount": "5.00", "business_date": "1999-12-31"},
            "timestamp_out_of_range",
            None,
        ),
        (
            "PUT",
            "/budgets/department/NO-SUCH-DEPT",
            {"period": "2024-Q1"},
            {"amount": "1.00"},
            "reference_unknown",
            None,
        ),
        (
            "PUT",
            "/budgets/department/ENG-001",
            {"period": "2024-Q5"},
            {"amount": "1.00"},
            "period_invalid",
            "period",
        ),
        (
            "POST",
            "/compensations",
            {},
            {"target_event_id": "not-a-uuid", "reason": "typo"},
            "event_id_invalid",
            None,
        ),
        (
            "PUT",
            "/ar/customers/CUS-001/credit-limit",
            {},
            {"credit_limit": 1000.5},
            None,
            "credit_limit",
        ),
        (
            "PUT",
            "/ar/customers/CUS-001/credit-limit",
            {},
            {"credit_limit": "10", "x": 1},
            None,
            "x",
        ),
        ("POST", "/ap/vendors/VEN-001/payments", {}, {"amount": "5.00"}, None, "payment_id"),
        (
            "POST",
            "/ap/vendors/VEN 001/payments",
            {},
            {"payment_id": "P", "amount": "5.00"},
            None,
            "vendor",
        ),
    ],
)
def test_an_invalid_command_is_refused_with_400_naming_why_and_nothing_is_published(
    api: Api,
    method: str,
    path: str,
    params: dict[str, str],
    body: dict[str, Any],
    reason: str | None,
    parameter: str | None,
) -> None:
    before = commands_end_offset(api)

    response = api.send(method, PREFIX + path, body, params=params)

    problem = assert_problem(response, 400)
    assert problem.get("reason") == reason
    assert problem.get("parameter") == parameter
    assert commands_end_offset(api) == before


def test_a_body_larger_than_a_command_could_be_is_refused_with_413(api: Api) -> None:
    oversized = {"target_event_id": str(uuid.uuid4()), "reason": "x" * 100_000}

    response = api.send("POST", f"{PREFIX}/compensations", oversized)

    assert_problem(response, 413)


def test_a_body_that_is_not_json_is_refused_with_415_or_400(api: Api) -> None:
    path = api.url + f"{PREFIX}/compensations"
    headers = {"X-API-Key": api.write_key}

    form = requests.post(path, data={"reason": "x"}, headers=headers, timeout=30)
    broken = requests.post(
        path, data=b"{", headers={**headers, "Content-Type": "application/json"}, timeout=30
    )

    assert_problem(form, 415)
    assert assert_problem(broken, 400)["parameter"] == "body"


def test_a_cross_site_post_in_the_shape_of_a_no_cors_request_is_refused_and_not_published(
    api: Api,
) -> None:
    path = api.url + f"{PREFIX}/ap/vendors/VEN-001/payments"
    body = b'{"payment_id": "CSRF-1", "amount": "5.00"}'
    before = commands_end_offset(api)

    forged = [
        requests.post(
            path, data=body, headers={**headers, "Origin": "http://evil.example"}, timeout=30
        )
        for headers in (
            {"Content-Type": "text/plain"},
            {"Content-Type": "text/plain", "X-API-Key": api.write_key},
            {"X-API-Key": api.write_key},
        )
    ]
    preflight = requests.options(
        path,
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )

    assert [response.status_code for response in forged] == [401, 415, 415]
    assert "application/json" in forged[2].json()["detail"]
    assert preflight.status_code >= 400 and "Access-Control-Allow-Origin" not in preflight.headers
    assert commands_end_offset(api) == before


def test_a_foreign_host_is_refused_with_421_and_health_answers_any_host(api: Api) -> None:
    rebound = requests.get(
        api.url + f"{PREFIX}/ar/customers/CUS-001/credit-status",
        headers={"X-API-Key": api.read_key, "Host": "evil.example"},
        timeout=30,
    )
    health = requests.get(api.url + "/health", headers={"Host": "evil.example"}, timeout=30)

    assert "evil.example" in assert_problem(rebound, 421)["detail"]
    assert "25000" not in rebound.text
    assert health.status_code == 200


def test_json_nested_30000_levels_is_a_400_naming_the_body_and_the_worker_answers_on(
    api: Api,
) -> None:
    deep = b'{"reason":' + b"[" * 30_000 + b"]" * 30_000 + b"}"

    response = requests.post(
        api.url + f"{PREFIX}/compensations",
        data=deep,
        headers={"X-API-Key": api.write_key, "Content-Type": "application/json"},
        timeout=30,
    )

    assert "deeper than 400" in assert_problem(response, 400)["detail"]
    assert requests.get(api.url + "/health", timeout=30).status_code == 200


# --- keys ------------------------------------------------------------------------------------


def test_a_command_without_a_key_is_401_and_with_the_read_key_403_and_neither_carries_data(
    api: Api,
) -> None:
    path = api.url + f"{PREFIX}/ar/customers/CUS-001/credit-limit"
    body = {"credit_limit": "1.00"}

    missing = requests.put(path, json=body, timeout=30)
    wrong = requests.put(path, json=body, headers={"X-API-Key": "guess"}, timeout=30)
    read_only = requests.put(path, json=body, headers={"X-API-Key": api.read_key}, timeout=30)

    for response, status in ((missing, 401), (wrong, 401), (read_only, 403)):
        assert set(assert_problem(response, status)) == PROBLEM_FIELDS


def test_every_read_needs_the_read_key_but_health_and_ready_do_not(api: Api) -> None:
    protected = [
        f"{PREFIX}/ar/customers/CUS-001/credit-status",
        f"{PREFIX}/ledger/integrity",
        f"{PREFIX}/status",
        OPENAPI_PATH,
        "/metrics",
        "/",
    ]
    for path in protected:
        refused = requests.get(api.url + path, timeout=30)
        assert set(assert_problem(refused, 401)) == PROBLEM_FIELDS, path
        assert "25000" not in refused.text
    for path in ("/health", "/ready"):
        assert requests.get(api.url + path, timeout=30).status_code == 200, path


def test_the_status_page_alone_takes_the_read_key_as_a_query_parameter(api: Api) -> None:
    page = requests.get(api.url + "/", params={"key": api.read_key}, timeout=30)
    write_key_in_url = requests.get(api.url + "/", params={"key": api.write_key}, timeout=30)
    metrics = requests.get(api.url + "/metrics", params={"key": api.read_key}, timeout=30)

    assert page.status_code == 200 and "FIN hub" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert_problem(write_key_in_url, 401)
    assert_problem(metrics, 401)


# --- errors ----------------------------------------------------------------------------------


def test_an_unknown_key_is_404_with_a_readable_body(api: Api) -> None:
    body = assert_problem(api.get(f"{PREFIX}/ar/customers/CUS-NOBODY/credit-status"), 404)

    assert "CUS-NOBODY" in body["detail"]


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/ledger/trial-balance", {}, "period"),
        ("/ledger/trial-balance", {"period": "March"}, "period"),
        ("/budgets/department/ENG-001", {"period": "2024-Q1", "amount": "-1"}, "amount"),
        ("/budgets/department/ENG-001", {"period": "2024-Q1", "category": "FOOD"}, "category"),
        ("/budgets/department/NOPE", {"period": "2024-Q1"}, "dept"),
        ("/ap/vendors/VEN-001/payment-status", {"as_of": "2024-02-30"}, "as_of"),
        ("/ledger/accounts/9999", {"period": "2024-03"}, "account"),
        ("/ledger/entries/not-a-uuid", {}, "entry_id"),
    ],
)
def test_a_malformed_parameter_is_400_naming_it(
    api: Api, path: str, params: dict[str, str], parameter: str
) -> None:
    body = assert_problem(api.get(PREFIX + path, **params), 400)

    assert body["parameter"] == parameter


def test_a_query_parameter_given_twice_is_400(api: Api) -> None:
    response = requests.get(
        api.url + f"{PREFIX}/ledger/trial-balance?period=2024-03&period=2024-04",
        headers={"X-API-Key": api.read_key},
        timeout=30,
    )

    assert assert_problem(response, 400)["parameter"] == "period"


def test_unknown_paths_and_methods_answer_json_problems(api: Api) -> None:
    nowhere = api.get("/no/such/path")
    wrong_method = requests.delete(
        api.url + f"{PREFIX}/compensations", headers={"X-API-Key": api.write_key}, timeout=30
    )

    assert_problem(nowhere, 404)
    assert_problem(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"


# --- exposure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/router", "/router/", "/table/processed/x", "/table/", "/stats/"]
)
def test_fausts_debug_endpoints_are_not_served(api: Api, path: str) -> None:
    assert_problem(api.get(path), 404)


def listening_addresses(port: int) -> list[str]:
    """Local addresses in LISTEN state on ``port``, from the kernel's socket tables."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":
                found.append(address)
    return found


def test_the_web_server_listens_on_loopback_only(api: Api) -> None:
    addresses = listening_addresses(api.worker.port)

    assert addresses, f"nothing listens on {api.worker.port}"
    loopback_v4 = "0100007F"  # 127.0.0.1, little-endian hex
    loopback_v6 = "00000000000000000000000001000000"  # ::1
    assert set(addresses) <= {loopback_v4, loopback_v6}, addresses


# --- the OpenAPI document ------------------------------------------------------------------


def test_answers_for_real_keys_match_the_documented_response_schemas(api: Api) -> None:
    """The fuzzer rarely guesses a booked key; these are, so their 200 bodies get checked."""
    headers = {"X-API-Key": api.read_key}
    schema = schemathesis.openapi.from_url(api.url + OPENAPI_PATH, headers=headers)
    rule_version = load_chart(Settings().chart_path).rule_version
    payroll_entry = entry_id_for(SAMPLE_EVENT_IDS["hr.payroll.processed"], rule_version)
    known = [
        (
            "/budgets/department/{dept}",
            {"dept": "ENG-001"},
            {"category": "SALARY", "period": "2024-Q1", "amount": "400000.00"},
        ),
        ("/ap/vendors/{vendor}/payment-status", {"vendor": "VEN-001"}, {"as_of": "2024-05-01"}),
        ("/ar/customers/{customer}/credit-status", {"customer": "CUS-001"}, {}),
        ("/ledger/trial-balance", {}, {"period": "2024-03"}),
        ("/ledger/accounts/{account}", {"account": "1100"}, {"period": "2024-Q1"}),
        ("/ledger/entries/{entry_id}", {"entry_id": payroll_entry}, {}),
        ("/ledger/integrity", {}, {}),
        ("/status", {}, {}),
    ]
    for path, path_parameters, query in known:
        operation = schema[PREFIX + path]["GET"]
        case = operation.Case(path_parameters=path_parameters or None, query=query or None)

        response = case.call_and_validate(base_url=api.url, headers=headers)

        assert response.status_code == 200, (path, response.text)
    budget = api.get(
        f"{PREFIX}/budgets/department/ENG-001",
        category="SALARY",
        period="2024-Q1",
        amount="375000.00",
    ).json()
    assert (budget["utilisation"], budget["available"], budget["fits"]) == (
        "0.25",
        "375000.00",
        True,
    )


def fuzz_failures(schema: Any) -> tuple[list[str], int]:
    """Run schemathesis's phases (examples, coverage, one fuzzing pass) once; what failed."""
    failures: dict[tuple[str, str, str], str] = {}
    requests_sent = 0
    for event in engine.from_schema(schema).execute():
        if isinstance(event, (events.NonFatalError, events.FatalError)):
            failures[("error", type(event).__name__, str(event))] = str(
                getattr(event, "value", getattr(event, "exception", ""))
            )
        if not isinstance(event, events.ScenarioFinished):
            continue
        requests_sent += len(event.recorder.interactions)
        for nodes in event.recorder.checks.values():
            for node in nodes:
                if node.failure_info is None:
                    continue
                failure = node.failure_info.failure
                key = (node.name, str(failure.operation), failure.title)
                failures.setdefault(key, f"{failure.message}\n{node.failure_info.code_sample}")
    return [f"{key}: {detail}" for key, detail in failures.items()], requests_sent


def test_fuzzing_the_api_from_its_openapi_document_finds_no_5xx_and_no_schema_violation(
    api: Api,
) -> None:
    headers = {"X-API-Key": api.write_key}
    config = schemathesis.Config.from_dict(
        {
            "base-url": api.url,
            "headers": headers,
            "seed": 20240315,
            "generation": {"max-examples": FUZZ_EXAMPLES_PER_OPERATION, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            # Master data and period close (issue 16): simple bodies that publish a command
            # each; fewer examples keep the whole run within its minute.
            "operations": [
                {
                    "include-path-regex": "/(departments|periods)",
                    "generation": {"max-examples": FUZZ_EXAMPLES_MASTER_DATA},
                }
            ],
            "checks": {
                # Schema-valid input may still be refused by a rule no JSON Schema can state (a
                # business date within a year of today, a department unknown to a command); those
                # 400s are correct, so only the converse (schema-invalid input refused) is checked.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    )
    schema = schemathesis.openapi.from_url(api.url + OPENAPI_PATH, config=config, headers=headers)
    failures, requests_sent = fuzz_failures(schema)

    assert failures == [], "\n\n".join(failures)
    assert requests_sent > 500, "the fuzzer hardly ran"
    # No time limit asserted: speed is measured in bench/, never in tests (61.6 s on a busy
    # machine failed a 60 s limit here once, 2026-12-03).


# --- lag under a burst (runs last) ---------------------------------------------------------


def metric_sum(api: Api, name: str, **labels: str) -> float:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_consumer_lag_rises_under_a_burst_and_returns_to_zero(api: Api) -> None:
    wait_until(
        lambda: metric_sum(api, "fin_consumer_lag_records") == 0,
        "no lag before the burst",
        timeout_s=LAG_DEADLINE_S,
    )

    sent = publish(api.deployment, synthetic_events(seed=int(time.time()), count=BURST_EVENTS))
    peak = 0.0
    deadline = time.monotonic() + LAG_DEADLINE_S
    while time.monotonic() < deadline:
        lag = metric_sum(api, "fin_consumer_lag_records")
        peak = max(peak, lag)
        if peak > 0 and lag == 0:
            break
        time.sleep(0.5)

    assert sent == BURST_EVENTS
    assert peak > 0, "the lag never rose above 0 during the burst"
    assert metric_sum(api, "fin_consumer_lag_records") == 0, (
        f"lag did not return to 0 within {LAG_DEADLINE_S}s (peak {peak})"
    )
