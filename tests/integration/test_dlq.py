"""`app.py dlq list|show|replay` against a real broker, registry and worker (issue 6, item 2).

One worker serves the module. Each test sends its own bad records through it, finds their dead
letters by source position, and runs the commands as an operator would: as processes, checking
what they print and what they publish.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from demo.bad_records import BadRecord, bad_records
from schemas.catalog import SchemaCatalog, key_for
from schemas.codec import Encoder
from schemas.registry import RegistryClient, SchemaIds
from streams.deadletter import HEADER_REASON, HEADER_REPLAY_ATTEMPT, HEADER_REPLAY_OF, header_map
from tests.fixtures import Deployment, Worker
from tests.integration.helpers import (
    LedgerReader,
    Position,
    RawProducer,
    Scenario,
    TopicReader,
    dead_letter_position,
    run_app,
)

pytestmark = pytest.mark.integration

REPLAYED_LINE = re.compile(
    r"^replayed (?P<dlq>\d+:\d+)  \S+  event=\S+ to "
    r"(?P<topic>[\w.]+)\[(?P<partition>\d+)\]@(?P<offset>\d+) as attempt (?P<attempt>\d+)$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


@pytest.fixture
def schema_ids(
    module_deployment: Deployment, catalog: SchemaCatalog, worker: Worker
) -> Iterator[SchemaIds]:
    # The worker registered the schemas when it started.
    client = RegistryClient(module_deployment.infra.registry_url)
    yield SchemaIds(catalog, client, module_deployment.prefix, auto_register=False)
    client.close()


@pytest.fixture
def producer(module_deployment: Deployment) -> Iterator[RawProducer]:
    raw = RawProducer(module_deployment)
    yield raw
    raw.close()


def dlq(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_app(deployment.env(), "dlq", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def first_of(records: list[BadRecord], reason: str, key: bytes | None = None) -> BadRecord:
    return next(
        record
        for record in records
        if record.expected_reason == reason and (key is None or record.key == key)
    )


def wait_for_dead_letters(deployment: Deployment, sources: set[Position]) -> dict[Position, Any]:
    """The dead letter of each source position, once all are on the dead-letter topic."""
    reader = TopicReader(deployment, "fin.dlq")
    try:
        reader.wait_for(
            lambda records: sources <= {dead_letter_position(record) for record in records},
            f"dead letters of {len(sources)} records",
        )
    finally:
        reader.close()
    return {
        dead_letter_position(record): record
        for record in reader.records
        if dead_letter_position(record) in sources
    }


def dead_letter(
    deployment: Deployment, producer: RawProducer, records: list[BadRecord]
) -> list[tuple[Position, str]]:
    """Send `records` through the worker; each one's source position and dead-letter position."""
    for record in records:
        producer.send(record.topic, record.key, record.value)
    sources = [sent.position for sent in producer.flush()]
    letters = wait_for_dead_letters(deployment, set(sources))
    return [(source, f"{letters[source].partition}:{letters[source].offset}") for source in sources]


def read_all(deployment: Deployment, topic: str) -> list[Any]:
    reader = TopicReader(deployment, topic)
    try:
        return reader.read_to_end()
    finally:
        reader.close()


def test_list_prints_a_line_per_dead_letter_and_counts_that_match_the_topic(
    module_deployment: Deployment,
    producer: RawProducer,
    schema_ids: SchemaIds,
    catalog: SchemaCatalog,
) -> None:
    bad = bad_records(21, schema_ids, catalog)
    chosen = [
        first_of(bad, "wire_format_invalid", key=b"SO-SHORT"),
        first_of(bad, "amount_must_be_positive"),
        first_of(bad, "period_invalid"),
    ]
    placed = dead_letter(module_deployment, producer, chosen)

    listing = dlq(module_deployment, "list").stdout.splitlines()
    for record, ((topic, partition, offset), at) in zip(chosen, placed, strict=True):
        (line,) = [line for line in listing if line.startswith(at + "  ")]
        assert f"  {record.expected_reason}  {topic}[{partition}]@{offset}  " in line
    # The counts, checked against an independent read of the topic.
    on_topic = read_all(module_deployment, "fin.dlq")
    expected = Counter(header_map(record.headers)[HEADER_REASON] for record in on_topic)
    assert f"{len(on_topic)} of {len(on_topic)} dead letters match" in listing
    counts = {line.split()[0]: int(line.split()[1]) for line in listing if line.startswith("  ")}
    assert counts == dict(expected)

    document = json.loads(
        dlq(module_deployment, "list", "--reason", "wire_format_invalid", "--json").stdout
    )
    assert document["matched"] == expected["wire_format_invalid"]
    (short,) = [item for item in document["dead_letters"] if item["position"] == placed[0][1]]
    assert (short["key"], short["value_length"], short["reason"]) == (
        "SO-SHORT",
        3,
        "wire_format_invalid",
    )


def test_show_prints_every_header_and_the_payload_as_json_or_the_bytes_it_cannot_decode(
    module_deployment: Deployment,
    producer: RawProducer,
    schema_ids: SchemaIds,
    catalog: SchemaCatalog,
) -> None:
    bad = bad_records(22, schema_ids, catalog)
    negative = first_of(bad, "amount_must_be_positive")
    short = first_of(bad, "wire_format_invalid", key=b"SO-SHORT")
    (_, negative_at), (_, short_at) = dead_letter(module_deployment, producer, [negative, short])

    shown = dlq(module_deployment, "show", negative_at).stdout
    assert "  fin.reason: amount_must_be_positive\n" in shown
    assert "  fin.source.topic: crm.events\n" in shown
    assert negative.key is not None
    assert f"key: {negative.key.decode()}\n" in shown
    assert "payload: erp.crm.SalesOrderCompleted, schema id" in shown
    body = json.loads(shown[shown.index("{") :])
    assert body["data"]["total_amount"] == "-5.00"

    dumped = dlq(module_deployment, "show", short_at).stdout
    assert "payload: 3 bytes, not decoded: wire_format_invalid" in dumped
    assert re.search(r"^  00000000  00 00 00 +\|\.\.\.\|$", dumped, re.MULTILINE)


def test_a_replayed_compensation_posts_its_reversal_and_a_second_replay_does_nothing(
    module_deployment: Deployment,
    producer: RawProducer,
    schema_ids: SchemaIds,
    catalog: SchemaCatalog,
) -> None:
    orphan = first_of(bad_records(23, schema_ids, catalog), "compensation_target_unknown")
    ((_, orphan_at),) = dead_letter(module_deployment, producer, [orphan])
    shown = dlq(module_deployment, "show", orphan_at).stdout
    compensation = json.loads(shown[shown.index("{") :])
    ledger = LedgerReader(module_deployment)
    try:
        # The target arrives late; once it is posted, a replay of the compensation reverses it.
        target = Scenario.fresh("2024-Q2").events()["pm.time.logged"]
        target["event_id"] = compensation["data"]["target_event_id"]
        producer.send(
            "pm.events", key_for(target).encode(), Encoder(catalog, schema_ids).encode(target)
        )
        producer.flush()
        target_entry = ledger.wait_for_events([target["event_id"]])[target["event_id"]]
        selection = ("--reason", "compensation_target_unknown")
        dry = dlq(module_deployment, "replay", *selection, "--dry-run").stdout
        assert f"would replay {orphan_at}  compensation_target_unknown" in dry

        replayed = dlq(module_deployment, "replay", *selection).stdout
        (line,) = REPLAYED_LINE.finditer(replayed)
        assert (line["dlq"], line["topic"], line["attempt"]) == (orphan_at, "fin.commands", "2")
        reversal = ledger.wait_for_events([compensation["event_id"]])[compensation["event_id"]]
        assert reversal["reverses_entry_id"] == target_entry["entry_id"]

        again = dlq(module_deployment, "replay", *selection).stdout
        assert "replayed 0, already replayed 1, attempts exhausted 0" in again
        assert f"skipped {orphan_at}  compensation_target_unknown" in again
    finally:
        ledger.close()
    replays = [
        record
        for record in read_all(module_deployment, "fin.commands")
        if HEADER_REPLAY_OF in header_map(record.headers)
    ]
    assert [(record.key, record.value) for record in replays] == [(orphan.key, orphan.value)]
    assert header_map(replays[0].headers)[HEADER_REPLAY_ATTEMPT] == "2"
    assert header_map(replays[0].headers)[HEADER_REPLAY_OF] == orphan_at


def test_a_record_that_keeps_failing_is_replayed_up_to_its_attempt_cap_and_no_further(
    module_deployment: Deployment,
    producer: RawProducer,
    schema_ids: SchemaIds,
    catalog: SchemaCatalog,
) -> None:
    short = first_of(bad_records(24, schema_ids, catalog), "wire_format_invalid", key=b"SO-SHORT")
    ((_, short_at),) = dead_letter(module_deployment, producer, [short])
    cap = ("--max-attempts", "2")

    first = dlq(module_deployment, "replay", "--id", short_at, *cap).stdout
    (line,) = REPLAYED_LINE.finditer(first)
    landed = (line["topic"], int(line["partition"]), int(line["offset"]))
    refused_again = wait_for_dead_letters(module_deployment, {landed})[landed]
    assert header_map(refused_again.headers)[HEADER_REASON] == "wire_format_invalid"
    assert header_map(refused_again.headers)["fin.attempts"] == "2"
    refused_at = f"{refused_again.partition}:{refused_again.offset}"

    capped = dlq(module_deployment, "replay", "--id", short_at, "--id", refused_at, *cap).stdout
    assert "replayed 0, already replayed 1, attempts exhausted 1" in capped
    assert (
        f"skipped {refused_at}  wire_format_invalid  event=-: attempts_exhausted: "
        "2 attempts made, the cap is 2"
    ) in capped
    replays_of_short = [
        record
        for record in read_all(module_deployment, "crm.events")
        if header_map(record.headers).get(HEADER_REPLAY_OF) in (short_at, refused_at)
    ]
    assert len(replays_of_short) == 1
