"""The recovery at scale waits for a quiet broker before its wiped restart, and says so."""

from __future__ import annotations

import os
import threading
import time

from bench import procstat
from bench.report import quiet_broker_clause


def test_without_a_broker_to_watch_nothing_is_waited_for() -> None:
    waited, cores = procstat.wait_until_quiet(None, window_s=0.05)
    assert waited < 0.05
    assert cores is None


def test_an_idle_process_is_quiet_after_one_window() -> None:
    waited, cores = procstat.wait_until_quiet(os.getpid(), cores=0.5, window_s=0.1)
    assert cores is not None and cores <= 0.5
    assert 0.1 <= waited < 1.0


def test_a_busy_process_is_waited_for_until_the_timeout() -> None:
    stop = time.monotonic() + 0.6

    def spin() -> None:
        while time.monotonic() < stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        waited, cores = procstat.wait_until_quiet(
            os.getpid(), cores=0.05, window_s=0.1, timeout_s=0.3
        )
    finally:
        spinner.join()
    assert cores is not None and cores > 0.05
    assert 0.3 <= waited < 0.6


def test_the_report_says_how_long_it_waited_and_how_busy_the_broker_was() -> None:
    clause = quiet_broker_clause(
        {"quiet_wait_s": 3.2, "broker_cores_before": 0.12, "broker_cores_during": 0.41}
    )
    assert "waiting 3.2 s" in clause and "0.12 core" in clause and "0.41 core" in clause
    assert quiet_broker_clause({"records_per_s": 20_000}) == ""  # a result from before
