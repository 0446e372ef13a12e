"""Runs ``bench.baseline`` as its own process, the way the hub's worker is run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import latency as latency_module
from bench import procstat
from bench.context import ROOT, Context
from bench.dataset import Dataset, differences, reference_trial_balances
from bench.measure import DrainResult, LatencyResult
from settings import LEDGER_TOPIC


@dataclass
class BaselineProcess:
    ctx: Context
    prefix: str
    root: Path
    expect: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.root / "baseline.json"

    @property
    def ready_file(self) -> Path:
        return self.root / "ready"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "baseline.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.baseline",
                "--bootstrap",
                self.ctx.bootstrap,
                "--registry-url",
                self.ctx.registry_url,
                "--prefix",
                self.prefix,
                "--group",
                "bench-baseline-" + self.prefix.rstrip("."),
                "--expect",
                str(self.expect),
                "--out",
                str(self.out),
                "--ready-file",
                str(self.ready_file),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready_file.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("baseline never got its partitions assigned")
            time.sleep(0.05)

    def wait_done(self, timeout_s: float = 1800) -> dict[str, Any]:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        if code != 0:
            raise RuntimeError(f"baseline exited with {code}:\n{self.log_tail()}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"baseline exited early:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return procstat.cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        path = self.root / "baseline.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def drain(ctx: Context, dataset: Dataset, *, label: str) -> DrainResult:
    prefix = ctx.new_prefix("base")
    ctx.create_contract_topics(prefix)
    ctx.kafka.load(dataset.outgoing(prefix))
    process = BaselineProcess(ctx, prefix, ctx.scratch / prefix.rstrip("."), len(dataset))
    spawned = time.time()
    process.start()
    try:
        state = process.wait_done()
    finally:
        process.stop()
    reference = reference_trial_balances(dataset.reference())
    problems = differences(reference, state["trial_balances"])
    entries = ctx.kafka.count(prefix + LEDGER_TOPIC)
    if entries != dataset.entries:
        problems.append(f"{entries} records on the ledger topic, expected {dataset.entries}")
    if state["outcomes"] != {"posted": len(dataset)}:
        problems.append(f"outcomes {state['outcomes']}, expected all {len(dataset)} posted")
    ctx.cleanup(prefix)
    return DrainResult(
        contestant="baseline",
        events=len(dataset),
        seconds=state["done_at"] - state["first_at"],
        cpu_s=state["cpu_s"],
        peak_rss_kb=state["peak_rss_kb"],
        valid=not problems,
        problems=problems[:20],
        details={
            "label": label,
            "loadavg_1min": os.getloadavg()[0],
            "prefix": prefix,
            "startup_s": round(state["first_at"] - spawned, 2),
            "process_cpu_total_s": round(state["cpu_total_s"], 2),
            "cpu_busy_share": round(
                state["cpu_s"] / max(1e-9, state["done_at"] - state["first_at"]), 3
            ),
            "ledger_entries": entries,
            "stage_us_per_event": {
                stage: round(ns / 1000 / len(dataset), 1)
                for stage, ns in state.get("stage_ns", {}).items()
            },
        },
    )


def latency(
    ctx: Context,
    dataset: Dataset,
    *,
    max_rate: float,
    loads: list[float],
    seconds: float,
) -> list[LatencyResult]:
    """Open-loop latency against one fresh baseline process; its books checked after."""
    prefix = ctx.new_prefix("baselat")
    ctx.create_contract_topics(prefix)
    used = latency_module.events_needed(max_rate, loads, seconds)
    process = BaselineProcess(ctx, prefix, ctx.scratch / prefix.rstrip("."), used)
    process.start()
    try:
        process.wait_ready()
        results, sent = latency_module.measure(
            ctx,
            prefix,
            dataset.events,
            contestant="baseline",
            max_rate=max_rate,
            loads=loads,
            seconds=seconds,
            check_alive=process.check_alive,
            cpu_seconds=process.cpu_seconds,
        )
        assert sent == used
        state = process.wait_done(timeout_s=120)
    finally:
        process.stop()
        ctx.cleanup(prefix)
    reference = reference_trial_balances(dataset.head(used).reference())
    problems = differences(reference, state["trial_balances"])
    for result in results:
        if problems:
            result.valid = False
            result.problems.extend(problems[:10])
    return results
