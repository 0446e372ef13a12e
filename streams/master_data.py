"""Master data on every worker: departments and closed periods, read from ``fin.master-data``.

The posting stage publishes each posted ``fin.department.changed`` command as a change record
(``ledger.master``), keyed ``department|<id>|<event id>``; the topic is compacted, so it keeps
every change (each has its own key) and nothing else. Each worker reads it with a plain client
(no consumer group, every partition, from the beginning) into the chart's register, which the
ingest stage's validation asks: a department registered by command is known to every worker as
soon as its change is read (a second or so), with no restart; a worker starting later reads
every change before it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from ledger.contract import MASTER_DATA_TOPIC
from ledger.master import DepartmentChange, DepartmentRegister, PeriodChange, PeriodRegister
from tables.topic_reader import read_forever, topic_partitions

log = logging.getLogger(__name__)

# MASTER_DATA_TOPIC is the contract's (ledger/contract.py), re-exported for the stages.
__all__ = ["MASTER_DATA_TOPIC", "TOPIC_CONFIG", "MasterDataReader", "change_from_record", "preload"]

TOPIC_CONFIG = {"cleanup.policy": "compact"}


def change_from_record(value: bytes) -> DepartmentChange | PeriodChange | None:
    """The change a master-data record holds; None for a kind this version does not know."""
    encoded = orjson.loads(value)
    kind = encoded.get("kind")
    if kind == "department":
        return DepartmentChange.from_json_dict(encoded)
    if kind == "period":
        return PeriodChange.from_json_dict(encoded)
    return None


def preload(
    bootstrap: str,
    topic: str,
    register: DepartmentRegister,
    periods: PeriodRegister,
    *,
    timeout_s: float = 60.0,
    consumer: Any = None,
) -> int:
    """Read every change on the topic now, before the worker processes anything: a restarted
    worker must not validate against the configured departments only, nor book into a month
    closed before it started. Returns the changes taken in. (Blocking: called at start.)"""
    from kafka import KafkaConsumer

    from streams.topic_scan import read_topic

    if consumer is None:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            client_id="fin-master-data",
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=15_000,
        )
    taken = 0
    try:
        for record in read_topic(consumer, topic, timeout_s=timeout_s):
            if record.value is None:
                continue
            change = change_from_record(record.value)
            if isinstance(change, PeriodChange):
                taken += periods.apply(change)
            elif change is not None:
                taken += register.apply(change)
    finally:
        consumer.close()
    log.info("master data: %d change(s) read from %s before start", taken, topic)
    return taken


class MasterDataReader:
    """Copies the master-data topic into a register, for as long as the worker runs."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        register: DepartmentRegister,
        periods: PeriodRegister | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._register = register
        self._periods = periods if periods is not None else PeriodRegister()
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()
        self.changes_read = 0

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run_forever(self) -> None:
        await read_forever(self._run, self._topic, "master data")

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, self._topic, "master data")
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while True:
                fetched = await consumer.getmany(timeout_ms=200)
                for records in fetched.values():
                    for record in records:
                        self._apply(record)
                if not self.caught_up.is_set() and await _at_end(consumer, ends):
                    log.info(
                        "master data: %d change(s) read from %s", self.changes_read, self._topic
                    )
                    self.caught_up.set()
        finally:
            await consumer.stop()

    def _apply(self, record: Any) -> None:
        if record.value is None:
            return
        try:
            change = change_from_record(record.value)
        except (ValueError, KeyError, orjson.JSONDecodeError):
            log.exception(
                "master data: record %s[%d]@%d ignored",
                self._topic,
                record.partition,
                record.offset,
            )
            return
        if isinstance(change, PeriodChange):
            if self._periods.apply(change):
                self.changes_read += 1
                log.info(
                    "master data: period %s %s (by %s: %s)",
                    change.period,
                    change.action,
                    change.requested_by or "-",
                    change.reason or "-",
                )
        elif change is not None and self._register.apply(change):
            self.changes_read += 1
            log.info(
                "master data: department %s %s (by %s: %s)",
                change.department_id,
                change.action,
                change.requested_by or "-",
                change.reason or "-",
            )


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True
