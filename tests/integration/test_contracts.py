"""Event contracts against a real broker, registry and worker (issue 3's "done when").

One worker serves the whole module; each test uses its own event ids and entities and checks only
the records it sent, found by their source position (topic, partition, offset), which journal
entries and dead letters both carry.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from confluent_kafka import SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import SerializationContext, StringSerializer

from demo.bad_records import bad_records
from demo.generator import synthetic_events
from errors import RegistryRequestError
from schemas.catalog import CONTRACT_BY_EVENT_TYPE, SchemaCatalog, key_for
from schemas.codec import Encoder
from schemas.registry import (
    FULL_TRANSITIVE,
    RegistryClient,
    SchemaIds,
    registered_subject,
)
from schemas.wire import frame
from streams.deadletter import (
    HEADER_DETAIL,
    HEADER_REASON,
    HEADER_REJECTED_AT,
    HEADER_SOURCE_TIMESTAMP_MS,
    header_map,
)
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import (
    ENTRY_EVENT_TYPES,
    OUTCOME_METRICS,
    STATE_ONLY_EVENT_TYPES,
    LedgerReader,
    Position,
    RawProducer,
    Scenario,
    TopicReader,
    assert_balanced,
    dead_letters_at,
    entry_amount,
    entry_position,
    metric_totals,
    run_app,
    wait_until,
)
from tools.produce import EventProducer

pytestmark = pytest.mark.integration

PAYROLL = "erp.hr.PayrollProcessed"
SALES = "erp.crm.SalesOrderCompleted"
Publish = Callable[[list[dict[str, Any]]], None]


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


@pytest.fixture
def registry(module_deployment: Deployment) -> Iterator[RegistryClient]:
    client = RegistryClient(module_deployment.infra.registry_url)
    yield client
    client.close()


@pytest.fixture
def ledger(module_deployment: Deployment) -> Iterator[LedgerReader]:
    reader = LedgerReader(module_deployment)
    yield reader
    reader.close()


@pytest.fixture
def raw_producer(module_deployment: Deployment) -> Iterator[RawProducer]:
    producer = RawProducer(module_deployment)
    yield producer
    producer.close()


# --- every event type, from two producers --------------------------------------------------


def assert_every_event_type_is_posted(
    scenario: Scenario,
    events: dict[str, dict[str, Any]],
    publish: Publish,
    worker: Worker,
    ledger: LedgerReader,
) -> None:
    """Publish the scenario's events, then a compensation of one of them; check every effect."""
    publish(list(events.values()))
    with_entry = {t: record for t, record in events.items() if t in ENTRY_EVENT_TYPES}

    entries = ledger.wait_for_events(record["event_id"] for record in with_entry.values())

    for event_type, record in with_entry.items():
        entry = entries[record["event_id"]]
        assert entry["source_event_type"] == event_type
        assert entry["source_topic"] == CONTRACT_BY_EVENT_TYPE[event_type].topic
        assert_balanced(entry, entry_amount(record))
    sales_entry = entries[events["crm.sales_order.completed"]["event_id"]]
    assert (sales_entry["business_date"], sales_entry["period"]) == (date(2024, 5, 20), "2024-05")

    # A compensation travels on fin.commands, its target on pm.events: it is sent only once the
    # target is posted, or it could overtake it and be refused as compensation_target_unknown.
    target = events["pm.time.logged"]
    compensation = Scenario.compensation(target["event_id"])
    publish([compensation])
    reversal = ledger.wait_for_events([compensation["event_id"]])[compensation["event_id"]]
    assert reversal["source_event_type"] == "fin.compensation.requested"
    assert reversal["reverses_entry_id"] == entries[target["event_id"]]["entry_id"]
    assert_balanced(reversal, entry_amount(target))

    # Budget and credit limit commands post no entry: their effect is on the tables.
    budget_path = "/api/v1/fin/budgets/department/ENG-001"
    wait_until(
        lambda: (
            worker.get(budget_path, category="SALARY", period=scenario.budget_period)
            .json()
            .get("budget")
            == "480000.00"
        ),
        f"the budget of ENG-001 SALARY {scenario.budget_period} over REST",
    )
    credit_path = f"/api/v1/fin/ar/customers/{scenario.customer_id}/credit-status"
    # The sales order (25000.10) less the customer payment (4000.10), under the set limit.
    expected_credit = {"limit": "90000.00", "exposure": "21000.00", "available": "69000.00"}
    wait_until(
        lambda: (
            {name: worker.get(credit_path).json().get(name) for name in expected_credit}
            == expected_credit
        ),
        f"the credit status of {scenario.customer_id} over REST",
    )


def test_every_event_type_sent_by_our_producer_is_posted(
    module_deployment: Deployment, worker: Worker, ledger: LedgerReader
) -> None:
    producer = EventProducer(
        module_deployment.infra.bootstrap,
        module_deployment.infra.registry_url,
        topic_prefix=module_deployment.prefix,
    )

    def publish(records: list[dict[str, Any]]) -> None:
        for record in records:
            producer.send(record)
        producer.flush()

    scenario = Scenario.fresh("2031-Q1")
    try:
        assert_every_event_type_is_posted(scenario, scenario.events(), publish, worker, ledger)
    finally:
        producer.close()


def confluent_publisher(deployment: Deployment, catalog: SchemaCatalog) -> tuple[Publish, Any]:
    """Publish with confluent-kafka: its AvroSerializer, schemas from our .avsc files as an
    upstream team would read them, subjects by TopicRecordNameStrategy, registered by it."""
    client = SchemaRegistryClient({"url": deployment.infra.registry_url})
    conf = {
        "auto.register.schemas": True,
        "use.latest.version": False,
        "subject.name.strategy": topic_record_subject_name_strategy,
    }
    serializers = {
        event_type: AvroSerializer(client, entry.path.read_text(encoding="utf-8"), conf=conf)
        for event_type, entry in catalog.by_event_type.items()
    }

    def serialize(record: dict[str, Any], context: SerializationContext) -> bytes | None:
        value: bytes | None = serializers[record["event_type"]](record, context)
        return value

    producer = SerializingProducer(
        {
            "bootstrap.servers": deployment.infra.bootstrap,
            "acks": "all",
            "key.serializer": StringSerializer("utf_8"),
            "value.serializer": serialize,
        }
    )
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    def publish(records: list[dict[str, Any]]) -> None:
        for record in records:
            topic = deployment.topic(CONTRACT_BY_EVENT_TYPE[record["event_type"]].topic)
            producer.produce(topic, key=key_for(record), value=record, on_delivery=delivered)
        assert producer.flush(30) == 0, "confluent-kafka did not deliver every record"
        assert failures == []

    return publish, producer


def test_every_event_type_sent_by_confluent_kafkas_avro_serializer_is_posted(
    module_deployment: Deployment, worker: Worker, ledger: LedgerReader, catalog: SchemaCatalog
) -> None:
    publish, producer = confluent_publisher(module_deployment, catalog)
    scenario = Scenario.fresh("2031-Q2")
    events = scenario.events()
    # Its serializer (fastavro) also takes timestamp-millis as int milliseconds, and a Decimal
    # with fewer places than the schema's scale (written rescaled): both must post the same.
    sales = events["crm.sales_order.completed"]
    sales["timestamp"] = int(sales["timestamp"].timestamp() * 1000)
    events["fin.customer_payment.received"]["data"]["amount"] = Decimal("4000.1")
    try:
        assert_every_event_type_is_posted(scenario, events, publish, worker, ledger)
    finally:
        producer.flush(30)


# --- bad records ---------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_every_bad_record_becomes_exactly_one_dead_letter_with_its_reason_and_original_bytes(
    module_deployment: Deployment,
    registry: RegistryClient,
    raw_producer: RawProducer,
    ledger: LedgerReader,
    catalog: SchemaCatalog,
) -> None:
    schema_ids = SchemaIds(catalog, registry, module_deployment.prefix, auto_register=False)
    bad = bad_records(3, schema_ids, catalog)
    started_at = datetime.now(UTC)
    for record in bad:
        raw_producer.send(record.topic, record.key, record.value)
    sent = raw_producer.flush()
    expected_reason = {
        sent_record.position: record.expected_reason
        for sent_record, record in zip(sent, bad, strict=True)
    }
    positions = set(expected_reason)
    # Dead letters are matched to what was sent by their source topic, partition and offset
    # headers, so a wrong header shows as a missing dead letter.
    dlq = TopicReader(module_deployment, "fin.dlq")
    try:
        dlq.wait_for(
            lambda records: set(dead_letters_at(records, positions)) == positions,
            f"a dead letter for each of the {len(positions)} bad records",
        )
        letters = dead_letters_at(dlq.read_to_end(), positions)
    finally:
        dlq.close()
    finished_at = datetime.now(UTC)

    assert {position: len(found) for position, found in letters.items()} == dict.fromkeys(
        positions, 1
    )
    reasons = {
        position: header_map(found[0].headers)[HEADER_REASON] for position, found in letters.items()
    }
    assert reasons == expected_reason
    for sent_record in sent:
        (letter,) = letters[sent_record.position]
        headers = header_map(letter.headers)
        assert (letter.key, letter.value) == (sent_record.key, sent_record.value)
        assert headers[HEADER_DETAIL].strip()
        assert int(headers[HEADER_SOURCE_TIMESTAMP_MS]) == sent_record.timestamp_ms
        rejected_at = datetime.fromisoformat(headers[HEADER_REJECTED_AT])
        slack = timedelta(seconds=1)
        assert started_at - slack <= rejected_at <= finished_at + slack
    assert [e for e in ledger.read_to_end() if entry_position(e) in positions] == []


# --- a mixed stream adds up ----------------------------------------------------------------

VALID_COUNT = 300
DUPLICATE_EVERY = 10  # 30 duplicates of 300 valid events


def test_in_a_mixed_stream_every_record_is_posted_dead_lettered_or_counted_as_duplicate(
    module_deployment: Deployment,
    worker: Worker,
    registry: RegistryClient,
    raw_producer: RawProducer,
    ledger: LedgerReader,
    catalog: SchemaCatalog,
) -> None:
    schema_ids = SchemaIds(catalog, registry, module_deployment.prefix, auto_register=False)
    encoder = Encoder(catalog, schema_ids)
    # Compensations are left out: one sent on fin.commands may overtake its target on another
    # topic and be refused, which would make the expected outcome depend on timing.
    valid = list(
        itertools.islice(
            (
                record
                for record in synthetic_events(44)
                if record["event_type"] != "fin.compensation.requested"
            ),
            VALID_COUNT,
        )
    )
    bad = bad_records(4, schema_ids, catalog)
    mixed: list[tuple[str, bytes | None, bytes | None, str | None]] = [
        (
            CONTRACT_BY_EVENT_TYPE[record["event_type"]].topic,
            key_for(record).encode(),
            encoder.encode(record),
            None,
        )
        for record in valid
    ]
    mixed += [(record.topic, record.key, record.value, record.expected_reason) for record in bad]
    random.Random(4).shuffle(mixed)
    metrics_before = metric_totals(worker)

    for topic, key, value, _ in mixed:
        raw_producer.send(topic, key, value)
    sent = raw_producer.flush()
    valid_sent = [record for record, item in zip(sent, mixed, strict=True) if item[3] is None]
    for original in valid_sent[::DUPLICATE_EVERY]:
        # The same event under another key, on another partition: only its event_id tells.
        assert original.key is not None
        other_partition = (original.partition + 1) % module_deployment.partitions
        raw_producer.send(
            original.topic, original.key + b"#again", original.value, partition=other_partition
        )
    duplicates_sent = raw_producer.flush()
    records_in = len(sent) + len(duplicates_sent)

    def outcomes_counted() -> dict[str, float]:
        now = metric_totals(worker)
        return {name: now[name] - metrics_before.get(name, 0.0) for name in now}

    wait_until(
        lambda: sum(outcomes_counted().get(name, 0.0) for name in OUTCOME_METRICS) >= records_in,
        f"an outcome for each of the {records_in} records in the worker's metrics",
    )
    counted = outcomes_counted()
    expected_reason = {
        record.position: item[3]
        for record, item in zip(sent, mixed, strict=True)
        if item[3] is not None
    }
    ours: set[Position] = {record.position for record in [*sent, *duplicates_sent]}
    with_entry = [record for record in valid if record["event_type"] in ENTRY_EVENT_TYPES]
    state_only = [record for record in valid if record["event_type"] in STATE_ONLY_EVENT_TYPES]
    assert len(with_entry) + len(state_only) == VALID_COUNT
    ledger.wait_for_positions(len(with_entry), ours)
    dlq = TopicReader(module_deployment, "fin.dlq")
    try:
        dlq.wait_for(
            lambda records: len(dead_letters_at(records, ours)) >= len(bad),
            f"{len(bad)} dead letters of our records",
        )
        letters = dead_letters_at(dlq.read_to_end(), ours)
    finally:
        dlq.close()
    ledger.read_to_end()
    entries = ledger.of_positions(ours)

    postings = counted.get("fin_events_posted_total", 0.0)
    duplicates = counted.get("fin_events_duplicate_total", 0.0)
    dead_letters = sum(len(found) for found in letters.values())
    assert counted.get("fin_events_consumed_total", 0.0) == records_in
    assert records_in == postings + dead_letters + duplicates
    # Each side of that sum, on its own:
    assert duplicates == len(duplicates_sent)
    assert {
        position: [header_map(letter.headers)[HEADER_REASON] for letter in found]
        for position, found in letters.items()
    } == {position: [reason] for position, reason in expected_reason.items()}
    assert postings == len(entries) + len(state_only)
    assert Counter(entry["source_event_id"] for entry in entries) == Counter(
        record["event_id"] for record in with_entry
    )
    assert counted.get("fin_events_rejected_total", 0.0) == len(bad)


# --- schema evolution ----------------------------------------------------------------------


def with_data_field(schema_json: Mapping[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event schema with one more field in its data record."""
    schema = copy.deepcopy(dict(schema_json))
    data = next(item for item in schema["fields"] if item["name"] == "data")["type"]
    data["fields"].append(field)
    return schema


def with_data_field_type(
    schema_json: Mapping[str, Any], name: str, change: dict[str, Any]
) -> dict[str, Any]:
    """A copy of an event schema with the type of data field `name` updated by `change`."""
    schema = copy.deepcopy(dict(schema_json))
    data = next(item for item in schema["fields"] if item["name"] == "data")["type"]
    field = next(item for item in data["fields"] if item["name"] == name)
    field["type"] = {**field["type"], **change}
    return schema


COST_CENTER = {
    "name": "cost_center",
    "type": ["null", "string"],
    "default": None,
    "doc": "Cost center of the run (added in a later version).",
}
APPROVER_REQUIRED = {"name": "approver_id", "type": "string", "doc": "Who approved the run."}


@pytest.mark.usefixtures("worker")
def test_an_optional_field_with_a_default_keeps_old_and_new_payroll_producers_working(
    module_deployment: Deployment,
    registry: RegistryClient,
    raw_producer: RawProducer,
    ledger: LedgerReader,
    catalog: SchemaCatalog,
) -> None:
    payroll = catalog.by_fullname[PAYROLL]
    subject = registered_subject(payroll, module_deployment.prefix)
    evolved = with_data_field(payroll.schema_json, COST_CENTER)
    old_id = registry.lookup(subject, payroll.schema_str)

    evolved_id = registry.register(subject, json.dumps(evolved))

    assert evolved_id != old_id
    assert registry.latest(subject).schema_id == evolved_id
    new_event = Scenario.fresh("2031-Q3").events()["hr.payroll.processed"]
    new_event["data"]["cost_center"] = "CC-0042"
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(evolved), new_event)
    raw_producer.send(
        "hr.events", key_for(new_event).encode(), frame(evolved_id, payload.getvalue())
    )
    raw_producer.flush()
    old_event = Scenario.fresh("2031-Q3").events()["hr.payroll.processed"]
    old_producer = EventProducer(
        module_deployment.infra.bootstrap,
        module_deployment.infra.registry_url,
        topic_prefix=module_deployment.prefix,
    )
    try:
        old_producer.send(old_event)
        old_producer.flush()
    finally:
        old_producer.close()

    entries = ledger.wait_for_events([new_event["event_id"], old_event["event_id"]])

    for event in (new_event, old_event):
        assert_balanced(entries[event["event_id"]], event["data"]["total_gross_pay"])


def test_a_new_required_field_is_refused_at_registration_naming_the_field(
    registry: RegistryClient, catalog: SchemaCatalog
) -> None:
    payroll = catalog.by_fullname[PAYROLL]
    subject = registered_subject(payroll, fresh_prefix())
    registry.set_compatibility(subject, FULL_TRANSITIVE)
    registry.register(subject, payroll.schema_str)
    registry.register(subject, json.dumps(with_data_field(payroll.schema_json, COST_CENTER)))
    latest_before = registry.latest(subject)

    with pytest.raises(RegistryRequestError, match="approver_id"):
        registry.register(
            subject, json.dumps(with_data_field(payroll.schema_json, APPROVER_REQUIRED))
        )

    assert registry.latest(subject) == latest_before


# --- python app.py schemas check -----------------------------------------------------------


def register_catalog(
    registry: RegistryClient,
    catalog: SchemaCatalog,
    prefix: str,
    replacements: Mapping[str, dict[str, Any]],
) -> None:
    """Register the catalog under `prefix` as FULL_TRANSITIVE, with other schemas for some
    records (fullname → schema): what the registry holds when someone else got there first."""
    for entry in catalog.entries:
        subject = registered_subject(entry, prefix)
        registry.set_compatibility(subject, FULL_TRANSITIVE)
        replacement = replacements.get(entry.fullname)
        registry.register(
            subject, entry.schema_str if replacement is None else json.dumps(replacement)
        )


def check_env(deployment: Deployment, prefix: str) -> dict[str, str]:
    return {**deployment.env(), "FIN_TOPIC_PREFIX": prefix}


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def test_schemas_check_passes_once_schemas_register_has_run(
    module_deployment: Deployment,
) -> None:
    env = check_env(module_deployment, fresh_prefix())

    before = run_app(env, "schemas", "check")
    registered = run_app(env, "schemas", "register")
    after = run_app(env, "schemas", "check")

    assert before.returncode == 1
    assert "not registered" in before.stderr
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    assert "all local schemas are registered and compatible" in after.stdout


def test_schemas_check_fails_naming_the_field_of_an_incompatible_registered_version(
    module_deployment: Deployment, registry: RegistryClient, catalog: SchemaCatalog
) -> None:
    prefix = fresh_prefix()
    sales = catalog.by_fullname[SALES]
    register_catalog(
        registry, catalog, prefix, {SALES: with_data_field(sales.schema_json, APPROVER_REQUIRED)}
    )

    result = run_app(check_env(module_deployment, prefix), "schemas", "check")

    assert result.returncode == 1, result.stdout + result.stderr
    subject = registered_subject(sales, prefix)
    problems = [line for line in result.stderr.splitlines() if line.startswith(subject)]
    assert len(problems) == 1, result.stderr
    assert "crm_sales_order_completed.avsc is incompatible" in problems[0]
    assert "approver_id" in problems[0]


def test_schemas_check_fails_on_a_decimal_scale_that_differs_from_the_registered_one(
    module_deployment: Deployment, registry: RegistryClient, catalog: SchemaCatalog
) -> None:
    prefix = fresh_prefix()
    payroll = catalog.by_fullname[PAYROLL]
    scale_3 = with_data_field_type(payroll.schema_json, "total_gross_pay", {"scale": 3})
    register_catalog(registry, catalog, prefix, {PAYROLL: scale_3})

    result = run_app(check_env(module_deployment, prefix), "schemas", "check")

    assert result.returncode == 1, result.stdout + result.stderr
    subject = registered_subject(payroll, prefix)
    expected = (
        f"{subject}: hr_payroll_processed.avsc differs from registered version 1: "
        "field 'data.total_gross_pay' changed from decimal(18,3) to decimal(18,2)"
    )
    assert expected in result.stderr
    other_subjects = [
        line
        for line in result.stderr.splitlines()
        if line.startswith(prefix) and subject not in line
    ]
    assert other_subjects == []
