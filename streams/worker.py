"""Start one FIN worker's runtime: check configuration and schemas first, then hand over to faust.

``create_runtime`` builds the faust app with its topics, tables, agents and timers; the entry
point (``app.py worker``) adds the REST views (``api.routes``) before ``run_hub`` starts it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faust

from errors import RegistryUnavailableError
from ledger.chart import ChartOfAccounts, load_chart
from ledger.master import DepartmentRegister, PeriodRegister
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoder, Encoder
from schemas.registry import RegistryClient, register_all
from settings import Settings
from streams.admin import ensure_topics, record_byte_limits
from streams.gc_tuning import freeze_long_lived
from streams.hub import Hub, build_hub
from streams.lag import LagWatch, watch_lag
from streams.master_data import MASTER_DATA_TOPIC, MasterDataReader, preload
from streams.metrics import Metrics
from streams.schema_cache import SchemaCache

log = logging.getLogger(__name__)

REGISTRY_WAIT_S = 120.0


def register_with_wait(
    catalog: SchemaCatalog, client: RegistryClient, settings: Settings
) -> dict[str, int]:
    """Register (idempotently) every local schema, waiting for a registry that is starting."""
    deadline = time.monotonic() + REGISTRY_WAIT_S
    while True:
        try:
            return register_all(catalog, client, topic_prefix=settings.topic_prefix)
        except RegistryUnavailableError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("schema registry not reachable yet (%s); waiting", exc)
            time.sleep(2.0)


@dataclass(frozen=True)
class Runtime:
    """A worker's runtime, built and not yet started, with what its REST views need."""

    hub: Hub
    chart: ChartOfAccounts
    catalog: SchemaCatalog
    registry: RegistryClient
    lag: LagWatch


def create_runtime(settings: Settings) -> Runtime:
    # Everything that can be wrong with configuration fails here, before any record is read.
    chart = load_chart(settings.chart_path)
    catalog = SchemaCatalog.load(settings.schema_dir)
    ensure_topics(settings)
    client = RegistryClient(settings.schema_registry_url, timeout_s=settings.registry_timeout_s)
    subject_ids = register_with_wait(catalog, client, settings)
    metrics = Metrics()
    cache = SchemaCache(client.get_schema, metrics)
    decoder = Decoder(catalog, cache.lookup)
    encoder = Encoder(catalog, lambda subject: subject_ids[subject])
    hub = build_hub(
        settings,
        chart=chart,
        decoder=decoder,
        encoder=encoder,
        prefetch_schema=cache.prefetch,
        metrics=metrics,
        record_limits=record_byte_limits(settings),
    )
    start_master_data(hub, chart.department_register, chart.period_register)
    freeze_after_recovery(hub)
    return Runtime(hub, chart, catalog, client, watch_lag(hub))


def freeze_after_recovery(hub: Hub) -> None:
    """What start-up made (consumer, stores, services) leaves the collector's view once the
    tables have first recovered (streams/gc_tuning.py)."""
    threshold = hub.settings.gc_young_threshold
    if threshold == 0:
        return

    @hub.app.task  # type: ignore[untyped-decorator]
    async def freeze_once_recovered() -> None:
        await hub.app.tables.recovery.completed.wait()  # type: ignore[attr-defined]
        freeze_long_lived(threshold, moment="after the first recovery")


def start_master_data(
    hub: Hub, register: DepartmentRegister, periods: PeriodRegister
) -> MasterDataReader:
    """Every worker reads the master-data topic into the chart's department register (which
    validation asks), from the start of the worker on (issue 16)."""
    settings = hub.settings
    # Current before any record is processed; the reader below then follows the topic.
    preload(settings.kafka_bootstrap, settings.topic(MASTER_DATA_TOPIC), register, periods)
    reader = MasterDataReader(
        settings.kafka_bootstrap, settings.topic(MASTER_DATA_TOPIC), register, periods
    )
    # The classic runtime sends through faust topics by contract name.
    hub.topics.setdefault(
        MASTER_DATA_TOPIC,
        hub.app.topic(
            settings.topic(MASTER_DATA_TOPIC),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            internal=False,
        ),
    )

    @hub.app.task  # type: ignore[untyped-decorator]
    async def read_master_data() -> None:
        reader.start()

    return reader


def run_hub(hub: Hub) -> int:
    worker = faust.Worker(hub.app, loglevel=hub.settings.log_level.upper())
    freeze_long_lived(hub.settings.gc_young_threshold, moment="before the start")
    worker.execute_from_commandline()
    return 0
