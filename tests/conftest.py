"""Session-wide fixtures: real Kafka and schema registry (see tests/fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import Deployment, Infra, infrastructure


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with infrastructure() as running:
        yield running


@pytest.fixture
def deployment(infra: Infra, tmp_path: Path) -> Iterator[Deployment]:
    """A private FIN (own topic prefix and app id) on the shared broker; workers stop after."""
    deployed = Deployment(infra=infra, root=tmp_path)
    deployed.create_topics()
    try:
        yield deployed
    finally:
        deployed.stop_all()
