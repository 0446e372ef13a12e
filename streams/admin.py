"""Create FIN's contract topics (idempotently) with kafka-python's admin client."""

from __future__ import annotations

import logging
import time

from faust.types import TP
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from settings import (
    ALERTS_TOPIC,
    BY_EVENT_ID_TOPIC,
    COMMANDS_TOPIC,
    DELTA_TABLES,
    DLQ_TOPIC,
    LEDGER_TOPIC,
    SOURCE_TOPICS,
    Settings,
    delta_topic,
)
from streams.master_data import MASTER_DATA_TOPIC
from streams.master_data import TOPIC_CONFIG as MASTER_DATA_CONFIG

log = logging.getLogger(__name__)

# The ledger topic is the book of record (and the source of every worker's entries index in
# the batched runtime): its records are kept forever, not for the broker's default 7 days.
# The topics that carry a source record's bytes onward (the by-event-id hop, the dead letters)
# take records up to RECORD_BYTES_MAX, twice the broker's default limit: whatever a source topic
# accepted (~1 MB), with FIN's headers added, can at least be forwarded or dead-lettered whole.
RECORD_BYTES_MAX = 2 * 1024 * 1024
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    LEDGER_TOPIC: {"retention.ms": "-1"},
    BY_EVENT_ID_TOPIC: {"max.message.bytes": str(RECORD_BYTES_MAX)},
    DLQ_TOPIC: {"max.message.bytes": str(RECORD_BYTES_MAX)},
    MASTER_DATA_TOPIC: MASTER_DATA_CONFIG,  # every change kept (one key each), issue 16
}


def contract_topics() -> tuple[str, ...]:
    return (
        *SOURCE_TOPICS,
        COMMANDS_TOPIC,
        LEDGER_TOPIC,
        ALERTS_TOPIC,
        DLQ_TOPIC,
        BY_EVENT_ID_TOPIC,
        *(delta_topic(table) for table in DELTA_TABLES),
        MASTER_DATA_TOPIC,
    )


def admin_client(settings: Settings, *, wait_s: float = 60.0) -> KafkaAdminClient:
    """An admin client, waiting for the broker to come up (it may be starting beside us)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap.split(","), client_id="fin-admin"
            )
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def ensure_topics(settings: Settings, *, replication: int = 1) -> list[str]:
    """Create every contract topic that is missing; return the names created."""
    client = admin_client(settings)
    try:
        existing = set(client.list_topics())
        wanted = [settings.topic(name) for name in contract_topics()]
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                client.create_topics(
                    [
                        NewTopic(
                            name,
                            settings.partitions,
                            replication,
                            topic_configs=TOPIC_CONFIGS.get(
                                name.removeprefix(settings.topic_prefix), {}
                            ),
                        )
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another worker created them at the same moment
            except KafkaError as exc:
                if "TopicAlreadyExists" not in repr(exc):
                    raise
            log.info("created topics: %s", ", ".join(missing))
        return missing
    finally:
        client.close()


def record_byte_limits(settings: Settings) -> dict[str, int]:
    """The largest record each contract topic takes, by contract name, where it was created
    (or later configured) with its own ``max.message.bytes``; topics without one take the
    broker's default. Read at start: a deployment whose topics were created before FIN set
    these (or by hand) must not have FIN hand over records its broker will refuse."""
    client = admin_client(settings)
    try:
        names = {settings.topic(name): name for name in contract_topics()}
        described = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in names]
        )
    finally:
        client.close()
    limits: dict[str, int] = {}
    for topic, configs in described.get("topic", {}).items():
        entry = configs.get("max.message.bytes")
        if topic in names and isinstance(entry, dict) and str(entry.get("value", "")).isdigit():
            limits[names[topic]] = int(entry["value"])
    return limits


def group_committed_offsets(settings: Settings) -> dict[TP, int]:
    """The committed offsets of FIN's consumer group as the broker has them (blocking)."""
    client = admin_client(settings, wait_s=5.0)
    try:
        offsets = client.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    finally:
        client.close()
    return {
        TP(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0
    }
