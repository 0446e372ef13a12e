"""Workers dying under load: kill -9, SIGTERM mid-batch, a rebalance, a wiped RocksDB directory.

Each test runs the seeded mixed stream of the ledger end-to-end test through its own FIN on the
fault suite's private broker, injects its fault while the workers are processing (the consumer
group is behind when it strikes, asserted), lets a supervisor restart what was killed, and then
checks the invariant of issue 6 (``FaultRun.verify``): the books read over REST equal the
independent reference ledger and every trial balance is zero; every input record has exactly
one outcome (durable integrity counts, one distinct entry per posting on the ledger topic, one
dead letter per refused source record); no change was applied twice to any table.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.recovery import snapshot
from tables.chunked import header_of
from tests.faults.conftest import MakeRun

pytestmark = pytest.mark.faults


def test_a_worker_killed_with_sigkill_three_times_under_load_still_books_every_event_once(
    make_run: MakeRun,
) -> None:
    """Invariant: three kill -9 of the only worker at random points of the load (mid-stream,
    again while the restarted worker rejoins the group and restores its tables, and
    mid-stream once more), each followed by a restart, leave the books equal to the reference
    ledger, every record with exactly one outcome, and no delta applied twice."""
    run = make_run(name="kill -9 x3", seed=11, events=600)
    worker = run.start_worker()
    run.publish()
    first, second = sorted(run.rng.uniform(0.1, 0.7) for _ in range(2))

    run.wait_for_progress(first)
    lags = [run.lag()]
    run.kill(worker)
    run.restart(worker)
    # Right after readiness: the group is still settling and the tables just came back.
    run.sleep(run.rng.uniform(0.0, 1.5))
    lags.append(run.lag())
    run.kill(worker)
    run.restart(worker)
    run.wait_for_progress(second)
    lags.append(run.lag())
    run.kill(worker)
    run.restart(worker)

    assert all(lag > 0 for lag in lags), f"a kill struck an idle worker: lags {lags}"
    run.finish()


def test_a_worker_stopped_with_sigterm_in_the_middle_of_a_batch_stops_cleanly_and_loses_nothing(
    make_run: MakeRun,
) -> None:
    """Invariant: SIGTERM while the worker is in the middle of its records makes it stop by
    itself within 30 s; restarted, it finishes the load with the books equal to the reference
    ledger, every record with exactly one outcome and no delta applied twice."""
    run = make_run(name="SIGTERM mid-batch", seed=12, events=400)
    worker = run.start_worker()
    run.publish()
    run.wait_for_progress(run.rng.uniform(0.3, 0.6))
    lag = run.lag()

    code, _ = run.terminate(worker)
    run.restart(worker)

    assert lag > 0, "SIGTERM struck an idle worker"
    assert code is not None, "the worker did not stop within 30 s of SIGTERM and was killed"
    run.finish()


def test_a_second_worker_joining_mid_load_and_one_worker_killed_after_leave_the_books_whole(
    make_run: MakeRun,
) -> None:
    """Invariant: a second worker joining the group while the first is processing (a
    rebalance that moves partitions and their tables), then kill -9 of one of the two (another
    rebalance, onto the survivor, which restores the dead worker's tables from changelogs),
    leave the books equal to the reference ledger, every record with exactly one outcome, and
    no delta applied twice."""
    run = make_run(name="rebalance", seed=13, events=600)
    first = run.start_worker()
    # The load in two halves, the second sent once the group of two is stable: the group takes
    # seconds to settle, and a fast hub drained all 600 events meanwhile (seen 2026-12-03:
    # lags [629, 0]), so the kill struck an idle group.
    half = len(run.load) // 2
    run.publish(run.load[:half])
    join_at, kill_at = run.rng.uniform(0.1, 0.3), run.rng.uniform(0.5, 0.7)

    run.wait_for_progress(join_at)
    lags = [run.lag()]
    second = run.start_worker()
    run.wait_for_stable_group(2)
    run.publish(run.load[half:])
    run.wait_for_progress(kill_at)
    lags.append(run.lag())
    victim = run.rng.choice([first, second])
    killed_at = time.monotonic()
    run.kill(victim)
    takeover_s = run.seconds_until_takeover(killed_at)

    assert all(lag > 0 for lag in lags), f"the rebalance struck an idle group: lags {lags}"
    # Not a speed figure: it proves the short session timeout is in force (faust's default of
    # 60 s stalled the group 60-90 s after a SIGKILL); this machine measured ~10-20 s. None:
    # the killed worker's partitions were already drained, so no stall could be timed (seen
    # once under load, 2026-12-03); the books are still checked by run.finish().
    if takeover_s is not None:
        assert takeover_s < 45, f"the group stalled {takeover_s:.0f}s after the kill"
    run.finish()


def test_tables_rebuilt_from_changelogs_after_the_rocksdb_directory_is_wiped_equal_what_they_were(
    make_run: MakeRun,
) -> None:
    """Invariant: a worker whose RocksDB directory is deleted rebuilds every table from its
    changelog to exactly what it was: after a kill -9 under load and a restart on the same
    directory, then a settled load, a clean stop, the wipe and a restart, every REST answer
    equals the one before the wipe, the books equal the reference ledger, and the rebuilt
    idempotency table still recognises every duplicate, compensation and conflict of the
    follow-up."""
    run = make_run(name="RocksDB wiped", seed=14, events=400)
    worker = run.start_worker()
    run.publish()
    run.wait_for_progress(run.rng.uniform(0.3, 0.6))
    lag = run.lag()
    run.kill(worker)
    run.restart(worker)
    main = run.expected(with_follow_up=False)
    run.settle_for(main)
    before = run.books()

    code, _ = run.terminate(worker)
    chunked_rows = chunked_row_count(run.tables_dir(worker))
    run.wipe_tables(worker)
    run.restart(worker)
    after = run.books()

    assert lag > 0, "the kill struck an idle worker"
    assert code is not None, "the worker did not stop within 30 s of SIGTERM"
    # The harness writes rows over 1 KiB in chunks: some of them were rebuilt from chunks.
    assert chunked_rows > 0, "no row was written in chunks: the restore did not read any"
    assert after == before, run.book_differences(before, after)
    run.finish()


def chunked_row_count(directory: Path) -> int:
    """Rows stored as a chunked header in the stopped worker's RocksDB (tables/chunked.py)."""
    found = snapshot(next(directory.glob("v*/tables")))
    return sum(
        1 for rows in found.rows.values() for value in rows.values() if header_of(value) is not None
    )
