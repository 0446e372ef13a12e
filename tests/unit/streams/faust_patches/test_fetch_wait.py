"""The worker consumer faust creates waits for a fetch's worth of data (fetch_wait.install)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import aiokafka
import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.faust_patches import fetch_wait


@pytest.fixture(autouse=True)
def faust_as_it_was() -> Iterator[None]:
    yield
    fetch_wait.install(max_wait_ms=0, min_bytes=1)


def unstarted_consumer(**settings: Any) -> aiokafka.AIOKafkaConsumer:
    """aiokafka's consumer as built (it wants an event loop to be built in); never started."""

    async def build() -> aiokafka.AIOKafkaConsumer:
        return aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **settings)

    return asyncio.run(build())


def fake_faust_creation(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """faust's ``_create_worker_consumer`` replaced by one that builds aiokafka's consumer
    with faust's own fetch settings (no broker needed: the consumer is not started)."""
    transports: list[Any] = []

    def create(self: Any, transport: Any) -> aiokafka.AIOKafkaConsumer:
        transports.append(transport)
        return unstarted_consumer(fetch_max_wait_ms=1500)

    monkeypatch.setattr(fetch_wait, "_ORIGINAL", create)
    return transports


def test_the_created_consumer_waits_up_to_max_wait_for_min_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transports = fake_faust_creation(monkeypatch)
    fetch_wait.install(max_wait_ms=25, min_bytes=4096)
    consumer = AIOKafkaConsumerThread._create_worker_consumer(object(), "the transport")  # type: ignore[arg-type]
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (25, 4096)
    assert transports == ["the transport"]


def test_max_wait_0_leaves_fausts_own_creation_in_place() -> None:
    fetch_wait.install(max_wait_ms=25, min_bytes=4096)
    assert AIOKafkaConsumerThread._create_worker_consumer is not fetch_wait._ORIGINAL
    fetch_wait.install(max_wait_ms=0, min_bytes=4096)
    assert AIOKafkaConsumerThread._create_worker_consumer is fetch_wait._ORIGINAL


def test_aiokafka_still_builds_its_fetcher_from_the_attributes_set() -> None:
    # The patch sets attributes after faust built the consumer: they count only because
    # aiokafka reads them when the consumer starts. Fails when an upgrade changes that.
    consumer = unstarted_consumer()
    for name in fetch_wait.CONSUMER_ATTRIBUTES:
        assert hasattr(consumer, name), name
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
    assert "fetch_min_bytes=self._fetch_min_bytes" in start


def test_faust_still_creates_its_worker_consumer_with_fetch_max_wait_1500() -> None:
    # What the patch corrects: if faust starts passing its own fetch settings, review it.
    source = inspect.getsource(fetch_wait._ORIGINAL)
    assert "fetch_max_wait_ms=1500" in source
    assert "fetch_min_bytes" not in source
