"""The broker's GC pauses read from its log (bench/gclog.py), the slow tail of a latency load
(bench/latency.py ``slow_tail``) and their line in the report."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import gclog
from bench.latency import slow_tail
from bench.measure import LatencyResult
from bench.report import latency_tail_line
from tests.unit.bench.test_latency_cpu import result as latency_result

# Lines as JDK 17 writes them with -Xlog:gc:file=...:time,uptime (Serial and G1).
LOG = "\n".join(
    [
        "[2026-12-05T00:39:06.034+0000][0.003s] Using Serial",
        "[2026-12-05T00:39:06.982+0000][0.951s] GC(0) Pause Full (Metadata GC Threshold) "
        "65M->8M(247M) 29.976ms",
        "[2026-12-05T00:39:07.504+0000][1.473s] GC(1) Pause Young (Allocation Failure) "
        "77M->12M(247M) 8.894ms",
        "[2026-12-05T00:39:10.000+0000][3.969s] GC(2) Pause Young (Prepare Mixed) "
        "(G1 Preventive Collection) 515M->247M(524M) 14.731ms",
        "[2026-12-05T00:39:12.000+0000][5.969s] GC(3) Pause Remark 264M->263M(524M) 17.828ms",
        "[2026-12-05T00:39:20.000+0000][13.969s] GC(4) Pause Full (Allocation Failure) "
        "303M->210M(509M) 175.819ms",
    ]
)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_every_pause_is_read_with_its_kind_length_and_wall_clock_end() -> None:
    pauses = gclog.parse(LOG.splitlines())
    assert [(p.kind, p.ms) for p in pauses] == [
        ("Full", 29.976),
        ("Young", 8.894),
        ("Young", 14.731),
        ("Remark", 17.828),
        ("Full", 175.819),
    ]
    assert pauses[1].ended_at == epoch("2026-12-05T00:39:07.504+00:00")


def test_a_window_counts_the_pauses_that_overlap_it() -> None:
    pauses = gclog.parse(LOG.splitlines())
    start, end = epoch("2026-12-05T00:39:09+00:00"), epoch("2026-12-05T00:39:19.9+00:00")
    # The full pause ended at :20.000 after 175.8 ms, so it began inside the window.
    summary = gclog.between(pauses, start, end)
    assert (summary.count, summary.max_kind) == (3, "Full")
    assert summary.max_ms == 175.819
    assert round(summary.total_ms, 3) == round(14.731 + 17.828 + 175.819, 3)
    empty = gclog.between(pauses, end + 60, end + 70)
    assert (empty.count, empty.total_ms, empty.max_kind) == (0, 0.0, None)


def test_the_log_is_found_on_the_command_line_and_read_with_its_rotated_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gc.log"
    lines = LOG.splitlines()
    (tmp_path / "gc.log.0").write_text("\n".join(lines[:3]) + "\n")
    path.write_text("\n".join(lines[3:]) + "\n")
    arguments = ["java", "-Xmx1g", f"-Xlog:gc:file={path}:time,uptime:filecount=2", "kafka.Kafka"]
    assert gclog.log_path(arguments) == path
    assert gclog.log_path(["java", "-Xlog:gc*", "kafka.Kafka"]) is None
    assert len(gclog.read(path)) == 5
    assert gclog.log_path_of(None) is None


def test_the_slow_tail_names_the_seconds_of_the_load_its_events_were_sent_in() -> None:
    first = 1_000_000
    tail = slow_tail([first + 2_100, first + 2_900, first + 11_000], first, measured=300)
    assert tail == {
        "over_ms": 100.0,
        "first_sent_ms": first,
        "count": 3,
        "share": 0.01,
        "seconds": [2, 11],
    }
    assert slow_tail([], first, measured=0)["share"] == 0.0


def test_the_report_puts_the_tail_beside_the_broker_pauses() -> None:
    def result(slow: dict[str, Any] | None, gc: dict[str, Any] | None) -> LatencyResult:
        return replace(latency_result("hub", 0.5, None, None), slow=slow, broker_gc=gc)

    slow = {"over_ms": 100.0, "count": 6, "share": 0.02, "seconds": [4, 5]}
    gc = {"count": 9, "total_ms": 270.4, "max_ms": 175.8, "max_kind": "Full"}
    line = latency_tail_line([result(slow, gc)])
    assert line is not None
    assert "hub 50%: 6 over 100 ms (2.0%) in 2 s (s4, s5)" in line
    assert "broker GC 9 pauses, 270 ms in all, longest 176 ms (Full)" in line
    assert latency_tail_line([result(None, None)]) is None
