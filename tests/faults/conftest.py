"""Fixtures of the fault suite: a private broker and registry, and one FaultRun per test.

The suite stops and restarts the broker and the registry, so it never shares them: the package
starts its own pair on free ports (``infrastructure(private=True)``), whatever `make up` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.harness import FaultRun, fault_run, fault_seed
from tests.fixtures import Infra, infrastructure

MakeRun = Callable[..., FaultRun]


@pytest.fixture(scope="package")
def fault_infra() -> Iterator[Infra]:
    with infrastructure(private=True) as running:
        yield running


@pytest.fixture
def make_run(
    fault_infra: Infra, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MakeRun]:
    """``make_run(name=..., seed=..., events=...)``: the test's FaultRun, closed after it."""
    with ExitStack() as stack:

        def make(*, name: str, seed: int, events: int) -> FaultRun:
            chosen = fault_seed(seed)
            request.node.user_properties.append(("fault seed", chosen))
            return stack.enter_context(
                fault_run(fault_infra, tmp_path, name=name, seed=chosen, events=events)
            )

        yield make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    seeds = [value for name, value in item.user_properties if name == "fault seed"]
    if report.failed and seeds:
        report.sections.append(
            ("fault seed", f"seed {seeds[0]}; rerun with FIN_FAULT_SEED={seeds[0]}")
        )
