"""FIN's settings: one frozen object, built once at start from the environment.

Nothing here runs at import time; ``Settings.from_env()`` is called by ``app.py`` when a command
starts, and the object is passed down explicitly from there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from errors import ConfigurationError

# The contract's names, re-exported for the modules that take them from here (ledger/contract.py
# is where they are defined).
from ledger.contract import (
    ALERTS_TOPIC,
    BY_EVENT_ID_TOPIC,
    COMMANDS_TOPIC,
    DELTA_TABLES,
    DLQ_TOPIC,
    LEDGER_TOPIC,
    SOURCE_TOPICS,
    delta_topic,
)

__all__ = [
    "ALERTS_TOPIC",
    "BY_EVENT_ID_TOPIC",
    "COMMANDS_TOPIC",
    "DEFAULT_ALLOWED_HOSTS",
    "DELTA_TABLES",
    "DLQ_TOPIC",
    "LEDGER_TOPIC",
    "PROJECT_ROOT",
    "REGISTRY_URL_FILE",
    "RUNTIMES",
    "SOURCE_TOPICS",
    "Settings",
    "delta_topic",
]

PROJECT_ROOT = Path(__file__).resolve().parent
# Written by `ops/registry.sh start` (`make up`): the base URL of the registry it started, used
# when FIN_SCHEMA_REGISTRY_URL is unset, so `make up` then `python app.py worker` just works.
REGISTRY_URL_FILE = PROJECT_ROOT / ".state" / "registry" / "url"
# Host headers a worker answers when FIN_ALLOWED_HOSTS is unset (any port), besides FIN_WEB_HOST.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

# "classic": one faust pass per record at every stage (ingest, posting, one agent per table,
# entries). "batched": the same stages over batches, rows written once per batch, outputs sent
# straight to the producer, deltas coalesced per row and batch (docs/design.md, Dataflow).
RUNTIMES: tuple[str, ...] = ("classic", "batched")


# What the classic runtime keeps of the defaults it was measured with, unless the environment
# says otherwise, so that --runtime classic still measures the old runtime: a 5 ms producer
# linger (it sends record by record: without one each record would go in a produce request of
# its own) and faust's consumer in a thread of its own.
CLASSIC_DEFAULTS: Mapping[str, str] = {"FIN_PRODUCER_LINGER_MS": "5", "FIN_CONSUMER_IN_LOOP": "0"}


@dataclass(frozen=True)
class Settings:
    """Every knob FIN has. Defaults suit a laptop; production sets the environment."""

    kafka_bootstrap: str = "localhost:9092"
    schema_registry_url: str = "http://localhost:8081"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = PROJECT_ROOT / ".state" / "worker"
    api_read_key: str | None = None
    api_write_key: str | None = None
    app_id: str = "fin-hub"
    topic_prefix: str = ""
    partitions: int = 4
    standby_replicas: int = 0
    processing_guarantee: str = "at_least_once"
    log_level: str = "info"
    delivery_audit: bool = False
    # Fault injection for tests (FIN_FAULT_INJECT_EVENT_ID): the posting stage raises on this
    # event id, as a defect would; never set in production.
    fault_inject_event_id: str | None = None
    chart_path: Path = PROJECT_ROOT / "config" / "chart_of_accounts.toml"
    schema_dir: Path = PROJECT_ROOT / "schemas"
    registry_timeout_s: float = 5.0
    runtime: str = "batched"
    # A killed worker's partitions move once the broker gives up on its session: faust's 60 s
    # default stalled the whole group for 60-90 s after a SIGKILL (issue 14).
    broker_session_timeout_s: float = 10.0
    broker_heartbeat_interval_s: float = 2.0
    # How often a worker commits what it has processed: after a kill -9 its successor processes
    # again (and re-sends byte-identical entries for) up to this much of its traffic. faust's
    # default is 2.8 s; the fault suite's kill -9 x3 scenario re-emitted 877 copies for 551
    # entries with it, 600 with 1 s.
    commit_interval_s: float = 1.0
    # How often a worker samples its consumer lag (fin_consumer_lag_records, the status page).
    lag_sample_interval_s: float = 5.0
    batch_max: int = 500
    # True: faust's own Monitor sensor with its per-record statistics (off: nothing reads them).
    faust_monitor: bool = False
    # Once an agent has a record, how long it waits for more before processing (0: it takes
    # what is ready; under load a batch is what arrived while the previous one was processed).
    batch_linger_s: float = 0.02
    # ... but only while records keep coming less than this apart (a quiet gap ends the batch).
    batch_gap_s: float = 0.01
    # ... and only when at least this many records follow the batch's first in its partition: a
    # worker that keeps up sends records on at once (they come in one burst per fetch,
    # fetch_max_wait_s), one that is behind gathers bigger batches (docs/design.md,
    # "Latency"). 0: always linger.
    batch_behind_records: int = 100
    # How long the broker may hold the worker consumer's fetch for ``fetch_min_bytes`` to
    # arrive (streams/faust_patches/fetch_wait.py). 0: faust's own (answer at the first byte),
    # which under steady load makes a round of every fetch of a few records: ~2x the CPU per
    # event at half the drain rate. Each hop waits at most this much more.
    fetch_max_wait_s: float = 0.025
    fetch_min_bytes: int = 1024 * 1024
    # How long the producer waits to fill a request. The batched runtime sends a batch's
    # outputs in one step of the loop, so they share requests without waiting; 5 ms (the
    # default while records were sent one by one) cost ~6 % more CPU per event and ~5 ms per
    # hop at 900 events/s (docs/design.md, "Latency"). librdkafka sends (an experiment) use it
    # as their linger.ms too. The classic runtime, which sends record by record, keeps 5 ms
    # unless told (``CLASSIC_DEFAULTS``).
    producer_linger_s: float = 0.0
    # The most bytes the producer puts in one partition's batch. aiokafka makes a send wait
    # for the broker whenever that partition's batch is full (faust's default 16 KiB filled in
    # 15-30 records of a 500-record batch); kept under the topics' 1,000,000-byte record limit.
    producer_batch_bytes: int = 256 * 1024
    # The collector's young-generation threshold (CPython's default: 700), set after start-up
    # has been frozen out of the collector's view (streams/gc_tuning.py); 0: CPython's own
    # settings and no freeze.
    gc_young_threshold: int = 50_000
    # Table recovery reads the active changelog partitions with a plain consumer in bulk and
    # hands them to faust's own RocksDB batch write (streams/faust_patches/fast_recovery.py);
    # off: faust's per-record path (docs/design.md, "Recovery").
    fast_recovery: bool = True
    # faust's fetcher loop hands a record to the agents' queues inline when that cannot block,
    # instead of racing four tasks per record (streams/faust_patches/fast_drain.py).
    fast_drain: bool = True
    # ... fetching at most this many bytes per partition in one fetch.
    recovery_fetch_bytes: int = 1024 * 1024
    # The batched runtime's outputs appended to one producer batch per topic partition and
    # handed over once per batch (aiokafka's BatchBuilder, streams/outbox.py), instead of one
    # producer send per record. Off by default: ~9% less CPU per event in drains, but a worse
    # latency tail at half load (docs/design.md, "Outputs straight to the producer").
    bulk_sends: bool = False
    # The batched runtime packs a batch's records per partition: the ``processed`` rows to
    # their changelog (tables/store.py; PackedRowsTable restores either form) and the rows'
    # deltas to each deltas topic (streams/batched.py, delta_sends); the table agents read both
    # forms. Off: one changelog record per processed row, one delta record per row and batch.
    packed_records: bool = True
    # The ingest agent hands its delivered by-event-id records to the posting agent of the
    # same worker, which posts each one that is next in its partition at once instead of
    # waiting to fetch it back (streams/handoff.py, docs/design.md "Latency").
    local_handoff: bool = True
    # Experimental: the batched runtime's output records go through librdkafka (confluent-kafka),
    # which batches, encodes and sends them in its own threads, instead of aiokafka's producer
    # on the worker's event loop (streams/rdkafka_sends.py). Off: librdkafka sends one produce
    # request per partition, and with the broker on the same two cores its extra requests cost
    # more than the loop saves (docs/design.md, "Latency"). Never under FIN_BULK_SENDS or
    # exactly_once (faust's transactional producer).
    librdkafka_sends: bool = False
    # The tables agent (off the journal entries' path) waits up to this long before each batch
    # while delivered by-event-id records wait to be posted (the local hand-over's queue; with
    # no hand-over it never waits), so that a busy event loop serves the entries' path first
    # (streams/inflight.py, ``give_way``; docs/design.md "Latency": p99 at 800 events/s
    # 159-314 -> 111-183 ms in five pairs, the tables' own delay unchanged at p99 <= 0.2 s).
    # 0: batches in arrival order.
    tables_give_way_s: float = 0.2
    # > 0: the tables agent gathers its batches for this long once it has a record (whatever
    # the gaps between records and however few follow), so a hot row (a busy vendor, this
    # month's period) is written and sent to its changelog at most about once per this
    # interval instead of once per small batch; the tables trail by up to this much more.
    # 0: the agents' shared linger (FIN_BATCH_LINGER_MS, FIN_BATCH_GAP_MS,
    # FIN_BATCH_BEHIND_RECORDS). docs/design.md, "Latency".
    tables_linger_s: float = 0.25
    # A table row over this many bytes goes to its changelog as chunk records and a header
    # (tables/chunked.py), so no row outgrows the changelog topics' 1 MiB record limit.
    row_chunk_bytes: int = 256 * 1024
    # A produce request to a broker takes the lingering batches of every partition that broker
    # leads once one of them is ready, as Kafka's Java producer does, instead of aiokafka's one
    # request per batch whose own linger ran out (streams/faust_patches/whole_node_produce.py).
    whole_node_produce: bool = False
    # faust's consumer runs on the worker's event loop instead of a thread and loop of its own
    # (streams/faust_patches/consumer_in_loop.py). The classic runtime keeps faust's thread
    # unless told (``CLASSIC_DEFAULTS``).
    consumer_in_loop: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)
    # Without a write key, commands are refused unless this opens them (demos only).
    api_insecure_writes: bool = False
    # Host names (no port) requests may name in their Host header; None: DEFAULT_ALLOWED_HOSTS.
    # FIN_WEB_HOST is always allowed (workers forward reads to each other by it); "*": any host.
    allowed_hosts: tuple[str, ...] | None = None

    def topic(self, name: str) -> str:
        """The real name of a contract topic (tests isolate themselves with a prefix)."""
        return f"{self.topic_prefix}{name}"

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def host_allow_list(self) -> frozenset[str]:
        """The host names (lower case, IPv6 without brackets) a Host header may name."""
        listed = DEFAULT_ALLOWED_HOSTS if self.allowed_hosts is None else self.allowed_hosts
        return frozenset({*(_host_name(host) for host in listed), _host_name(self.web_host)})

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        registry_url_file: Path | None = REGISTRY_URL_FILE,
    ) -> Settings:
        """``registry_url_file``: where ``ops/registry.sh`` wrote the URL of the registry it
        started; read only when FIN_SCHEMA_REGISTRY_URL is unset (None: never read)."""
        env: Mapping[str, str] = os.environ if environ is None else environ
        runtime = env.get("FIN_RUNTIME", cls.runtime)
        if runtime == "classic":
            env = {**CLASSIC_DEFAULTS, **env}
        read_key = env.get("FIN_API_KEY") or None
        write_key = env.get("FIN_API_WRITE_KEY") or read_key
        settings = cls(
            kafka_bootstrap=env.get("FIN_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            schema_registry_url=env.get("FIN_SCHEMA_REGISTRY_URL")
            or _registry_url_from(registry_url_file)
            or cls.schema_registry_url,
            web_host=env.get("FIN_WEB_HOST", cls.web_host),
            web_port=_int(env, "FIN_WEB_PORT", cls.web_port),
            data_dir=Path(env["FIN_DATA_DIR"]) if env.get("FIN_DATA_DIR") else cls.data_dir,
            api_read_key=read_key,
            api_write_key=write_key,
            app_id=env.get("FIN_APP_ID", cls.app_id),
            topic_prefix=env.get("FIN_TOPIC_PREFIX", cls.topic_prefix),
            partitions=_int(env, "FIN_PARTITIONS", cls.partitions),
            standby_replicas=_int(env, "FIN_STANDBY_REPLICAS", cls.standby_replicas),
            processing_guarantee=env.get("FIN_PROCESSING_GUARANTEE", cls.processing_guarantee),
            log_level=env.get("FIN_LOG_LEVEL", cls.log_level),
            delivery_audit=env.get("FIN_DELIVERY_AUDIT", "0") == "1",
            fault_inject_event_id=env.get("FIN_FAULT_INJECT_EVENT_ID") or None,
            chart_path=Path(env["FIN_CHART_PATH"]) if env.get("FIN_CHART_PATH") else cls.chart_path,
            registry_timeout_s=_float(env, "FIN_REGISTRY_TIMEOUT_S", cls.registry_timeout_s),
            api_insecure_writes=_flag(env, "FIN_API_INSECURE_WRITES"),
            allowed_hosts=_allowed_hosts(env.get("FIN_ALLOWED_HOSTS", "")),
            runtime=runtime,
            broker_session_timeout_s=_float(
                env, "FIN_BROKER_SESSION_TIMEOUT_S", cls.broker_session_timeout_s
            ),
            broker_heartbeat_interval_s=_float(
                env, "FIN_BROKER_HEARTBEAT_INTERVAL_S", cls.broker_heartbeat_interval_s
            ),
            commit_interval_s=_float(env, "FIN_COMMIT_INTERVAL_S", cls.commit_interval_s),
            lag_sample_interval_s=_float(
                env, "FIN_LAG_SAMPLE_INTERVAL_S", cls.lag_sample_interval_s
            ),
            batch_max=_int(env, "FIN_BATCH_MAX", cls.batch_max),
            faust_monitor=env.get("FIN_FAUST_MONITOR", "0") == "1",
            batch_linger_s=_int(env, "FIN_BATCH_LINGER_MS", int(cls.batch_linger_s * 1000)) / 1000,
            batch_gap_s=_int(env, "FIN_BATCH_GAP_MS", int(cls.batch_gap_s * 1000)) / 1000,
            tables_give_way_s=_int(env, "FIN_TABLES_GIVE_WAY_MS", int(cls.tables_give_way_s * 1000))
            / 1000,
            tables_linger_s=_int(env, "FIN_TABLES_LINGER_MS", int(cls.tables_linger_s * 1000))
            / 1000,
            batch_behind_records=_int(env, "FIN_BATCH_BEHIND_RECORDS", cls.batch_behind_records),
            fetch_max_wait_s=_int(env, "FIN_FETCH_MAX_WAIT_MS", int(cls.fetch_max_wait_s * 1000))
            / 1000,
            fetch_min_bytes=_int(env, "FIN_FETCH_MIN_BYTES", cls.fetch_min_bytes),
            producer_linger_s=_int(env, "FIN_PRODUCER_LINGER_MS", int(cls.producer_linger_s * 1000))
            / 1000,
            producer_batch_bytes=_int(env, "FIN_PRODUCER_BATCH_BYTES", cls.producer_batch_bytes),
            gc_young_threshold=_int(env, "FIN_GC_YOUNG_THRESHOLD", cls.gc_young_threshold),
            fast_recovery=_flag(env, "FIN_FAST_RECOVERY", cls.fast_recovery),
            fast_drain=_flag(env, "FIN_FAST_DRAIN", cls.fast_drain),
            recovery_fetch_bytes=_int(env, "FIN_RECOVERY_FETCH_BYTES", cls.recovery_fetch_bytes),
            packed_records=_flag(env, "FIN_PACKED_RECORDS", cls.packed_records),
            row_chunk_bytes=_int(env, "FIN_ROW_CHUNK_BYTES", cls.row_chunk_bytes),
            bulk_sends=_flag(env, "FIN_BULK_SENDS", cls.bulk_sends),
            local_handoff=_flag(env, "FIN_LOCAL_HANDOFF", cls.local_handoff),
            whole_node_produce=_flag(env, "FIN_WHOLE_NODE_PRODUCE", cls.whole_node_produce),
            consumer_in_loop=_flag(env, "FIN_CONSUMER_IN_LOOP", cls.consumer_in_loop),
            librdkafka_sends=_flag(env, "FIN_LIBRDKAFKA_SENDS", cls.librdkafka_sends),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not 1 <= self.partitions <= 256:
            raise ConfigurationError(f"FIN_PARTITIONS must be 1..256, got {self.partitions}")
        if self.standby_replicas < 0:
            raise ConfigurationError("FIN_STANDBY_REPLICAS must be >= 0")
        if self.processing_guarantee not in ("at_least_once", "exactly_once"):
            raise ConfigurationError(
                "FIN_PROCESSING_GUARANTEE must be at_least_once or exactly_once, "
                f"got {self.processing_guarantee!r}"
            )
        if self.runtime not in RUNTIMES:
            raise ConfigurationError(
                f"FIN_RUNTIME must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        if not 6 <= self.broker_session_timeout_s <= 300:
            # The broker refuses sessions under group.min.session.timeout.ms (6 s by default).
            raise ConfigurationError("FIN_BROKER_SESSION_TIMEOUT_S must be 6..300")
        if not 0 < self.broker_heartbeat_interval_s <= self.broker_session_timeout_s / 3:
            raise ConfigurationError(
                "FIN_BROKER_HEARTBEAT_INTERVAL_S must be > 0 and at most a third of the "
                "session timeout"
            )
        if not 0.1 <= self.commit_interval_s <= 60:
            raise ConfigurationError("FIN_COMMIT_INTERVAL_S must be 0.1..60")
        if not 0.5 <= self.lag_sample_interval_s <= 60:
            raise ConfigurationError("FIN_LAG_SAMPLE_INTERVAL_S must be 0.5..60")
        if not 1 <= self.batch_max <= 100_000:
            raise ConfigurationError(f"FIN_BATCH_MAX must be 1..100000, got {self.batch_max}")
        if not 0 <= self.batch_linger_s <= 10:
            raise ConfigurationError("FIN_BATCH_LINGER_MS must be 0..10000")
        if not 0 < self.batch_gap_s <= 1:
            raise ConfigurationError("FIN_BATCH_GAP_MS must be 1..1000")
        if not 0 <= self.tables_give_way_s <= 5:
            raise ConfigurationError("FIN_TABLES_GIVE_WAY_MS must be 0..5000")
        if not 0 <= self.tables_linger_s <= 5:
            raise ConfigurationError("FIN_TABLES_LINGER_MS must be 0..5000")
        if not 256 <= self.row_chunk_bytes <= 512 * 1024:
            raise ConfigurationError("FIN_ROW_CHUNK_BYTES must be 256..524288")
        if not 0 <= self.batch_behind_records <= 1_000_000:
            raise ConfigurationError("FIN_BATCH_BEHIND_RECORDS must be 0..1000000")
        if not 0 <= self.fetch_max_wait_s <= 1:
            raise ConfigurationError("FIN_FETCH_MAX_WAIT_MS must be 0..1000")
        if not 1 <= self.fetch_min_bytes <= 64 * 1024 * 1024:
            raise ConfigurationError("FIN_FETCH_MIN_BYTES must be 1..67108864")
        if not 0 <= self.producer_linger_s <= 1:
            raise ConfigurationError("FIN_PRODUCER_LINGER_MS must be 0..1000")
        if not (self.gc_young_threshold == 0 or 100 <= self.gc_young_threshold <= 1_000_000):
            raise ConfigurationError("FIN_GC_YOUNG_THRESHOLD must be 0 or 100..1000000")
        if not 16 * 1024 <= self.producer_batch_bytes <= 900_000:
            raise ConfigurationError("FIN_PRODUCER_BATCH_BYTES must be 16384..900000")
        if not 64 * 1024 <= self.recovery_fetch_bytes <= 64 * 1024 * 1024:
            raise ConfigurationError("FIN_RECOVERY_FETCH_BYTES must be 65536..67108864")
        if not 0 < self.web_port < 65536:
            raise ConfigurationError(f"FIN_WEB_PORT out of range: {self.web_port}")


Number = TypeVar("Number", int, float)


def _number(
    env: Mapping[str, str], name: str, default: Number, parse: Callable[[str], Number], kind: str
) -> Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int, "an integer")


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """``name`` as 1 or 0; unset or empty: ``default``."""
    raw = env.get(name, "")
    if raw == "":
        return default
    if raw == "0":
        return False
    if raw == "1":
        return True
    raise ConfigurationError(f"{name} must be 1 or 0, got {raw!r}")


def _registry_url_from(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return url or None


def _host_name(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _allowed_hosts(raw: str) -> tuple[str, ...] | None:
    """FIN_ALLOWED_HOSTS: comma-separated host names, without scheme or port; unset: None."""
    hosts = []
    for entry in raw.split(","):
        name = _host_name(entry)
        if not name:
            continue
        bare_ipv6 = name.count(":") > 1
        if "/" in name or (":" in name and not bare_ipv6) or name.startswith("["):
            raise ConfigurationError(
                "FIN_ALLOWED_HOSTS takes host names without scheme or port (any port is "
                f"allowed), e.g. fin.example.com,worker-1; got {entry.strip()!r}"
            )
        hosts.append(name)
    return tuple(hosts) if hosts else None
