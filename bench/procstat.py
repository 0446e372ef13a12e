"""CPU time and memory of another process, read from /proc (Linux), without psutil."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system time of every thread of the process
    rss_kb: int
    peak_rss_kb: int  # VmHWM: the high-water mark of the resident set


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        text = handle.read()
    # The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def sample(pid: int) -> ProcSample:
    rss, peak = memory_kb(pid)
    return ProcSample(cpu_seconds(pid), rss, peak)


def broker_pid() -> int | None:
    """The pid of the one local Kafka broker (a JVM running ``kafka.Kafka``), or None when
    there is none or more than one (the broker is then not this machine's to account for)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                arguments = handle.read().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in arguments:
            found.append(int(entry))
    return found[0] if len(found) == 1 else None


def cpu_seconds_or_none(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def wait_until_quiet(
    pid: int | None, *, cores: float = 0.2, window_s: float = 1.0, timeout_s: float = 30.0
) -> tuple[float, float | None]:
    """Wait until ``pid`` used at most ``cores`` over a whole ``window_s`` (a broker compacting
    or flushing what was just written to it), at most ``timeout_s``: (seconds waited, the
    cores of the last window; None without a process to watch)."""
    started = time.monotonic()
    last: float | None = None
    while pid is not None and time.monotonic() - started < timeout_s:
        before = cpu_seconds_or_none(pid)
        time.sleep(window_s)
        after = cpu_seconds_or_none(pid)
        if before is None or after is None:
            return time.monotonic() - started, None
        last = (after - before) / window_s
        if last <= cores:
            break
    return time.monotonic() - started, last
