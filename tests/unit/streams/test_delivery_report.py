"""A record the producer accepted but could not deliver is logged and counted."""

from __future__ import annotations

import asyncio

import pytest

from streams.classic import report_failed_delivery
from streams.effects import Send
from streams.metrics import Metrics

SEND = Send("fin.internal.deltas.vendors", b"VEN-069", b"delta")


def _failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "fin_send_failures_total", {"topic": "fin.internal.deltas.vendors"}
    )
    return value or 0.0


def _settled(outcome: str) -> asyncio.Future[object]:
    loop = asyncio.new_event_loop()
    try:
        delivery: asyncio.Future[object] = loop.create_future()
        if outcome == "delivered":
            delivery.set_result(object())
        elif outcome == "failed":
            delivery.set_exception(ConnectionError("broker gone"))
        else:
            delivery.cancel()
        return delivery
    finally:
        loop.close()


def test_a_failed_delivery_is_logged_with_its_topic_and_key_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    with caplog.at_level("ERROR"):
        report_failed_delivery(SEND, metrics, _settled("failed"))
    assert _failures(metrics) == 1
    assert "delivery to fin.internal.deltas.vendors failed (key b'VEN-069')" in caplog.text
    assert "broker gone" in caplog.text


def test_a_cancelled_delivery_counts_as_failed() -> None:
    metrics = Metrics()
    report_failed_delivery(SEND, metrics, _settled("cancelled"))
    assert _failures(metrics) == 1


def test_a_delivered_record_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    with caplog.at_level("ERROR"):
        report_failed_delivery(SEND, metrics, _settled("delivered"))
    assert _failures(metrics) == 0
    assert caplog.text == ""
