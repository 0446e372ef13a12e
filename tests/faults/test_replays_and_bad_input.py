"""Input FIN must survive: a full replay from offset 0, poison bytes, duplicates elsewhere.

Each test runs the seeded mixed stream of the ledger end-to-end test through its own FIN on the
fault suite's private broker and checks the invariant of issue 6 (``FaultRun.verify``) against
the independent reference ledger.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeRun
from tests.faults.harness import PARTITIONS, Pinned, insert_at_random, poison, valid_records
from tests.integration.ledger_helpers import Outgoing, key_on_another_partition, partition_of

pytestmark = pytest.mark.faults

POISON_RECORDS = 140
COPIED_PER_MILLE = 250


def test_a_full_replay_from_offset_zero_changes_no_balance_and_no_count(
    make_run: MakeRun,
) -> None:
    """Invariant: with the consumer group reset to the earliest offsets (workers stopped,
    ``kafka-consumer-groups --reset-offsets --to-earliest --all-topics``, workers started),
    FIN reads every topic again from the start and changes nothing: every REST answer is
    what it was, the books equal the reference ledger, the durable outcome counts are
    unchanged, and the ledger topic holds no entry that is not a copy of an existing one."""
    run = make_run(name="group reset to 0", seed=31, events=400)
    worker = run.start_worker()
    run.publish()
    expected = run.finish()
    before = run.books()

    code, _ = run.terminate(worker)
    run.wait_for_empty_group()
    run.reset_group_to_earliest()
    run.restart(worker)
    run.settle_for(expected)
    after = run.books()

    assert code is not None, "the worker did not stop within 30 s of SIGTERM"
    assert after == before, "a full replay changed what FIN answers"
    run.verify(expected)


def test_poison_bytes_mixed_into_the_load_are_each_dead_lettered_exactly_once(
    make_run: MakeRun,
) -> None:
    """Invariant: random bytes, wrong magic bytes, records too short for a header,
    tombstones, unknown schema ids, truncated Avro and Avro with bytes appended, mixed at
    random into the load on every input topic, each become exactly one dead letter with the
    reason their construction implies, and stop nothing: the books equal the reference ledger
    and every other record has exactly one outcome."""
    run = make_run(name="poison bytes", seed=32, events=400)
    poisoned = poison(run.rng, valid_records(run.scenario), POISON_RECORDS)
    insert_at_random(run.rng, run.load, (record for record, _ in poisoned))
    run.extra_dead_letters = [(record.key, record.value, reason) for record, reason in poisoned]
    run.start_worker()
    run.publish()

    run.finish(follow_up=False)

    findings = run.findings
    assert findings.dead_letter_records == findings.distinct_dead_letters, (
        f"{findings.reemitted_dead_letters} dead letter(s) written twice without any crash"
    )


def test_duplicates_sent_under_other_keys_or_to_other_partitions_are_booked_once(
    make_run: MakeRun,
) -> None:
    """Invariant: a quarter of the events sent again, half under another key that hashes to
    another partition and half with their own key but produced to another partition, and
    mixed anywhere into the load (so a copy may arrive before its original, through another
    worker), are each counted as exactly one duplicate: the books equal the reference ledger,
    each event has exactly one journal entry, and nothing is dead-lettered for it."""
    run = make_run(name="duplicates elsewhere", seed=33, events=400)
    copies: list[Outgoing | Pinned] = []
    valid = valid_records(run.scenario)
    for record in run.rng.sample(valid, len(valid) * COPIED_PER_MILLE // 1000):
        assert record.key is not None
        if run.rng.random() < 0.5:
            other_key = key_on_another_partition(record.key, PARTITIONS)
            copies.append(Outgoing(record.topic, other_key, record.value))
        else:
            own = partition_of(record.key, PARTITIONS)
            elsewhere = (own + run.rng.randint(1, PARTITIONS - 1)) % PARTITIONS
            copies.append(Pinned(record, elsewhere))
    insert_at_random(run.rng, run.load, copies)
    run.extra_duplicates = len(copies)
    run.start_worker()
    run.start_worker()
    run.wait_for_stable_group(2)
    run.publish()

    run.finish(follow_up=False)

    findings = run.findings
    assert findings.reemitted_entries == 0, "entries written twice without any crash"
