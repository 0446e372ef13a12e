"""Session-wide fixtures: real Kafka and schema registry (see tests/fixtures.py)."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import Deployment, Infra, infrastructure

LOG_DIGEST_LINES = 80
_NOTABLE = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|rebalanc|assign|revok|stall", re.I)


def worker_logs_digest(deployment: Deployment) -> str:
    """The last notable lines (warnings, errors, rebalances) of each worker's log."""
    parts: list[str] = []
    for index, worker in enumerate(deployment.workers):
        if not worker.log_path.exists():
            continue
        lines = worker.log_path.read_text(errors="replace").splitlines()
        notable = [line[:400] for line in lines if _NOTABLE.search(line)]
        parts.append(f"--- worker-{index} ({worker.log_path}, {len(lines)} lines)")
        parts.extend(notable[-LOG_DIGEST_LINES:])
        parts.append(f"    last lines: {lines[-5:]}")
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failed test on a deployment gets its workers' notable log lines in its report: CI keeps
    only a failed run's output, and the worker logs live in temporary directories."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    seen: set[int] = set()
    for value in getattr(item, "funcargs", {}).values():
        deployment = value if isinstance(value, Deployment) else getattr(value, "deployment", None)
        if isinstance(deployment, Deployment) and id(deployment) not in seen:
            seen.add(id(deployment))
            try:
                report.sections.append(("worker logs", worker_logs_digest(deployment)))
            except Exception as exc:  # a digest must never hide the failure itself
                report.sections.append(("worker logs", f"unreadable: {exc!r}"))


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
