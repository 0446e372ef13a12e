"""One busy FIN for the end-to-end tests that look at it from outside (status page, Prometheus).

``busy_hub`` is a private deployment with one worker under the demo producer's steady traffic
(``python app.py produce --demo``: the specification's samples, then synthetic events), plus
what an operator should see on a real day: every kind of bad record (dead letters), a duplicate,
and a budget cut below its actual (a budget at stop). With it, a real Prometheus from
``ops/prometheus.sh`` scrapes that worker every second. Package scope: started on first use and
stopped after the last test of tests/e2e, so none of it runs on beside the rest of the suite.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from demo.bad_records import bad_records
from demo.generator import specification_samples
from schemas.catalog import SchemaCatalog
from schemas.registry import RegistryClient, SchemaIds
from tests.fixtures import OPS, ROOT, Deployment, Infra, Worker, free_port
from tests.integration.helpers import RawProducer
from tools.produce import EventProducer

DEMO_RATE = 25  # events per second
APP = ROOT / "app.py"
PROMETHEUS_START_TIMEOUT_S = 120


@dataclass
class Prometheus:
    url: str
    env: dict[str, str]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        result = body["data"]["result"]
        assert isinstance(result, list)
        return result

    def get(self, path: str) -> Any:
        return requests.get(f"{self.url}{path}", timeout=10).json()


def _prometheus_script(action: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(OPS / "prometheus.sh"), action],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROMETHEUS_START_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"ops/prometheus.sh {action} failed (a real Prometheus is required):\n"
        f"{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@dataclass
class BusyHub:
    deployment: Deployment
    worker: Worker
    prometheus: Prometheus
    dead_letters_by_reason: Counter[str]  # the bad records sent, by the reason they must get
    duplicates_sent: int


def _wait_for(worker: Worker, what: str, done: Any, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = worker.get("/api/v1/fin/status").json()
        if done(status):
            return status
        time.sleep(0.5)
    raise AssertionError(
        f"{what} did not happen within {timeout_s} s: {str(status)[:3000]}\n{worker.log_tail()}"
    )


def _posted(status: dict[str, Any], event_type: str) -> float:
    return float(status["posted_by_type"].get(event_type, 0.0))


@pytest.fixture(scope="package")
def busy_hub(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BusyHub]:
    root = tmp_path_factory.mktemp("busy-hub")
    deployment = Deployment(infra=infra, root=root)
    deployment.create_topics()
    worker = deployment.add_worker(start=False)
    # The worker keeps its tables under FIN_DATA_DIR/<app id> and creates only the last level.
    Path(worker.env["FIN_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    worker.start()
    # Prometheus (own port and state dir) scrapes the worker every second from the start, so
    # its rates have data by the time a test asks.
    prometheus_env = {
        "PROMETHEUS_PORT": str(free_port()),
        "PROMETHEUS_STATE_DIR": str(root / "prometheus"),
        "PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "PROMETHEUS_TARGETS": f"127.0.0.1:{worker.port}",
        "PROMETHEUS_SCRAPE_KEY": deployment.api_key,
    }
    demo: subprocess.Popen[bytes] | None = None
    try:
        _prometheus_script("start", prometheus_env)
        prometheus = Prometheus(_prometheus_script("url", prometheus_env).strip(), prometheus_env)
        worker.wait_ready()
        with (root / "demo-producer.log").open("ab") as demo_log:
            demo = subprocess.Popen(
                [sys.executable, str(APP), "produce", "--demo", "--rate", str(DEMO_RATE)],
                cwd=ROOT,
                env={**os.environ, **deployment.env()},
                stdout=demo_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        samples = specification_samples()
        _wait_for(
            worker,
            "the specification's samples posted, and two samples of the page's history",
            lambda status: (
                _posted(status, "hr.payroll.processed") >= 1
                and _posted(status, "fin.budget.set") >= 1
                and status["history"]["samples"] >= 2
            ),
        )
        # A budget cut below what was spent (the sample payroll alone is 125,000.00), a
        # duplicate of a sample, and one of every bad record: what the page must show.
        budget = next(record for record in samples if record["event_type"] == "fin.budget.set")
        cut = {
            **budget,
            "event_id": str(uuid.uuid4()),
            "data": {**budget["data"], "amount": Decimal("1000.00")},
        }
        duplicate = next(r for r in samples if r["event_type"] == "hr.payroll.processed")
        producer = EventProducer(
            infra.bootstrap, infra.registry_url, topic_prefix=deployment.prefix
        )
        try:
            producer.send(cut)
            producer.send(duplicate)
            producer.flush()
        finally:
            producer.close()
        catalog = SchemaCatalog.load()
        client = RegistryClient(infra.registry_url)
        raw = RawProducer(deployment)
        try:
            schema_ids = SchemaIds(catalog, client, deployment.prefix, auto_register=False)
            bad = bad_records(17, schema_ids, catalog)
            for record in bad:
                raw.send(record.topic, record.key, record.value)
            raw.flush()
        finally:
            raw.close()
            client.close()
        expected = Counter(record.expected_reason for record in bad)
        yield BusyHub(
            deployment, worker, prometheus, dead_letters_by_reason=expected, duplicates_sent=1
        )
    finally:
        if demo is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, 15)
            demo.wait(timeout=30)
        deployment.stop_all()
        _prometheus_script("stop", prometheus_env)
