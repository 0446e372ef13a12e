"""Module-scoped deployments: one private FIN (topic prefix, app id) shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures import Deployment, Infra


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
