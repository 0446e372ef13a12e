"""The status page as people see it: Debian's chromium, headless, against a worker under demo
traffic with dead letters, a duplicate and a budget at stop (``busy_hub``, tests/e2e/conftest.py).
The screenshot stays in the test's tmp dir; with FIN_STATUS_SCREENSHOT=PATH it is also copied
there (``make status-screenshot`` refreshes docs/status-page.png that way, after letting the
charts fill for FIN_STATUS_SCREENSHOT_AFTER_S seconds).

Chromium is a test prerequisite (``apt-get install chromium``); without it this test fails and
says so, it does not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ledger.rejections import Reason
from tests.e2e.conftest import BusyHub
from tests.fixtures import ROOT, Worker

pytestmark = pytest.mark.e2e

WINDOW = (1200, 2000)
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
        self.attributes_by_id: dict[str, dict[str, str | None]] = {}
        self.lines_by_chart: dict[str, dict[str, int]] = {}  # chart id -> series -> points
        self._chart: str | None = None
        self.rows_by_table: dict[str, list[list[str]]] = {}
        self._open_ids: list[tuple[str, str]] = []  # (tag, id) of open elements with an id
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        element_id = attributes.get("id")
        if tag == "svg" and element_id:
            self._chart = element_id
            self.lines_by_chart[element_id] = {}
        if tag == "polyline" and self._chart is not None:
            points = attributes.get("data-points") or "0"
            self.lines_by_chart[self._chart][attributes.get("data-series") or ""] = int(points)
        if element_id:
            self.attributes_by_id[element_id] = attributes
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
        if tag == "svg":
            self._chart = None
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


CHARTS = ("chart-throughput", "chart-lag", "chart-latency", "chart-dead-letters")
SHOW_LINE = re.compile(r"^python app\.py dlq show (\d+:\d+)$")
SOURCE = re.compile(r"^[a-z.]+\[\d+\]@\d+$")


def wait_for_status(worker: Worker, busy: BusyHub, timeout_s: float = 90.0) -> dict[str, Any]:
    """The status JSON once the dead letters are counted and charted, with lag sampled."""

    def charted(status: dict[str, Any]) -> bool:
        history = status["history"]
        rates = history["dead_letters_per_minute"]
        counted = status["dead_letters_by_reason"]
        return (
            all(counted.get(reason, 0) >= n for reason, n in busy.dead_letters_by_reason.items())
            and all(
                any(value > 0 for _, value in rates.get(reason, []))
                for reason in busy.dead_letters_by_reason
            )
            and len(history["events_per_second"]["in"]) >= 3
            and len(history["event_to_posting_s"]["p50"]) >= 2
            and len(status["recent_dead_letters"]) == 20
            # Every business line the page is checked for below, each from its own table.
            and status["business"]["budgets_exceeded"] >= 1
            and status["business"]["customers_over"] >= 1
            and status["business"]["vendors_overdue"] >= 1
            and bool(status["lag"])
        )

    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = worker.get("/api/v1/fin/status").json()
        if charted(status):
            return status
        time.sleep(1.0)
    shown = {key: status.get(key) for key in ("dead_letters_by_reason", "business")}
    raise AssertionError(f"the status never showed the busy hub: {str(shown)[:3000]}")


def test_the_status_page_shows_charts_business_and_dead_letters_in_headless_chromium(
    busy_hub: BusyHub, tmp_path: Path
) -> None:
    worker = busy_hub.worker
    status = wait_for_status(worker, busy_hub)
    # `make status-screenshot` lets the charts fill for a while before the picture for docs/.
    time.sleep(float(os.environ.get("FIN_STATUS_SCREENSHOT_AFTER_S", "0")))
    url = f"{worker.url}/?key={busy_hub.deployment.api_key}"
    screenshot = tmp_path / "status-page.png"

    dumped = chromium(url, tmp_path / "profile-dom", "--dump-dom")
    shot = chromium(url, tmp_path / "profile-shot", f"--screenshot={screenshot}")

    assert dumped.returncode == 0, dumped.stderr.decode(errors="replace")[-2000:]
    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-2000:]
    page = StatusPage()
    page.feed(dumped.stdout.decode())
    # Readiness and integrity at the top; the counters of one render agree with each other.
    assert page.text_by_id["state"] == "ready"
    assert page.text_by_id["integrity"].strip() == "no failures"
    consumed_rows = {name: number(count) for name, count in page.rows_by_table["consumed-by-topic"]}
    assert number(page.text_by_id["consumed-total"]) == sum(consumed_rows.values())
    assert {"fin.commands", "hr.events", "crm.events"} <= set(consumed_rows)
    posted_rows = {name: number(count) for name, count in page.rows_by_table["posted-by-type"]}
    assert posted_rows["hr.payroll.processed"] >= 1
    # Charts: every one drawn with points, the lines the page promises.
    for chart in CHARTS:
        assert number(page.attributes_by_id[chart]["data-points"] or "0") >= 2, chart
    assert set(page.lines_by_chart["chart-throughput"]) == {"in", "posted", "rejected"}
    assert page.lines_by_chart["chart-throughput"]["in"] >= 2
    assert {"hr.events", "fin.internal.by-event-id"} <= set(page.lines_by_chart["chart-lag"])
    assert set(page.lines_by_chart["chart-latency"]) == {"p50", "p99"}
    reasons = {reason.value for reason in Reason}
    assert set(page.lines_by_chart["chart-dead-letters"]) <= reasons
    assert set(busy_hub.dead_letters_by_reason) <= set(page.lines_by_chart["chart-dead-letters"])
    # Lag: topics collapsed, every partition one click away.
    lag_rows = page.rows_by_table["lag"]
    assert lag_rows[0] == ["topic", "partition", "lag"]
    assert len(lag_rows) - 1 == len(status["lag"])
    topic_rows = page.rows_by_table["lag-by-topic"][1:]
    assert {row[0] for row in topic_rows} == {row[0] for row in lag_rows[1:]}
    assert sum(number(row[1]) for row in topic_rows) == len(lag_rows) - 1
    # Business: the budget cut below its actual is at stop; customers and vendors from the demo.
    assert number(page.text_by_id["budgets-stop"]) >= 1
    budget_rows = page.rows_by_table["budgets-at-risk"][1:]
    assert ["ENG-001", "SALARY", "2024-Q1"] in [row[:3] for row in budget_rows]
    assert [row[-1] for row in budget_rows if row[:3] == ["ENG-001", "SALARY", "2024-Q1"]] == [
        "stop"
    ]
    assert number(page.text_by_id["customers-over"]) >= 1
    assert len(page.rows_by_table["customers-over-limit"]) > 1
    assert number(page.text_by_id["vendors-overdue"]) >= 1
    assert len(page.rows_by_table["vendors-overdue-top"]) > 1
    # The last 20 dead letters, each with its reason, source and the command to inspect it.
    letters = page.rows_by_table["recent-dead-letters"][1:]
    assert len(letters) == 20
    positions = []
    for _, reason, source, _, show in letters:
        assert reason in reasons
        assert SOURCE.match(source), source
        matched = SHOW_LINE.match(show)
        assert matched, show
        positions.append(matched.group(1))
    shown = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "dlq", "show", positions[0]],
        env={**os.environ, **busy_hub.deployment.env()},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert letters[0][1] in shown.stdout
    assert screenshot.stat().st_size > 50_000, "a blank page compresses to almost nothing"
    assert png_size(screenshot) == WINDOW
    keep = os.environ.get("FIN_STATUS_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, ROOT / keep)
