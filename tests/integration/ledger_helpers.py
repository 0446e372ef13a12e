"""The mixed stream of the ledger end-to-end test, and the ways the test watches and reads FIN.

``build_scenario`` turns the seeded synthetic stream into two phases of Kafka records (main
stream, then compensations and conflicts) together with everything the test expects of them:
the reference ledger, the dead letters with their reasons, the duplicates. The rest reads FIN
from outside, as a client or an operator would: topics, the consumer group, /metrics and REST.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.partitioner import murmur2
from prometheus_client.parser import text_string_to_metric_families

from demo.bad_records import bad_records
from demo.generator import synthetic_events
from schemas.catalog import key_for
from tests.fixtures import ROOT, Deployment, Worker
from tests.unit.ledger.reference import ReferenceLedger, business_date, month_text, quarter_text

COMPENSATION = "fin.compensation.requested"
BUDGET_SET = "fin.budget.set"
CREDIT_LIMIT_SET = "fin.credit_limit.set"
COMMANDS_TOPIC = "fin.commands"
# Event types a compensation can reverse (they have a journal entry), one sample of each at least.
REVERSIBLE_TYPES = (
    "hr.payroll.processed",
    "scm.goods.received",
    "crm.sales_order.completed",
    "mfg.production_order.completed",
    "pm.time.logged",
    "fin.vendor_payment.made",
    "fin.customer_payment.received",
)
# The synthetic stream starts on 2024-01-01 and a few thousand events span hours; it is cut
# into slices moved SLICE_SHIFT_DAYS apart so the books cover nine months and three quarters.
SLICES = 8
SLICE_SHIFT_DAYS = 37
DEPARTMENTS = ("ENG-001", "SALES-001", "OPS-001", "FIN-001", "HR-001")
# Shares of the main stream re-sent: unchanged (same key, same partition) and with another key.
RESENT_SAME_KEY_PER_MILLE = 30
RESENT_OTHER_KEY_PER_MILLE = 20
COMPENSATED_PER_MILLE = 15
COMPENSATIONS_RESENT = 5
COMPENSATIONS_REPEATED = 3
CONFLICTS = 3

# The contract topics FIN's consumer group reads (before the deployment's prefix).
INPUT_TOPICS = (
    "hr.events",
    "scm.events",
    "crm.events",
    "mfg.events",
    "pm.events",
    "fin.commands",
    "fin.ledger.postings",
    "fin.internal.by-event-id",
    *(
        f"fin.internal.deltas.{table}"
        for table in ("budgets", "customers", "vendors", "periods", "projects", "products")
    ),
)


def input_topics() -> tuple[str, ...]:
    """The topics FIN's consumer group reads: the batched runtime does not read the ledger
    topic back (each worker copies it outside the group, ``tables/entries_index.py``)."""
    if os.environ.get("FIN_RUNTIME", "batched") == "batched":
        return tuple(topic for topic in INPUT_TOPICS if topic != "fin.ledger.postings")
    return INPUT_TOPICS


Encode = Callable[[Mapping[str, Any]], bytes]


# --- the stream ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One Kafka record the test publishes (contract topic; the publisher adds the prefix)."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """A record FIN must dead-letter exactly once, and the reason it must name."""

    key: bytes | None
    value: bytes | None
    reason: str
    event_id: str | None = None  # known for the refusals the test itself makes up


@dataclass
class Scenario:
    main: list[Outgoing]
    follow_up: list[Outgoing]
    reference_main: ReferenceLedger
    reference: ReferenceLedger
    dead_letters: list[DeadLetter]
    duplicates: int
    posted: int
    compensations: dict[str, str]  # compensation event id -> target event id
    posting_event_ids: set[str]  # events with a journal entry of their own, not reversals

    @property
    def sent(self) -> int:
        return len(self.main) + len(self.follow_up)


def spread_over_the_year(record: Mapping[str, Any], index: int, count: int) -> dict[str, Any]:
    """The record moved ``SLICE_SHIFT_DAYS`` x its slice later: timestamp and stated dates."""
    shift = timedelta(days=SLICE_SHIFT_DAYS * (index * SLICES // count))
    moved = copy.deepcopy(dict(record))
    moved["timestamp"] = record["timestamp"] + shift
    data = moved["data"]
    for name in ("business_date", "pay_period_start", "pay_period_end"):
        if data.get(name) is not None:
            data[name] = data[name] + shift
    return moved


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2, positive)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def key_on_another_partition(key: bytes, partitions: int) -> bytes:
    """A variant of ``key`` that the default partitioner puts on a different partition."""
    original = partition_of(key, partitions)
    for attempt in range(1, 1000):
        candidate = key + f"#resent-{attempt}".encode()
        if partition_of(candidate, partitions) != original:
            return candidate
    raise AssertionError(f"no key variant of {key!r} leaves partition {original}")


def new_event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def command(
    event_type: str, rng: random.Random, timestamp: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": new_event_id(rng),
        "timestamp": timestamp,
        "source": "fin-ledger-test",
        "data": data,
    }


def later_budgets(rng: random.Random, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Budgets the synthetic stream lacks: SALARY for every later quarter and for some months
    (rows with budget and actuals), TRAINING for a quarter nobody spends on (budget only)."""
    timestamp = events[0]["timestamp"]
    days = [business_date(record) for record in events if record["event_type"] != BUDGET_SET]
    quarters = sorted({quarter_text(day) for day in days} - {"2024-Q1"})
    months = sorted({month_text(day) for day in days})
    periods = [*quarters, *rng.sample(months, 3)]
    budgets = [
        command(
            BUDGET_SET,
            rng,
            timestamp,
            {
                "department_id": department,
                "category": "SALARY",
                "period": period,
                "amount": Decimal(rng.randint(20_000, 60_000) * 1000),
            },
        )
        for period in periods
        for department in DEPARTMENTS
    ]
    budgets.append(
        command(
            BUDGET_SET,
            rng,
            timestamp,
            {
                "department_id": "ENG-001",
                "category": "TRAINING",
                "period": quarters[0],
                "amount": Decimal("15000.00"),
            },
        )
    )
    return budgets


def insert_at_random(
    rng: random.Random, stream: list[Outgoing], items: Iterable[Outgoing], after: int = 0
) -> None:
    for item in items:
        stream.insert(rng.randint(after, len(stream)), item)


def build_scenario(
    *,
    seed: int,
    count: int,
    partitions: int,
    encode: Encode,
    schema_id_for: Callable[[str], int],
) -> Scenario:
    """The main stream (events, duplicates, bad records) and the follow-up (compensations,
    their copies and repeats, conflicts), with what FIN must make of them."""
    # Each source of randomness gets its own seed: two generators seeded alike hand out the same
    # "random" event ids, and FIN would rightly reject the second as an event_id_conflict.
    rng = random.Random(f"ledger end-to-end {seed}")
    generated = [
        spread_over_the_year(record, index, count)
        for index, record in enumerate(synthetic_events(seed, count))
    ]
    # Compensations wait for the follow-up: one racing its target across topics would be
    # rejected as compensation_target_unknown, and the test would depend on the race.
    generated_compensations = [r for r in generated if r["event_type"] == COMPENSATION]
    events = [r for r in generated if r["event_type"] != COMPENSATION]
    # Budgets come first, as a finance team sets them before the quarter's spending.
    events = [*later_budgets(rng, events), *events]

    def outgoing(record: Mapping[str, Any], key: bytes | None = None) -> Outgoing:
        topic = COMMANDS_TOPIC if record["event_type"].startswith("fin.") else None
        topic = topic or f"{record['event_type'].split('.')[0]}.events"
        return Outgoing(topic, key or key_for(record).encode(), encode(record))

    main = [outgoing(record) for record in events]
    copies: list[Outgoing] = []
    for index, record in enumerate(events):
        draw = rng.randrange(1000)
        if draw < RESENT_SAME_KEY_PER_MILLE:
            copies.append(main[index])
        elif draw < RESENT_SAME_KEY_PER_MILLE + RESENT_OTHER_KEY_PER_MILLE:
            other_key = key_on_another_partition(key_for(record).encode(), partitions)
            copies.append(outgoing(record, other_key))
    bad = bad_records(seed + 1, schema_id_for)
    insert_at_random(rng, main, copies, after=len(main) // 10)
    insert_at_random(rng, main, (Outgoing(b.topic, b.key, b.value) for b in bad))
    dead_letters = [DeadLetter(b.key, b.value, b.expected_reason) for b in bad]

    # --- follow-up: sent once the main stream is fully posted ---
    last_timestamp = max(record["timestamp"] for record in events)
    compensations: dict[str, str] = {
        record["event_id"]: record["data"]["target_event_id"] for record in generated_compensations
    }
    compensation_records = list(generated_compensations)
    targeted = set(compensations.values())
    for event_type in REVERSIBLE_TYPES:
        candidates = [
            r for r in events if r["event_type"] == event_type and r["event_id"] not in targeted
        ]
        chosen = rng.sample(candidates, max(1, len(candidates) * COMPENSATED_PER_MILLE // 1000))
        for target in chosen:
            compensation = command(
                COMPENSATION,
                rng,
                last_timestamp,
                {"target_event_id": target["event_id"], "reason": "ledger end-to-end test"},
            )
            compensation_records.append(compensation)
            compensations[compensation["event_id"]] = target["event_id"]
            targeted.add(target["event_id"])
    follow_up = [outgoing(record) for record in compensation_records]
    # Same key as the first copy, so each lands behind it on the same partition.
    follow_up.extend(follow_up[index] for index in range(COMPENSATIONS_RESENT))
    refused: list[dict[str, Any]] = [
        command(
            COMPENSATION,
            rng,
            last_timestamp,
            {"target_event_id": target_id, "reason": "compensated twice"},
        )
        for target_id in list(compensations.values())[:COMPENSATIONS_REPEATED]
    ]
    for set_type in (BUDGET_SET, CREDIT_LIMIT_SET):
        target = next(r for r in events if r["event_type"] == set_type)
        refused.append(
            command(
                COMPENSATION,
                rng,
                last_timestamp,
                {"target_event_id": target["event_id"], "reason": "sets are not reversible"},
            )
        )
    untouched = [r for r in events if r["event_id"] not in targeted]
    conflicting = [
        {**record, "source": record["source"] + " impostor"}
        for record in rng.sample(untouched, CONFLICTS)
    ]
    for record, reason in [
        *((r, "compensation_target_not_reversible") for r in refused),
        *((r, "event_id_conflict") for r in conflicting),
    ]:
        follow_up.append(outgoing(record))
        dead_letters.append(
            DeadLetter(follow_up[-1].key, follow_up[-1].value, reason, record["event_id"])
        )

    compensated = set(compensations.values())
    posting_event_ids = {
        r["event_id"] for r in events if r["event_type"] not in (BUDGET_SET, CREDIT_LIMIT_SET)
    }
    return Scenario(
        main=main,
        follow_up=follow_up,
        reference_main=ReferenceLedger.of(events),
        reference=ReferenceLedger.of(events, compensated),
        dead_letters=dead_letters,
        duplicates=len(copies) + COMPENSATIONS_RESENT,
        posted=len(events) + len(compensations),
        compensations=compensations,
        posting_event_ids=posting_event_ids,
    )


def register_schemas(deployment: Deployment) -> None:
    """``app.py schemas register`` for the deployment, as an operator runs it before workers.

    Workers starting at once on fresh subjects race to set the compatibility level: Apicurio
    answers all but one ``PUT /config/{subject}`` with HTTP 409 ("A rule named 'COMPATIBILITY'
    already exists"), which the registry client treats as permanent, and those workers exit.
    With the subjects registered first, the workers' own registration only confirms them.
    """
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "schemas", "register"],
        env={**os.environ, **deployment.env()},
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Publisher:
    """Sends prepared records to a deployment's prefixed topics (acks=all, idempotent)."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._producer = KafkaProducer(
            bootstrap_servers=deployment.infra.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )

    def publish(self, records: Iterable[Outgoing]) -> int:
        futures = [
            self._producer.send(self._deployment.topic(r.topic), key=r.key, value=r.value)
            for r in records
        ]
        self._producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=10)  # raises if the broker refused the record
        return len(futures)

    def close(self) -> None:
        self._producer.close(timeout=10)


# --- watching FIN --------------------------------------------------------------------------


def metric_total(worker: Worker, sample_name: str) -> float:
    """Sum of every sample of ``sample_name`` (all label sets) on one worker's /metrics."""
    response = worker.get("/metrics")
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == sample_name
    )


def metric_sum(workers: Sequence[Worker], sample_name: str) -> int:
    return int(sum(metric_total(worker, sample_name) for worker in workers))


def metric_by_label(workers: Sequence[Worker], sample_name: str, label: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for worker in workers:
        response = worker.get("/metrics")
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == sample_name and sample.value:
                    counts[sample.labels[label]] += int(sample.value)
    return counts


class Cluster:
    """Kafka as an operator sees it: end offsets, the consumer group's commits, its members."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.group = deployment.env()["FIN_APP_ID"]
        self._admin = KafkaAdminClient(bootstrap_servers=deployment.infra.bootstrap)
        self._consumer = KafkaConsumer(
            bootstrap_servers=deployment.infra.bootstrap, enable_auto_commit=False
        )

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()

    def partitions(self, contract_topic: str) -> list[TopicPartition]:
        return topic_partitions(self._consumer, self.deployment.topic(contract_topic))

    def end_offsets(self, contract_topics: Iterable[str]) -> dict[TopicPartition, int]:
        partitions = [tp for topic in contract_topics for tp in self.partitions(topic)]
        return dict(self._consumer.end_offsets(partitions))

    def record_count(self, contract_topic: str) -> int:
        return sum(self.end_offsets([contract_topic]).values())

    def committed(self) -> dict[TopicPartition, int]:
        offsets = self._admin.list_group_offsets({self.group: None}).get(self.group, {})
        return {tp: meta.offset for tp, meta in offsets.items()}

    def group_members(self) -> tuple[str, int]:
        """(state, number of members) of FIN's consumer group."""
        # faust's assignor writes its own member metadata, which kafka-python cannot decode
        # and warns about at length; state and member count are all this needs.
        groups_log = logging.getLogger("kafka.admin._groups")
        level = groups_log.level
        groups_log.setLevel(logging.ERROR)
        try:
            description = self._admin.describe_groups([self.group])
        finally:
            groups_log.setLevel(level)
        group = description[self.group] if isinstance(description, Mapping) else description[0]
        return str(group.get("group_state", group.get("state"))), len(group.get("members", []))


def wait_for(
    condition: Callable[[], str | None], *, timeout_s: float, what: str, interval_s: float = 0.5
) -> None:
    """Poll ``condition`` (None when met, else a description of what is missing) until met."""
    deadline = time.monotonic() + timeout_s
    missing = condition()
    while missing is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached after {timeout_s:.0f}s: {missing}")
        time.sleep(interval_s)
        missing = condition()


def wait_for_stable_group(cluster: Cluster, workers: int, timeout_s: float) -> None:
    def stable() -> str | None:
        state, members = cluster.group_members()
        if state.lower() == "stable" and members == workers:
            return None
        return f"group {cluster.group} is {state} with {members} member(s)"

    wait_for(stable, timeout_s=timeout_s, what="both workers in one stable group")


def wait_until_settled(
    cluster: Cluster,
    workers: Sequence[Worker],
    *,
    consumed: int,
    entries: int,
    timeout_s: float,
) -> None:
    """Until every record sent was consumed, the ledger holds ``entries`` entries, the group
    has committed every input topic to its end, and nothing moved since the previous poll."""
    previous: list[Any] = []

    def settled() -> str | None:
        seen = metric_sum(workers, "fin_events_consumed_total")
        if seen < consumed:
            return f"{seen} of {consumed} records consumed"
        posted = cluster.record_count("fin.ledger.postings")
        if posted < entries:
            return f"{posted} of {entries} journal entries on the ledger topic"
        ends = cluster.end_offsets(input_topics())
        committed = cluster.committed()
        behind = {
            f"{tp.topic}[{tp.partition}]": end - committed.get(tp, 0)
            for tp, end in ends.items()
            if committed.get(tp, 0) < end
        }
        if behind:
            previous.clear()
            return f"consumer group behind: {behind}"
        snapshot = [
            sorted((tp.topic, tp.partition, end) for tp, end in ends.items()),
            cluster.record_count("fin.dlq"),
            metric_sum(workers, "fin_table_deltas_applied_total"),
            metric_sum(workers, "fin_table_deltas_skipped_total"),
        ]
        if snapshot != previous:
            previous[:] = snapshot
            return "still moving"
        return None

    wait_for(settled, timeout_s=timeout_s, what="the stream fully processed", interval_s=1.0)


# --- reading FIN ---------------------------------------------------------------------------


def read_topic(
    cluster: Cluster, contract_topic: str, timeout_s: float = 60
) -> list[ConsumerRecord]:
    """Every record of a topic, from the beginning up to the end offsets of now."""
    return read_named_topic(
        cluster.deployment.infra.bootstrap, cluster.deployment.topic(contract_topic), timeout_s
    )


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (by its full name), in order."""
    numbers = consumer.partitions_for_topic(topic)
    assert numbers, f"topic {topic} has no partitions"
    return [TopicPartition(topic, number) for number in sorted(numbers)]


def read_named_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list[ConsumerRecord]:
    """``read_topic`` by the topic's full name (a changelog's carries the app id, not the
    deployment's prefix)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = topic_partitions(consumer, topic)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"reading {topic} took over {timeout_s}s"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@dataclass(frozen=True)
class Answer:
    """One worker's answer to one REST request."""

    status: int
    body: Any

    def field(self, name: str) -> Any:
        assert isinstance(self.body, Mapping), self.body
        return self.body[name]

    def money(self, name: str) -> Decimal | None:
        value = self.field(name)
        return None if value is None else Decimal(value)


@dataclass(frozen=True)
class Request:
    path: str
    params: Mapping[str, str] = field(default_factory=dict)


def ask_every_worker(
    workers: Sequence[Worker], requests_by_key: Mapping[Any, Request], threads: int = 8
) -> dict[Any, tuple[Answer, ...]]:
    """Each request asked of every worker; per key, the answers in worker order."""

    def ask(worker: Worker, request: Request) -> Answer:
        response = worker.get(request.path, **request.params)
        body = response.json() if response.content else None
        return Answer(response.status_code, body)

    keys = list(requests_by_key)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {
            (key, index): pool.submit(ask, worker, requests_by_key[key])
            for key in keys
            for index, worker in enumerate(workers)
        }
        return {
            key: tuple(futures[(key, index)].result() for index in range(len(workers)))
            for key in keys
        }


def without_clock(body: Any) -> Any:
    """A REST body without the one field that differs between two reads: the time it was read."""
    if not isinstance(body, Mapping):
        return body
    result = dict(body)
    freshness = result.get("freshness")
    if isinstance(freshness, Mapping):
        result["freshness"] = {k: v for k, v in freshness.items() if k != "as_of"}
    return result


def as_decimal_pairs(lines: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Decimal, Decimal]]:
    return {line["account"]: (Decimal(line["debit"]), Decimal(line["credit"])) for line in lines}


def months_in(periods: Iterable[str]) -> list[str]:
    return sorted(period for period in periods if "Q" not in period)


# --- reading FIN after faults (tests/faults) ------------------------------------------------
# Process metrics start from zero when a worker restarts, so a run with crashes cannot wait on
# them. These read what survives a crash: the group's commits and the durable outcome counts of
# /api/v1/fin/ledger/integrity; and they read the books as a client does, key by key over REST.

API = "/api/v1/fin"
ZERO = Decimal("0.00")
# Keys no generated event books (checked against the reference before use).
NEVER_BOOKED: Mapping[tuple[str, str], Request] = {
    ("budget", "ENG-001|SALARY|2024-12"): Request(
        f"{API}/budgets/department/ENG-001", {"category": "SALARY", "period": "2024-12"}
    ),
    ("budget", "HR-001|TRAVEL|2024-Q2"): Request(
        f"{API}/budgets/department/HR-001", {"category": "TRAVEL", "period": "2024-Q2"}
    ),
    ("customer", "CUS-NEVER"): Request(f"{API}/ar/customers/CUS-NEVER/credit-status"),
    ("vendor", "VEN-NEVER"): Request(f"{API}/ap/vendors/VEN-NEVER/payment-status"),
    ("period", "2023-12"): Request(f"{API}/ledger/trial-balance", {"period": "2023-12"}),
}


def integrity_report(worker: Worker) -> dict[str, Any]:
    """The cluster-wide integrity report as one worker gathers it (raises unless HTTP 200)."""
    response = worker.get(f"{API}/ledger/integrity")
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report


# A gap this small between the group's commit and the end of a partition may be transaction
# markers alone (exactly_once writes one per transaction); it is read to count real records.
MARKER_GAP_MAX = 8


def consumer_lag(cluster: Cluster) -> int:
    """Records on FIN's input topics that the group has not committed yet.

    Under exactly_once a partition FIN writes ends with a transaction marker: it takes an offset
    but is not a record, and a consumer never commits past it. Small gaps are therefore read
    (read_committed) and only the records in them counted.
    """
    ends = cluster.end_offsets(input_topics())
    committed = cluster.committed()
    behind = {
        tp: (committed.get(tp, 0), end) for tp, end in ends.items() if committed.get(tp, 0) < end
    }
    lag = sum(end - start for start, end in behind.values() if end - start > MARKER_GAP_MAX)
    small = {tp: gap for tp, gap in behind.items() if gap[1] - gap[0] <= MARKER_GAP_MAX}
    if small:
        lag += records_between(cluster, small)
    return lag


def partitions_behind(cluster: Cluster) -> str:
    """Which input partitions the group has not committed to their end (for failure reports)."""
    ends = cluster.end_offsets(input_topics())
    committed = cluster.committed()
    behind = [
        f"{tp.topic}[{tp.partition}] {committed.get(tp, 0)}/{end}"
        for tp, end in sorted(ends.items())
        if committed.get(tp, 0) < end
    ]
    return ", ".join(behind) or "none"


def records_between(cluster: Cluster, gaps: Mapping[TopicPartition, tuple[int, int]]) -> int:
    """Committed records (no transaction markers, nothing aborted) in [start, end) per partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.deployment.infra.bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        consumer.assign(list(gaps))
        for tp, (start, _) in gaps.items():
            consumer.seek(tp, start)
        count = 0
        deadline = time.monotonic() + 10
        while any(consumer.position(tp) < end for tp, (_, end) in gaps.items()):
            assert time.monotonic() < deadline, f"reading {sorted(map(str, gaps))} took over 10s"
            for tp, batch in consumer.poll(timeout_ms=200).items():
                count += sum(1 for record in batch if record.offset < gaps[tp][1])
        return count
    finally:
        consumer.close()


def wait_until_caught_up(
    cluster: Cluster,
    workers: Callable[[], Sequence[Worker]],
    *,
    events_in: int,
    entries: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Until the durable count of records in reaches ``events_in``, the ledger topic holds at
    least ``entries`` records, the group has committed every input topic to its end, and none
    of that moved since the previous poll. ``workers`` names the workers running now (they may
    change while waiting). Returns the last integrity report."""
    previous: list[Any] = []
    last: dict[str, Any] = {}

    def settled() -> str | None:
        running = workers()
        if not running:
            return "no worker running"
        try:
            report = integrity_report(running[0])
            counts = report["counts"]
            if counts["events_in"] < events_in:
                return f"{counts['events_in']} of {events_in} records counted in"
            posted = cluster.record_count("fin.ledger.postings")
            if posted < entries:
                return f"{posted} of {entries} journal entries on the ledger topic"
            lag = consumer_lag(cluster)
            if lag:
                previous.clear()
                return f"consumer group {lag} record(s) behind: {partitions_behind(cluster)}"
            snapshot = [
                sorted(
                    (tp.topic, tp.partition, end)
                    for tp, end in cluster.end_offsets(input_topics()).items()
                ),
                cluster.record_count("fin.dlq"),
                counts,
                len(running),
            ]
        except (requests.RequestException, KafkaError, OSError) as exc:
            # a worker restarting or rebalancing, a broker coming back
            previous.clear()
            return f"not answering yet: {type(exc).__name__}: {exc}"[:300]
        last.clear()
        last.update(report)
        if snapshot != previous:
            previous[:] = snapshot
            return "still moving"
        return None

    wait_for(settled, timeout_s=timeout_s, what="the stream fully processed", interval_s=1.0)
    return dict(last)


def book_requests(reference: ReferenceLedger) -> dict[tuple[str, Any], Request]:
    """One REST read per row the reference books (budgets, customers, vendors, periods), and
    reads of keys nothing booked."""
    wanted: dict[tuple[str, Any], Request] = {}
    for key in set(reference.budgets) | set(reference.budget_actuals):
        department, category, period = key.split("|")
        wanted[("budget", key)] = Request(
            f"{API}/budgets/department/{department}", {"category": category, "period": period}
        )
    for customer in set(reference.exposures) | set(reference.credit_limits):
        wanted[("customer", customer)] = Request(f"{API}/ar/customers/{customer}/credit-status")
    for vendor in set(reference.vendor_open) | set(reference.vendor_paid):
        wanted[("vendor", vendor)] = Request(f"{API}/ap/vendors/{vendor}/payment-status")
    for period in reference.periods():
        wanted[("period", period)] = Request(f"{API}/ledger/trial-balance", {"period": period})
    for (kind, key), request in NEVER_BOOKED.items():
        if (kind, key) not in wanted:
            wanted[("never", (kind, key))] = request
    return wanted


def without_freshness(body: Any) -> Any:
    """A REST body without its freshness block (who answered, and when)."""
    if not isinstance(body, Mapping):
        return body
    return {key: value for key, value in body.items() if key != "freshness"}


def ask_books(
    workers: Sequence[Worker], reference: ReferenceLedger
) -> dict[tuple[str, Any], Answer]:
    """Every book row of ``reference`` read from every worker; per key the one answer they all
    gave (asserted: each worker routes the key to its owner, so they must agree)."""
    answers = ask_every_worker(workers, book_requests(reference))
    agreed: dict[tuple[str, Any], Answer] = {}
    for key, given in answers.items():
        first = given[0]
        assert all(
            answer.status == first.status
            and without_freshness(answer.body) == without_freshness(first.body)
            for answer in given
        ), (key, given)
        agreed[key] = Answer(first.status, without_freshness(first.body))
    return agreed


def books_found(answers: Mapping[tuple[str, Any], Answer]) -> dict[tuple[str, Any], Any]:
    """The figures of each REST answer that the reference ledger predicts."""
    found: dict[tuple[str, Any], Any] = {}
    for (kind, key), answer in answers.items():
        if kind == "never" or answer.status != 200:
            found[(kind, key)] = answer.status
        elif kind == "budget":
            found[(kind, key)] = (answer.money("budget"), answer.money("actual"))
        elif kind == "customer":
            found[(kind, key)] = (answer.money("limit"), answer.money("exposure"))
        elif kind == "vendor":
            found[(kind, key)] = (answer.money("open"), answer.money("paid"))
        elif kind == "period":
            found[(kind, key)] = (
                as_decimal_pairs(answer.field("lines")),
                answer.field("entry_count"),
                answer.field("balanced"),
                (answer.money("total_debit") or ZERO) - (answer.money("total_credit") or ZERO),
            )
    return found


def books_expected(reference: ReferenceLedger) -> dict[tuple[str, Any], Any]:
    """What ``books_found`` must return for the reads of ``book_requests(reference)``."""
    expected: dict[tuple[str, Any], Any] = {}
    for kind, key in book_requests(reference):
        if kind == "never":
            expected[(kind, key)] = 404
        elif kind == "budget":
            expected[(kind, key)] = (
                reference.budgets.get(key),
                reference.budget_actuals.get(key, ZERO),
            )
        elif kind == "customer":
            expected[(kind, key)] = (
                reference.credit_limits.get(key),
                reference.exposures.get(key, ZERO),
            )
        elif kind == "vendor":
            expected[(kind, key)] = (
                reference.vendor_open.get(key, ZERO),
                reference.vendor_paid.get(key, ZERO),
            )
        elif kind == "period":
            expected[(kind, key)] = (
                reference.trial_balance(key),
                reference.period_entries[key],
                True,
                ZERO,
            )
    return expected


def source_position(record: ConsumerRecord) -> tuple[str, str, str]:
    """The source position a dead letter names (topic, partition, offset): its identity."""
    headers = {
        key: value.decode() if isinstance(value, bytes) else str(value)
        for key, value in record.headers or ()
    }
    return (
        headers.get("fin.source.topic", "?"),
        headers.get("fin.source.partition", "?"),
        headers.get("fin.source.offset", "?"),
    )
