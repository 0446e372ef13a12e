"""The hand-over of delivered by-event-id records from the ingest agent to the posting agent
(streams/handoff.py): every record processed once, in its partition's offset order, whichever
way it came; nothing acknowledged to faust that faust did not deliver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from settings import BY_EVENT_ID_TOPIC, LEDGER_TOPIC
from streams.effects import Send
from streams.handoff import HandedEvent, HandedMessage, Handoff, is_handed
from streams.inflight import BatchDelivery, InFlight
from streams.metrics import Metrics
from streams.take import take_ready
from tests.unit.streams.test_batched import AckRecorder, FakeProducer, GatedBox, _outbox
from tests.unit.streams.test_take import FakeEvent, FakeStream

TOPIC = "t.fin.internal.by-event-id"


@dataclass
class FakeApp:
    rebalancing: bool = False


@dataclass(frozen=True)
class Metadata:
    partition: int
    offset: int


@dataclass(frozen=True)
class ConsumedMessage:
    partition: int
    offset: int


@dataclass(frozen=True)
class Consumed:
    """A record as faust's stream delivers it (only what ``claim`` reads)."""

    message: ConsumedMessage


def consumed(partition: int, offset: int) -> Consumed:
    return Consumed(ConsumedMessage(partition, offset))


def handed(partition: int, offset: int) -> HandedEvent:
    return HandedEvent(HandedMessage(TOPIC, partition, offset, b"k", b"v", []))


def offered(handoff: Handoff, *positions: tuple[int, int]) -> None:
    handoff.offer(
        (Send(BY_EVENT_ID_TOPIC, b"id-%d" % offset, b"bytes", (("h", b"1"),)), Metadata(p, offset))
        for p, offset in positions
    )


def claims(handoff: Handoff, events: list[Any]) -> list[bool]:
    return [handoff.claim(event) for event in events]


def test_a_handed_record_is_processed_only_when_it_is_next_in_its_partition() -> None:
    handoff = Handoff(FakeApp(), TOPIC)
    assert claims(
        handoff,
        [
            handed(0, 4),  # nothing consumed from partition 0 yet: where it starts is unknown
            consumed(0, 4),
            handed(0, 5),
            handed(0, 7),  # 6 (another worker's record, say) has not been processed
            consumed(0, 5),  # the fetched copy of the handed 5
            consumed(0, 6),
            consumed(0, 7),  # the handed 7 was refused: processed as fetched
            handed(0, 8),
            handed(1, 8),  # another partition: its own position
        ],
    ) == [False, True, True, False, False, True, True, True, False]


def test_every_offset_is_processed_once_in_order_however_the_two_ways_interleave() -> None:
    handoff = Handoff(FakeApp(), TOPIC)
    arrivals: list[Any] = [consumed(2, 0)]
    for offset in range(1, 40):
        # the hand-over is sometimes faster than the fetch, sometimes not, sometimes lost
        if offset % 3:
            arrivals.append(handed(2, offset))
        arrivals.append(consumed(2, offset))
        if offset % 5 == 0:
            arrivals.append(handed(2, offset))  # late: the fetched copy was first
    processed = [event.message.offset for event in arrivals if handoff.claim(event)]
    assert processed == list(range(40))


def test_nothing_is_handed_over_or_claimed_while_a_rebalance_is_going_on() -> None:
    app = FakeApp()
    handoff = Handoff(app, TOPIC)
    assert handoff.claim(consumed(0, 10))
    app.rebalancing = True
    offered(handoff, (0, 11))
    assert len(handoff) == 0
    assert not handoff.claim(handed(0, 11))
    assert handoff.claim(consumed(0, 11))


def test_after_a_revocation_positions_are_learnt_again_from_consumed_records() -> None:
    handoff = Handoff(FakeApp(), TOPIC)
    assert claims(handoff, [consumed(0, 0), handed(0, 1), handed(0, 2)]) == [True, True, True]
    offered(handoff, (0, 3))
    handoff.forget()
    assert len(handoff) == 0
    # Re-read from the committed offset after the rebalance: processed again (the processed
    # table answers them as replays), never skipped on a position from before it.
    assert claims(handoff, [handed(0, 3), consumed(0, 1), consumed(0, 2), handed(0, 3)]) == [
        False,
        True,
        True,
        True,
    ]


def test_offered_records_carry_the_brokers_position_and_the_sent_bytes_in_order() -> None:
    handoff = Handoff(FakeApp(), TOPIC)
    assert claims(handoff, [consumed(1, 6), consumed(0, 2)]) == [True, True]
    offered(handoff, (1, 7), (0, 3), (1, 8))
    taken = handoff.take(2)
    assert [(e.message.partition, e.message.offset) for e in taken] == [(1, 7), (0, 3)]
    first = taken[0].message
    assert (first.topic, first.key, first.value, first.headers) == (
        TOPIC,
        b"id-7",
        b"bytes",
        [("h", b"1")],
    )
    assert handoff.ready.is_set()
    assert claims(handoff, taken) == [True, True]  # processed: 8 is next in partition 1 now
    assert [e.message.offset for e in handoff.take(10)] == [8]
    assert not handoff.ready.is_set() and len(handoff) == 0


def test_a_full_queue_drops_what_does_not_fit_and_counts_every_outcome() -> None:
    registry = CollectorRegistry()
    counter = Metrics(registry).handoff_records
    handoff = Handoff(FakeApp(), TOPIC, counter=counter, limit=2)
    offered(handoff, (0, 1), (0, 2), (0, 3))
    assert len(handoff) == 2
    handoff.claim(consumed(0, 0))
    claims(handoff, [*handoff.take(2), consumed(0, 1), handed(0, 9)])

    def count(outcome: str) -> float | None:
        return registry.get_sample_value("fin_handoff_records_total", {"outcome": outcome})

    assert [count(o) for o in ("posted", "skipped", "refused", "dropped")] == [2, 1, 1, 1]


def test_the_outbox_reports_each_delivered_record_of_a_topic_with_its_position() -> None:
    async def scenario() -> list[tuple[bytes | None, int, int | None]]:
        box = _outbox(FakeProducer())
        await box.send(Send(BY_EVENT_ID_TOPIC, b"a", b"1", partition=2))
        await box.send(Send(LEDGER_TOPIC, b"e", b"x", partition=2))
        await box.send(Send(BY_EVENT_ID_TOPIC, b"b", b"2", partition=2))
        assert box.delivered_to(BY_EVENT_ID_TOPIC) == []  # not delivered yet
        await box.delivered()
        return [
            (send.key, meta.offset, meta.partition)
            for send, meta in box.delivered_to(BY_EVENT_ID_TOPIC)
        ]

    assert asyncio.run(scenario()) == [(b"a", 0, 2), (b"b", 1, 2)]


def test_take_ready_yields_handed_records_first_and_wakes_for_them_when_idle() -> None:
    """(Only records ``claim`` will accept are yielded: the rest come by fetch.)"""

    async def scenario() -> list[list[Any]]:
        stream = FakeStream()
        handoff = Handoff(FakeApp(), TOPIC)
        batches: list[list[Any]] = []
        handoff.claim(consumed(0, 0))
        offered(handoff, (0, 1), (0, 2))
        stream.channel.queue.put_nowait(FakeEvent(100))

        async def collect() -> None:
            taken = take_ready(stream, 10, 0.0, 0.001, side=handoff)  # type: ignore[arg-type]
            async for batch in taken:
                for event in batch:  # as the posting agent does
                    if is_handed(event):
                        assert handoff.claim(event)
                batches.append(
                    [
                        ("handed", e.message.offset) if is_handed(e) else ("consumed", e.value)
                        for e in batch
                    ]
                )
                if len(batches) == 3:
                    return

        task = asyncio.ensure_future(collect())
        await asyncio.sleep(0.05)  # both ways taken; the agent now idles
        # Wakes it without a consumed record; 7 is not next in its partition: never yielded.
        offered(handoff, (0, 3), (0, 7))
        try:
            await asyncio.wait_for(task, 5)
        finally:
            stream.close()
        return batches

    assert asyncio.run(scenario()) == [
        [("handed", 1), ("handed", 2)],
        [("consumed", 100)],
        [("handed", 3)],
    ]


def test_a_handed_record_is_never_acknowledged_to_faust_its_consumed_copy_is() -> None:
    async def scenario() -> list[Any]:
        stream = AckRecorder()
        in_flight = InFlight(stream, "posting", depth=4)  # type: ignore[arg-type]
        box = GatedBox()
        await in_flight.push([handed(0, 5), "consumed-5"], BatchDelivery(box, []))  # type: ignore[list-item, arg-type]
        box.gate.set()
        await asyncio.wait_for(in_flight.drain(), 5)
        in_flight.close()
        return stream.acked

    assert asyncio.run(scenario()) == ["consumed-5"]
