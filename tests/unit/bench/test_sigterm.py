"""A bench killed with SIGTERM stops the workers it started
(``bench.context.stop_workers_on_sigterm``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# A stand-in for a bench: starts a child process ("worker") and stops it in a finally block.
SCRIPT = """
import subprocess, sys, time
from bench.context import stop_workers_on_sigterm
if sys.argv[1] == "1":
    stop_workers_on_sigterm()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
try:
    print(child.pid, flush=True)  # inside the try: the signal may come the moment it is read
    time.sleep(60)
finally:
    child.terminate()
    child.wait()
"""


def child_after_sigterm(install: bool) -> bool:
    """Whether the stand-in's child still runs after the stand-in got SIGTERM."""
    bench = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "1" if install else "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bench.stdout is not None
    child = int(bench.stdout.readline())
    try:
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=20)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return False
            # A terminated child that is not reaped yet (its parent exited) is a zombie
            # of init: gone for this purpose.
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                return False
            time.sleep(0.05)
        return True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_sigterm_runs_the_finally_blocks_that_stop_workers() -> None:
    assert child_after_sigterm(install=True) is False


def test_without_it_sigterm_leaves_the_worker_running() -> None:
    # The reason for the hook: Python's default SIGTERM ends the process without finally blocks.
    assert child_after_sigterm(install=False) is True
