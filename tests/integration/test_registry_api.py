"""FIN's registry against a real Kafka, driven by a third-party client (confluent-kafka's).

Uses the session's real broker (tests/fixtures.py). The in-project fallback registry
runs as `python -m registry` in a subprocess on a free port (or FIN_TEST_REGISTRY_PORT) with a
topic of its own, deleted afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.fixtures import Infra

pytestmark = pytest.mark.integration

REPO_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def decimal(precision: int, scale: int) -> dict[str, object]:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def payment(*extra_fields: Mapping[str, object], scale: int = 2) -> Schema:
    fields = [
        {"name": "payment_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "amount", "type": decimal(18, scale)},
        *extra_fields,
    ]
    record = {"type": "record", "name": "PaymentMade", "namespace": "fin.it", "fields": fields}
    return Schema(json.dumps(record), "AVRO")


NOTE = {"name": "note", "type": ["null", "string"], "default": None}
CURRENCY = {"name": "currency", "type": "string", "default": "USD"}
FEE_REQUIRED = {"name": "fee", "type": decimal(18, 2)}


class RegistryProcess:
    """`python -m registry` as a subprocess: start, wait until it answers, stop with SIGTERM."""

    def __init__(self, bootstrap: str, topic: str, port: int, log_path: Path) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        assert self._process is None
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry",
                "--port",
                str(self.port),
                "--bootstrap",
                self.bootstrap,
                "--topic",
                self.topic,
            ],
            cwd=REPO_DIR,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"registry exited with {self._process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/subjects", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"registry did not answer within {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; return the exit status."""
        process, self._process = self._process, None
        assert process is not None
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        if self._log_file is not None:
            self._log_file.close()
        return status

    @property
    def running(self) -> bool:
        return self._process is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, infra: Infra) -> Iterator[RegistryProcess]:
    bootstrap = infra.bootstrap
    port = int(os.environ.get("FIN_TEST_REGISTRY_PORT") or free_port())
    topic = f"_schemas_it_{uuid.uuid4().hex[:12]}"
    process = RegistryProcess(
        bootstrap, topic, port, tmp_path_factory.mktemp("registry") / "registry.log"
    )
    process.start()
    try:
        yield process
    finally:
        if process.running:
            process.stop()
        _delete_topic(bootstrap, topic)


def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fin-registry-test")
    try:
        admin.delete_topics([topic])
    finally:
        admin.close()


def client_for(registry: RegistryProcess) -> SchemaRegistryClient:
    # A new client has an empty cache: every answer below comes from the registry.
    return SchemaRegistryClient({"url": registry.url, "max.retries": 0})


def same_schema(left: str, right: str) -> bool:
    return bool(json.loads(left) == json.loads(right))


def test_a_registered_schema_is_fetched_by_its_id(registry: RegistryProcess) -> None:
    client = client_for(registry)
    schema_id = client.register_schema("it-fetch-value", payment())
    fetched = client_for(registry).get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert fetched.schema_str is not None
    assert same_schema(
        fetched.schema_str, client.get_latest_version("it-fetch-value").schema.schema_str or ""
    )
    versions = client.get_schema_versions(schema_id)
    assert [(v.subject, v.version) for v in versions] == [("it-fetch-value", 1)]


def test_the_same_schema_gets_the_same_id_under_any_subject(registry: RegistryProcess) -> None:
    client = client_for(registry)
    first = client.register_schema("it-same-a", payment(NOTE))
    assert client_for(registry).register_schema("it-same-a", payment(NOTE)) == first
    assert client_for(registry).register_schema("it-same-b", payment(NOTE)) == first
    assert client.get_versions("it-same-a") == [1]
    assert sorted(client.get_subjects_by_schema_id(first)) == ["it-same-a", "it-same-b"]


def test_full_transitive_accepts_compatible_changes_and_refuses_others_with_a_reason(
    registry: RegistryProcess,
) -> None:
    client = client_for(registry)
    subject = "it-evolve-value"
    # The client is annotated to return str, but hands back the JSON body.
    answer: object = client.set_compatibility(subject, "FULL_TRANSITIVE")
    assert answer == {"compatibility": "FULL_TRANSITIVE"}
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"
    first = client.register_schema(subject, payment())
    second = client.register_schema(subject, payment(NOTE))
    third = client.register_schema(subject, payment(NOTE, CURRENCY))
    assert len({first, second, third}) == 3
    assert client.get_versions(subject) == [1, 2, 3]

    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, payment(NOTE, CURRENCY, FEE_REQUIRED))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "'fee'" in refused.value.error_message
    assert "no default value" in refused.value.error_message

    with pytest.raises(SchemaRegistryError) as rescaled:
        client.register_schema(subject, payment(NOTE, CURRENCY, scale=4))
    assert rescaled.value.error_code == 409
    assert "decimal(18,2) to decimal(18,4)" in rescaled.value.error_message

    assert client.get_versions(subject) == [1, 2, 3]
    assert client.test_compatibility(subject, payment(NOTE, CURRENCY)) is True
    assert client.test_compatibility(subject, payment(NOTE, CURRENCY, scale=3)) is False
    assert client.test_compatibility_all_versions(subject, payment(NOTE)) is True


def test_invalid_avro_is_refused_with_42201_and_the_parsers_message(
    registry: RegistryProcess,
) -> None:
    bad = Schema('{"type": "record", "name": "Broken", "fields": [{"name": "x"}]}', "AVRO")
    with pytest.raises(SchemaRegistryError) as refused:
        client_for(registry).register_schema("it-invalid-value", bad)
    assert (refused.value.http_status_code, refused.value.error_code) == (422, 42201)
    assert "Invalid schema" in refused.value.error_message


def test_not_found_errors_use_confluents_codes(registry: RegistryProcess) -> None:
    client = client_for(registry)
    with pytest.raises(SchemaRegistryError) as no_subject:
        client.get_latest_version("it-never-registered")
    assert no_subject.value.error_code == 40401
    with pytest.raises(SchemaRegistryError) as no_schema:
        client.get_schema(999_999)
    assert no_schema.value.error_code == 40403
    answer = requests.get(f"{registry.url}/subjects/it-fetch-value/versions/42", timeout=5)
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/vnd.schemaregistry.v1+json")
    assert answer.json()["error_code"] == 40402


def test_the_state_topic_is_compacted_with_one_partition(registry: RegistryProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=registry.bootstrap, client_id="fin-registry-test")
    try:
        (description,) = admin.describe_topics([registry.topic])
        configs: dict[str, Any] = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, registry.topic)]
        )
    finally:
        admin.close()
    assert len(description["partitions"]) == 1
    assert configs["topic"][registry.topic]["cleanup.policy"]["value"] == "compact"


def test_ids_versions_and_levels_survive_a_restart(registry: RegistryProcess) -> None:
    client = client_for(registry)
    subject = "it-restart-value"
    client.set_compatibility(subject, "FULL_TRANSITIVE")
    first = client.register_schema(subject, payment())
    second = client.register_schema(subject, payment(NOTE))
    client.register_schema("it-restart-other", payment(NOTE))
    client.delete_version("it-restart-other", 1)

    assert registry.stop() == 0, registry.log()
    registry.start()

    restarted = client_for(registry)
    assert restarted.lookup_schema(subject, payment()).schema_id == first
    assert restarted.lookup_schema(subject, payment(NOTE)).schema_id == second
    assert restarted.register_schema(subject, payment(NOTE)) == second
    assert restarted.get_versions(subject) == [1, 2]
    assert same_schema(
        restarted.get_schema(first).schema_str or "", client.get_schema(first).schema_str or ""
    )
    assert restarted.get_compatibility(subject) == "FULL_TRANSITIVE"
    assert "it-restart-other" not in restarted.get_subjects()
    assert "it-restart-other" in restarted.get_subjects(deleted=True)
    third = restarted.register_schema("it-restart-new", payment(CURRENCY))
    assert third > second
    with pytest.raises(SchemaRegistryError) as refused:
        restarted.register_schema(subject, payment(NOTE, FEE_REQUIRED))
    assert refused.value.error_code == 409
    assert "registered subject='it-restart-value' version=2" in registry.log()
    assert "refused subject='it-restart-value'" in registry.log()
