"""Where a process spends its time: py-spy sampling, summarised as the top frames.

py-spy (``pip install py-spy``; not a FIN dependency) attaches to a running process from the
outside. Its raw output is one line per distinct stack, "frame;frame;...;leaf count"; the
summary counts, per function, the samples where it is the leaf (self time) and the samples
where it is anywhere on the stack (total time).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Frames every sample passes through (the event loop and process entry): no information.
ROOT_FRAMES = (
    "(asyncio/base_events.py)",
    "(asyncio/events.py)",
    "(mode/worker.py)",
    "(app.py)",
    "(streams/worker.py)",
    "(runpy.py)",
    "(threading.py)",
)
PROJECT_PACKAGES = ("ledger", "schemas", "streams", "api", "tables", "demo", "registry")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@dataclass
class Sampler:
    process: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def attach(cls, pid: int, output: Path, rate: int = 250) -> Sampler | None:
        executable = py_spy()
        if executable is None:
            return None
        process = subprocess.Popen(
            [
                executable,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(output),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(process, output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = path.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
    return f"{match['function']} ({path})"


def summarise(raw: Path, top: int = 10) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame.strip()]
        # py-spy puts the thread name first ("process 123:\"...\"" / "thread (0x..)").
        frames = [frame for frame in frames if " (" in frame]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        self_time[leaf] += count
        by_package[_package(leaf)] += count
        for frame in set(frames):
            if not frame.endswith(ROOT_FRAMES):
                total_time[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "samples": count, "share": round(count / samples, 4)}
            for frame, count in counter.most_common(top)
        ]

    return {
        "samples": samples,
        "note": "py-spy counts only samples where a thread was running (not idle)",
        "top_self": share(self_time),
        "top_total": share(total_time),
        "self_by_package": share(by_package),
    }


def _package(frame: str) -> str:
    """Where a frame's code lives: FIN's own packages by name, else the library."""
    path = frame[frame.rfind("(") + 1 : -1]
    head = path.split("/", 1)[0] if "/" in path else ""
    if head in PROJECT_PACKAGES:
        return f"FIN {head}/"
    if not head:
        return "stdlib (top-level modules)" if path.endswith(".py") else path
    return head
