"""Publishing events: JSON lines files and demo traffic, as Avro in the Confluent wire format.

`EventProducer` owns a kafka-python producer (acks=all, idempotent) and an `Encoder` whose schema
ids come from the registry (lookup, else register). `produce_file` and `produce_demo` only need
something with `catalog`, `send` and `flush`, so tests drive them with a fake.
"""

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaProducer

from demo.generator import specification_samples, synthetic_events
from errors import FinError
from schemas.catalog import SCHEMA_DIRECTORY, SchemaCatalog, contract_for_record, key_for
from schemas.codec import Encoder, RecordInvalidError
from schemas.json_events import JsonEventError, parse_json_event, record_from_json
from schemas.registry import RegistryClient, SchemaIds

log = logging.getLogger(__name__)

PROGRESS_EVERY_DEFAULT = 1000
LINGER_MS = 5
FLUSH_TIMEOUT_S = 60.0

Progress = Callable[[str], None]


class RecordSink(Protocol):
    """What the produce functions need: the schemas, and a place to send records."""

    @property
    def catalog(self) -> SchemaCatalog: ...

    def send(self, record: Mapping[str, Any]) -> Any: ...

    def flush(self) -> None: ...


class ProducerSettings(Protocol):
    """The part of `settings.Settings` a producer reads."""

    @property
    def kafka_bootstrap(self) -> str: ...

    @property
    def schema_registry_url(self) -> str: ...

    @property
    def topic_prefix(self) -> str: ...

    @property
    def registry_timeout_s(self) -> float: ...

    @property
    def schema_dir(self) -> Path: ...


class DeliveryError(FinError):
    """Kafka did not accept some records (after the producer's own retries)."""


class EventProducer:
    """Sends record dicts to their contract topic, keyed by their business entity id."""

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        *,
        topic_prefix: str = "",
        schema_dir: Path = SCHEMA_DIRECTORY,
        registry_timeout_s: float = 5.0,
        linger_ms: int = LINGER_MS,
    ) -> None:
        self._catalog = SchemaCatalog.load(schema_dir)
        self._registry = RegistryClient(registry_url, timeout_s=registry_timeout_s)
        self._encoder = Encoder(
            self._catalog, SchemaIds(self._catalog, self._registry, topic_prefix=topic_prefix)
        )
        self._topic_prefix = topic_prefix
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
        )
        self.delivery_failures = 0
        self.last_delivery_error: str | None = None

    @classmethod
    def from_settings(cls, settings: ProducerSettings) -> "EventProducer":
        return cls(
            settings.kafka_bootstrap,
            settings.schema_registry_url,
            topic_prefix=settings.topic_prefix,
            schema_dir=settings.schema_dir,
            registry_timeout_s=settings.registry_timeout_s,
        )

    @property
    def catalog(self) -> SchemaCatalog:
        return self._catalog

    def send(self, record: Mapping[str, Any], fullname: str | None = None) -> Any:
        """Encode and send one record; the kafka-python future of its delivery.

        Raises RecordInvalidError before anything is sent when the record does not fit its
        schema; registry failures propagate.
        """
        try:
            contract = contract_for_record(record, fullname)
        except KeyError as exc:
            raise RecordInvalidError(str(exc)) from exc
        value = self._encoder.encode(record, contract.fullname)
        key = key_for(record, contract.fullname).encode("utf-8")
        future = self._producer.send(self._topic_prefix + contract.topic, key=key, value=value)
        future.add_errback(self._delivery_failed)
        return future

    def _delivery_failed(self, exc: BaseException) -> None:
        self.delivery_failures += 1
        self.last_delivery_error = f"{type(exc).__name__}: {exc}"

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every record sent so far is acknowledged; DeliveryError if some failed."""
        self._producer.flush(timeout=timeout_s)
        if self.delivery_failures:
            raise DeliveryError(
                f"{self.delivery_failures} record(s) were not delivered; "
                f"last error: {self.last_delivery_error}"
            )

    def close(self) -> None:
        try:
            self._producer.close(timeout=FLUSH_TIMEOUT_S)
        finally:
            self._registry.close()


@dataclass
class ProduceSummary:
    """What a produce run did: records sent and lines refused (line number, why)."""

    sent: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    def __bool__(self) -> bool:
        return self.ok


def produce_file(
    path: Path,
    producer: RecordSink,
    *,
    progress: Progress | None = None,
    progress_every: int = PROGRESS_EVERY_DEFAULT,
) -> ProduceSummary:
    """Send every event of a JSON lines file; a bad line is reported by number and not sent.

    Blank lines are skipped. The summary is falsy when any line was refused.
    """
    report = progress if progress is not None else log.info
    summary = ProduceSummary()
    with path.open("r", encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = record_from_json(parse_json_event(line), producer.catalog)
                producer.send(record)
            except (JsonEventError, RecordInvalidError) as exc:
                summary.refused.append((line_number, str(exc)))
                report(f"{path}:{line_number}: not sent: {exc}")
                continue
            summary.sent += 1
            if summary.sent % progress_every == 0:
                report(f"{path}: {summary.sent} events sent")
    producer.flush()
    report(f"{path}: {summary.sent} events sent, {len(summary.refused)} line(s) refused")
    return summary


def produce_demo(
    producer: RecordSink,
    *,
    rate: float | None = None,
    count: int | None = None,
    seed: int = 7,
    progress: Progress | None = None,
    progress_every: int = PROGRESS_EVERY_DEFAULT,
    include_samples: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send the specification samples, then `count` synthetic events (endless when None).

    `rate` is in events per second (None: as fast as the producer takes them). The synthetic
    stream is deterministic for a seed, so a rerun re-sends the same event ids (duplicates FIN
    must recognise). Returns the number of records sent.
    """
    assert rate is None or rate > 0, "rate must be positive"
    report = progress if progress is not None else log.info
    samples: Iterable[dict[str, Any]] = specification_samples() if include_samples else ()
    pacer = _Pacer(rate, clock, sleep)
    sent = 0
    for records in (samples, synthetic_events(seed, count)):
        for record in records:
            pacer.wait_turn(sent)
            producer.send(record)
            sent += 1
            if sent % progress_every == 0:
                report(f"demo: {sent} events sent")
    producer.flush()
    report(f"demo: {sent} events sent")
    return sent


class _Pacer:
    """Holds a steady rate: record n goes out no earlier than start + n / rate."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    def wait_turn(self, index: int) -> None:
        if self._rate is None:
            return
        delay = self._start + index / self._rate - self._clock()
        if delay > 0:
            self._sleep(delay)
