"""Start one FIN worker: check configuration and schemas first, then hand over to faust."""

from __future__ import annotations

import logging
import time

import faust

from errors import RegistryUnavailableError
from ledger.chart import load_chart
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoder, Encoder
from schemas.registry import RegistryClient, register_all
from settings import Settings
from streams.admin import ensure_topics, record_byte_limits
from streams.hub import Hub, build_hub
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


def create_hub(settings: Settings) -> Hub:
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
    from api.routes import register_routes

    register_routes(hub, chart=chart, catalog=catalog, registry=client)
    return hub


def run_worker(settings: Settings) -> int:
    hub = create_hub(settings)
    worker = faust.Worker(hub.app, loglevel=settings.log_level.upper())
    worker.execute_from_commandline()
    return 0
