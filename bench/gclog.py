"""The local broker's garbage-collector pauses, read from its GC log (``-Xlog:gc``).

A stop-the-world pause of the broker holds every produce and fetch answer for its length, so
an end-to-end latency's tail on this machine can be the broker's rather than the contestant's.
``ops/kafka.sh`` starts the broker with a GC log as Kafka's own start script does (its
``-loggc``), with wall-clock decorations (``time``), so the pauses inside a load's window can
be counted beside that load's latency (``bench/latency.py``).

A log line looks like::

    [2026-12-05T00:25:05.129+0000][392.907s] GC(155) Pause Full (Allocation Failure) 303M->...

The decoration is the time the line was written, which for a pause is its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_FILE_OPTION = re.compile(r"^-Xlog:gc[^:]*:file=([^:]+)")
_PAUSE = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4})\].*?"
    r"\bPause (?P<kind>\w+)\b.*\s(?P<ms>\d+(?:\.\d+)?)ms\s*$"
)


@dataclass(frozen=True)
class Pause:
    ended_at: float  # epoch seconds
    kind: str  # "Young", "Full", "Remark", ...
    ms: float


@dataclass(frozen=True)
class PauseSummary:
    count: int
    total_ms: float
    max_ms: float
    max_kind: str | None

    def to_json(self) -> dict[str, float | int | str | None]:
        return {
            "count": self.count,
            "total_ms": round(self.total_ms, 1),
            "max_ms": round(self.max_ms, 1),
            "max_kind": self.max_kind,
        }


def log_path(arguments: Sequence[str]) -> Path | None:
    """The GC log file named by a JVM's command line (``-Xlog:gc...:file=PATH...``)."""
    for argument in arguments:
        found = _FILE_OPTION.match(argument)
        if found:
            return Path(found.group(1))
    return None


def log_path_of(pid: int | None) -> Path | None:
    """The GC log of a running JVM, from its command line in /proc (None: none, or no pid)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return log_path([part.decode(errors="replace") for part in raw.split(b"\0") if part])


def parse(lines: Iterable[str]) -> list[Pause]:
    pauses: list[Pause] = []
    for line in lines:
        found = _PAUSE.match(line)
        if found is None:
            continue
        ended = datetime.strptime(found.group("time"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        pauses.append(Pause(ended, found.group("kind").strip(), float(found.group("ms"))))
    return pauses


def read(path: Path) -> list[Pause]:
    """Every pause in ``path`` and the files the JVM rotated it to (``path.0``, ``path.1``...)."""
    pauses: list[Pause] = []
    for candidate in [*sorted(path.parent.glob(path.name + ".*")), path]:
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                pauses.extend(parse(handle))
        except OSError:
            continue
    return pauses


def between(pauses: Iterable[Pause], start: float, end: float) -> PauseSummary:
    """The pauses that overlap [start, end] (epoch seconds)."""
    inside = [p for p in pauses if p.ended_at >= start and p.ended_at - p.ms / 1000 <= end]
    longest = max(inside, key=lambda p: p.ms, default=None)
    return PauseSummary(
        count=len(inside),
        total_ms=sum(p.ms for p in inside),
        max_ms=longest.ms if longest else 0.0,
        max_kind=longest.kind if longest else None,
    )
