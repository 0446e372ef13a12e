"""Module-scoped deployments: one private FIN (topic prefix, app id) shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.catalog import SchemaCatalog
from schemas.codec import Encoder
from schemas.registry import RegistryClient, SchemaIds
from tests.fixtures import Deployment, Infra, Worker


@pytest.fixture(scope="module")
def module_deployment(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Like `deployment`, but created once per module; its workers stop after the module."""
    deployed = Deployment(infra=infra, root=tmp_path_factory.mktemp("deployment"))
    deployed.create_topics()
    try:
        yield deployed
    finally:
        deployed.stop_all()


@pytest.fixture(scope="module")
def worker(module_deployment: Deployment) -> Worker:
    """The module's worker with default settings, ready (a module may define its own)."""
    started = module_deployment.add_worker()
    started.wait_ready()
    return started


@pytest.fixture(scope="module")
def encoder(module_deployment: Deployment, worker: Worker) -> Iterator[Encoder]:
    """Contract records encoded with the schema ids the module's worker registered."""
    catalog = SchemaCatalog.load()
    client = RegistryClient(module_deployment.infra.registry_url)
    ids = SchemaIds(catalog, client, module_deployment.prefix, auto_register=False)
    yield Encoder(catalog, ids)
    client.close()
