"""FIN's dependencies failing under load: a hard broker restart, a schema registry outage.

Both use the fault suite's private broker and registry (never `make up`'s): the broker JVM is
killed with SIGKILL and started again with ``ops/kafka.sh start``; the registry is stopped and
started with ``ops/registry.sh``. Each test then checks the invariant of issue 6
(``FaultRun.verify``) against the independent reference ledger.
"""

from __future__ import annotations

import pytest

from streams.schema_cache import RECOVERY_GRACE_S
from tests.faults.conftest import MakeRun
from tests.faults.harness import SETTLE_TIMEOUT_S, Evolved, wait_until

pytestmark = pytest.mark.faults

SCHEMA_REGISTRY = "schema_registry"
OPEN = 2
CLOSED = 0


def test_a_hard_restart_of_the_broker_under_load_loses_nothing_and_applies_nothing_twice(
    make_run: MakeRun,
) -> None:
    """Invariant: kill -9 of the broker while the worker is processing, and a start of the
    broker a few seconds later, need nobody: the worker (restarted by a supervisor if it gave
    up, which is reported) finishes the load with the books equal to the reference ledger,
    every record with exactly one outcome and no delta applied twice; the registry, whose
    storage lives on that broker, answers again."""
    run = make_run(name="broker kill -9", seed=21, events=400)
    run.start_worker()
    run.publish()
    run.wait_for_progress(run.rng.uniform(0.2, 0.5))
    lag = run.lag()

    run.kill_broker()
    run.sleep(run.rng.uniform(1.0, 4.0))
    run.start_broker()

    assert lag > 0, "the broker died under an idle worker"
    seconds = wait_until(run.registry_answers, timeout_s=60, what="the registry answering")
    run.log(f"registry answering {seconds:.1f}s after the broker came back")
    run.finish(exits_allowed=True)


def test_a_registry_outage_during_load_holds_records_back_and_dead_letters_none_of_them(
    make_run: MakeRun,
) -> None:
    """Invariant: while the schema registry is down, records written with a schema version
    the worker has not cached yet wait (retried with backoff; the circuit breaker opens, so
    fin_circuit_breaker_state is 2) instead of being dead-lettered; once the registry is back
    the breaker closes by itself (state 0) and the books equal the reference ledger, with
    every record having exactly one outcome and no dead letter beyond the bad records."""
    run = make_run(name="registry outage", seed=22, events=400)
    worker = run.start_worker()
    # Version 2 of every event schema, registered before the outage; the worker has only
    # ever seen version 1, so the records written with version 2 need the registry.
    evolved = Evolved.register(run)
    bad = {(letter.key, letter.value) for letter in run.scenario.dead_letters}
    cut = len(run.scenario.main) // 3
    before = run.scenario.main[:cut]
    during = [
        record if (record.key, record.value) in bad else evolved.reencode(record)
        for record in run.scenario.main[cut:]
    ]
    run.load = [*before, *during]
    run.publish(before)
    run.settle(events_in=len(before), entries=0)
    retries_before = run.retries([worker], SCHEMA_REGISTRY)
    assert run.breaker_state(worker) == CLOSED

    run.stop_registry()
    run.publish(during)
    opened_after = wait_until(
        lambda: run.breaker_state(worker) == OPEN, timeout_s=60, what="the breaker open"
    )
    run.log(f"circuit breaker open {opened_after:.1f}s after the outage began")
    run.sleep(run.rng.uniform(1.0, 3.0))
    lag = run.lag()
    still_open = run.breaker_state(worker)
    run.start_registry()

    assert lag > 0, "nothing was waiting for the registry"
    assert still_open != CLOSED, "the breaker closed while the registry was still down"
    # The scenario's records with schema ids no registry knows come after the outage: each is
    # retried for up to RECOVERY_GRACE_S (a registry that just came back may still be loading)
    # before it is dead-lettered, so the stream settles that much later (56 s on a quiet
    # machine; over 75 s once with the main suite running beside it).
    run.finish(follow_up=False, settle_timeout_s=RECOVERY_GRACE_S + SETTLE_TIMEOUT_S)
    assert run.breaker_state(worker) == CLOSED
    assert run.retries([worker], SCHEMA_REGISTRY) > retries_before
