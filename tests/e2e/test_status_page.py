"""The status page as people see it: Debian's chromium, headless, against a worker that has
processed the specification's samples. The screenshot stays in the test's tmp dir.

Chromium is a test prerequisite (``apt-get install chromium``); without it this test fails and
says so, it does not skip.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from demo.generator import specification_samples
from schemas.producer import EventProducer
from tests.fixtures import Deployment, Worker

pytestmark = pytest.mark.e2e

WINDOW = (1200, 900)
CHROMIUM_TIMEOUT_S = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: apt-get install -y chromium (a test prerequisite)"
    return found


def chromium(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess[bytes]:
    """One headless run; ``mode`` is --dump-dom or --screenshot=<file>."""
    return subprocess.run(
        [
            chromium_binary(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *mode,
            url,
        ],
        capture_output=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=False,
    )


class StatusPage(HTMLParser):
    """The numbers of the rendered page: texts by element id, and rows of its tables by id."""

    def __init__(self) -> None:
        super().__init__()
        self.text_by_id: dict[str, str] = {}
        self.rows_by_table: dict[str, list[list[str]]] = {}
        self._open_ids: list[tuple[str, str]] = []  # (tag, id) of open elements with an id
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if element_id:
            self._open_ids.append((tag, element_id))
            self.text_by_id.setdefault(element_id, "")
            if tag == "table":
                self._table = element_id
                self.rows_by_table[element_id] = []
        if tag == "tr" and self._table is not None:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._table is not None and self._row is not None:
            self.rows_by_table[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open_ids:
            self.text_by_id[element_id] += data
        if self._cell is not None:
            self._cell.append(data)


def number(text: str) -> float:
    return float(text.replace(",", "").strip())


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def start_worker(deployment: Deployment) -> Worker:
    worker = deployment.add_worker(start=False)
    # The worker keeps its tables under FIN_DATA_DIR/<app id> and creates only the last level.
    Path(worker.env["FIN_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    worker.start()
    worker.wait_ready()
    return worker


def wait_for_status(worker: Worker, consumed: int, timeout_s: float = 90.0) -> dict[str, object]:
    """The status JSON once every sample is consumed and a lag sample has been taken."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = worker.get("/api/v1/fin/status").json()
        by_topic = status["consumed_by_topic"]
        assert isinstance(by_topic, dict)
        if sum(by_topic.values()) >= consumed and status["lag"]:
            return status
        time.sleep(0.5)
    raise AssertionError(f"the worker did not consume {consumed} records: {status}")


def test_the_status_page_shows_real_numbers_in_headless_chromium(
    deployment: Deployment, tmp_path: Path
) -> None:
    worker = start_worker(deployment)
    samples = specification_samples()
    producer = EventProducer(
        deployment.infra.bootstrap, deployment.infra.registry_url, topic_prefix=deployment.prefix
    )
    try:
        for record in samples:
            producer.send(record)
        producer.flush()
    finally:
        producer.close()
    status = wait_for_status(worker, consumed=len(samples))
    url = f"{worker.url}/?key={deployment.api_key}"
    screenshot = tmp_path / "status-page.png"

    dumped = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    shot = chromium(url, tmp_path / "profile-shot", f"--screenshot={screenshot}")

    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
    page = StatusPage()
    page.feed(dumped.stdout.decode())
    assert page.text_by_id["state"] == "ready"
    assert number(page.text_by_id["consumed-total"]) == len(samples)
    consumed_rows = {name: number(count) for name, count in page.rows_by_table["consumed-by-topic"]}
    assert consumed_rows == {
        "fin.commands": 2,
        "hr.events": 1,
        "scm.events": 1,
        "crm.events": 1,
        "mfg.events": 1,
        "pm.events": 1,
    }
    posted_rows = dict(page.rows_by_table["posted-by-type"])
    assert posted_rows["hr.payroll.processed"] == "1"
    lag_rows = page.rows_by_table["lag"]
    assert lag_rows[0] == ["topic", "partition", "lag"]
    lag_topics = {row[0] for row in lag_rows[1:]}
    assert {"hr.events", "fin.commands", "fin.internal.by-event-id"} <= lag_topics
    assert len(lag_rows) - 1 == len(status["lag"])  # type: ignore[arg-type]
    assert all(row[1].isdigit() and row[2].replace(",", "").isdigit() for row in lag_rows[1:])
    assert page.text_by_id["integrity"] == "no failures"
    assert screenshot.stat().st_size > 20_000, "a blank page compresses to almost nothing"
    assert png_size(screenshot) == WINDOW
