"""The ingest stage's reading handed to the posting stage (streams/validated.py): bounded, taken
once, and a posting from it is exactly the posting from a second decode."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.generator import synthetic_events
from ledger.chart import default_chart_path, load_chart
from schemas.catalog import contract_for_record
from schemas.codec import Decoded
from settings import BY_EVENT_ID_TOPIC
from streams.deadletter import SourcePosition
from streams.effects import StageResult
from streams.pipeline import Ingest
from streams.posting import Posting
from streams.stage_records import ByIdRecord
from streams.validated import ValidatedEvents
from tests.unit.schemas.fixtures import FakeRegistry, decoder, encoder

CHART = load_chart(default_chart_path())
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def decoded(n: int) -> Decoded:
    return Decoded("t", {"n": n}, 1, "fin.T")


def test_an_entry_is_taken_once() -> None:
    cache = ValidatedEvents()
    event: Any = object()
    cache.put("hr.events", b"abc", decoded(1), event)
    assert cache.take("hr.events", b"abc") == (decoded(1), event)
    assert cache.take("hr.events", b"abc") is None
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 0)


def test_the_same_bytes_on_another_topic_are_another_entry() -> None:
    cache = ValidatedEvents()
    cache.put("hr.events", b"abc", decoded(1), None)  # type: ignore[arg-type]
    assert cache.take("scm.events", b"abc") is None


def test_the_oldest_entry_goes_first_when_full() -> None:
    cache = ValidatedEvents(capacity=2)
    for n in range(3):
        cache.put("t", bytes([n]), decoded(n), None)  # type: ignore[arg-type]
    assert len(cache) == 2
    assert cache.take("t", b"\x00") is None
    assert cache.take("t", b"\x02") is not None
    with pytest.raises(ValueError):
        ValidatedEvents(capacity=0)


class CountingDecoder:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def decode(self, topic: str, value: bytes | None) -> Any:
        self.calls += 1
        return self.inner.decode(topic, value)


def run_stream(hand_over: bool, seed: int) -> tuple[list[StageResult], CountingDecoder, Any]:
    """Synthetic traffic through ingest then posting (one by-id partition), with or without the
    hand-over; the posting results, the posting stage's decoder, the cache."""
    registry = FakeRegistry()
    wire = encoder()
    validated = ValidatedEvents() if hand_over else None
    ingest = Ingest(decoder(registry), CHART, validated=validated)
    posting_decoder = CountingDecoder(decoder(registry))
    posting = Posting(posting_decoder, wire, CHART, validated=validated)  # type: ignore[arg-type]
    processed: dict[str, bytes] = {}
    offsets: dict[str, int] = defaultdict(int)
    results = []
    for offset, record in enumerate(synthetic_events(seed, count=300)):
        topic = contract_for_record(record).topic
        value = wire.encode(record)
        position = SourcePosition(topic, 0, offset, int(NOW.timestamp() * 1000))
        forwarded = ingest.process(topic, b"key", value, position, NOW)
        for send in forwarded.sends:
            assert send.topic == BY_EVENT_ID_TOPIC and send.key is not None
            offsets[BY_EVENT_ID_TOPIC] += 1
            by_id = ByIdRecord(
                send.key, send.value or b"", dict(send.headers), 0, offsets[BY_EVENT_ID_TOPIC]
            )
            result = posting.process(by_id, processed.get, NOW)
            for _, key, row in result.table_writes:
                processed[key] = row
            results.append(result)
    return results, posting_decoder, validated


@pytest.mark.parametrize("seed", [3, 7, 11])
def test_a_posting_from_the_hand_over_is_the_posting_from_a_second_decode(seed: int) -> None:
    again, decoder_again, _ = run_stream(hand_over=False, seed=seed)
    handed, decoder_handed, cache = run_stream(hand_over=True, seed=seed)
    assert handed == again  # every send (entries' Avro bytes), table write, delta and outcome
    assert decoder_again.calls == len(again)
    # Only step records (a compensation's claim or release: the same bytes again) decode.
    assert decoder_handed.calls == cache.misses < len(handed) // 10
    assert cache.hits > 0.9 * len(handed)
