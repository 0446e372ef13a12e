"""produce_file and produce_demo over a fake sink (EventProducer itself needs a broker)."""

from __future__ import annotations

from schemas.codec import RecordInvalidError
from tests.unit.schemas.fixtures import catalog, encoder
from tests.unit.schemas.test_json_events import SPECIFICATION_JSON
from tools.produce import produce_demo, produce_file


class FakeSink:
    """Encodes like the real producer (so invalid records fail the same way), keeps the rest."""

    def __init__(self):
        self.catalog = catalog()
        self.sent = []
        self.flushes = 0
        self._encoder = encoder()

    def send(self, record):
        self._encoder.encode(record)
        self.sent.append(record)

    def flush(self):
        self.flushes += 1


def one_line(text, event_id):
    return " ".join(text.replace('"uuid"', f'"{event_id}"').split())


def test_produce_file_sends_good_lines_and_reports_bad_ones_by_number(tmp_path):
    good = one_line(
        SPECIFICATION_JSON["crm.sales_order.completed"], "2d8b4d30-6f2c-4e77-9c79-3b208dbf4c03"
    )
    no_uuid = one_line(SPECIFICATION_JSON["crm.sales_order.completed"], "not-a-uuid")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([good, "{broken", "", no_uuid, good.replace("25000.00", "1.005")]))
    messages: list[str] = []
    sink = FakeSink()

    summary = produce_file(path, sink, progress=messages.append)

    assert summary.sent == 1
    assert [line for line, _ in summary.refused] == [2, 4, 5]
    assert not summary
    assert "uuid" in summary.refused[1][1]
    assert "decimal places" in summary.refused[2][1]
    assert any(":2: not sent" in message for message in messages)
    assert sink.flushes == 1


def test_produce_file_of_good_lines_is_truthy(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        one_line(SPECIFICATION_JSON["pm.time.logged"], "4fad6f52-8b4e-4a99-9e9b-5d42afd16e05")
        + "\n"
    )

    summary = produce_file(path, FakeSink(), progress=lambda _: None)

    assert summary and summary.sent == 1


def test_produce_demo_sends_the_samples_then_the_synthetic_count():
    sink = FakeSink()

    sent = produce_demo(sink, count=20, seed=5, progress=lambda _: None)

    assert sent == len(sink.sent) == 27
    assert sink.sent[0]["event_type"] == "fin.budget.set"
    assert sink.flushes == 1


def test_produce_demo_holds_the_requested_rate():
    now = [100.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    produce_demo(
        FakeSink(),
        rate=10.0,
        count=13,
        include_samples=False,
        progress=lambda _: None,
        clock=lambda: now[0],
        sleep=sleep,
    )

    assert abs(now[0] - 101.2) < 1e-9  # record n leaves at n / rate: the 13th at 1.2 s
    assert len(sleeps) == 12


def test_produce_demo_reports_progress_every_n_events():
    messages: list[str] = []

    produce_demo(
        FakeSink(), count=10, include_samples=False, progress=messages.append, progress_every=4
    )

    assert messages == ["demo: 4 events sent", "demo: 8 events sent", "demo: 10 events sent"]


def test_the_fake_sink_refuses_what_the_encoder_refuses():
    record = {"event_type": "crm.sales_order.completed"}

    try:
        FakeSink().send(record)
    except RecordInvalidError:
        return
    raise AssertionError("expected RecordInvalidError")
