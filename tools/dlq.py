"""Dead-letter tooling behind ``python app.py dlq list|show|replay``: the commands on real Kafka.

Synchronous (kafka-python): an operator runs it by hand. What a dead letter is and how the topic
is read and listed: ``tools.dlq_records``; how a replay is planned and sent:
``tools.dlq_replay``.
"""

from __future__ import annotations

from typing import Any, TextIO

from settings import DLQ_TOPIC, Settings
from streams.deadletter import DlqError, DlqPosition
from tools.dlq_records import (
    Selection,
    describe,
    list_dead_letters,
    print_listing,
    read_dead_letter,
    read_dead_letters,
)
from tools.dlq_replay import (
    REPLAYED_TOPIC,
    SEND_TIMEOUT_S,
    SendFuture,
    print_replay_report,
    replay,
)

# --- the commands (real Kafka) --------------------------------------------------------------


def _consumer(settings: Settings) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="fin-dlq",
        group_id=None,
        enable_auto_commit=False,
        bootstrap_timeout_ms=15_000,
    )


def _producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="fin-dlq-replay",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


def _kafka_failure(settings: Settings, exc: Exception) -> DlqError:
    return DlqError(f"Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}")


def list_command(
    settings: Settings, selection: Selection, out: TextIO, *, limit: int, as_json: bool
) -> int:
    from kafka.errors import KafkaError

    try:
        consumer = _consumer(settings)
        try:
            listing = list_dead_letters(
                read_dead_letters(consumer, settings), selection, limit=limit
            )
        finally:
            consumer.close()
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    print_listing(listing, out, as_json=as_json)
    return 0


def show_command(settings: Settings, position: DlqPosition, out: TextIO) -> int:
    from kafka.errors import KafkaError

    from schemas.catalog import SchemaCatalog
    from schemas.codec import Decoder
    from schemas.registry import RegistryClient

    try:
        consumer = _consumer(settings)
        try:
            letter = read_dead_letter(consumer, settings, position)
        finally:
            consumer.close()
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    if letter is None:
        raise DlqError(f"no dead letter at {position} in {settings.topic(DLQ_TOPIC)}")
    registry = RegistryClient(settings.schema_registry_url, timeout_s=settings.registry_timeout_s)
    try:
        decoder = Decoder(SchemaCatalog.load(settings.schema_dir), registry.get_schema)
        out.write(describe(letter, decoder.decode))
    finally:
        registry.close()
    return 0


def ensure_replayed_topic(settings: Settings) -> None:
    """Create the compacted marker topic if it is missing (idempotent)."""
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from streams.admin import admin_client

    topic = settings.topic(REPLAYED_TOPIC)
    client = admin_client(settings, wait_s=15.0)
    try:
        if topic in set(client.list_topics()):
            return
        try:
            client.create_topics(
                {
                    topic: {
                        "num_partitions": 1,
                        "replication_factor": -1,
                        "configs": {"cleanup.policy": "compact"},
                    }
                },
                wait_for_metadata=True,
            )
        except TopicAlreadyExistsError:
            pass  # another replay created it at the same moment
        except KafkaError as exc:
            if "TopicAlreadyExists" not in repr(exc):
                raise
    finally:
        client.close()


def replay_command(
    settings: Settings,
    selection: Selection,
    out: TextIO,
    *,
    max_attempts: int,
    dry_run: bool,
) -> int:
    from kafka.errors import KafkaError

    if max_attempts < 1:
        raise DlqError(f"--max-attempts must be at least 1, got {max_attempts}")
    try:
        if not dry_run:
            ensure_replayed_topic(settings)
        consumer = _consumer(settings)
        producer = _producer(settings) if not dry_run else None
        try:
            report = replay(
                consumer,
                producer if producer is not None else _NoProducer(),
                settings,
                selection,
                max_attempts=max_attempts,
                dry_run=dry_run,
            )
        finally:
            consumer.close()
            if producer is not None:
                producer.close(timeout=SEND_TIMEOUT_S)
    except KafkaError as exc:
        raise _kafka_failure(settings, exc) from exc
    print_replay_report(report, selection, out)
    found = {plan.letter.position for plan in report.plans}
    return 1 if report.failed or not selection.positions <= found else 0


class _NoProducer:
    """The producer of a dry run: asked to send anything, it is a bug."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> SendFuture:
        raise AssertionError(f"a dry run tried to send to {topic}")

    def flush(self, timeout: float | None = None) -> None:
        raise AssertionError("a dry run tried to flush a producer")
