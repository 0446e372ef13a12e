"""A real faust app with FIN's routes registered, built without touching Kafka or a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.routes import register_routes
from ledger.chart import ChartOfAccounts, load_chart
from schemas.catalog import SchemaCatalog
from schemas.codec import Decoder, Encoder
from schemas.registry import RegistryClient
from settings import Settings
from streams.hub import Hub, build_hub
from streams.lag import watch_lag
from streams.metrics import Metrics

SCHEMA_ID = 7


def chart() -> ChartOfAccounts:
    return load_chart(Settings().chart_path)


def encoder() -> Encoder:
    return Encoder(SchemaCatalog.load(), lambda subject: SCHEMA_ID)


def hub_with_routes(
    data_dir: Path, *, read_key: str | None, write_key: str | None, **settings_given: Any
) -> Hub:
    """``settings_given``: further Settings fields (``api_insecure_writes``, ``allowed_hosts``)."""
    settings = Settings(
        data_dir=data_dir, api_read_key=read_key, api_write_key=write_key, **settings_given
    )
    catalog = SchemaCatalog.load()

    def no_registry(schema_id: int) -> str:
        raise AssertionError("a unit test must not reach the registry")

    async def no_prefetch(value: bytes | None) -> None:
        return None

    hub = build_hub(
        settings,
        chart=chart(),
        decoder=Decoder(catalog, no_registry),
        encoder=encoder(),
        prefetch_schema=no_prefetch,
        metrics=Metrics(),
    )
    # The client is never called while routes are registered; it only has to exist.
    register_routes(
        hub,
        chart=chart(),
        catalog=catalog,
        registry=RegistryClient("http://127.0.0.1:9"),
        lag=watch_lag(hub),
    )
    return hub
