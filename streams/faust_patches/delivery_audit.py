"""Opt-in audit of faust's record delivery (``FIN_DELIVERY_AUDIT=1``), for hunting holes.

Logs, at WARNING with the prefix ``AUDIT``, every irregular step of a partition's records on
their way from the Kafka client to the agents: records a fetch returned that faust did not pass
on, deliveries that jump over offsets or go back, the read offsets a seek changed, records
dropped from a queue, records acknowledged through ``Consumer.ack`` without an agent having
processed them (faust's compiled stream path acknowledges inline, so not those), and an agent
skipping offsets of a partition it kept (``AUDIT processing jump``: FIN's topics have no
transaction markers under at_least_once, so that is a lost record; the fault suite fails on it).
Off by default: it costs a dictionary look-up per record and logs many lines on every restart.
It found the hole that ``streams.faust_patches.commit_guard.keep_queued_records_on_resume`` closes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP, Message
from mode.utils.queues import ThrowableQueue

from streams.faust_patches.commit_guard import delivered_before_seek

log = logging.getLogger(__name__)

_PROCESSED = "_fin_audit_processed"

REPLACED: tuple[tuple[type, str], ...] = (
    (Consumer, "_wait_next_records"),
    (Consumer, "getmany"),
    (Consumer, "_drain_messages"),
    (Consumer, "perform_seek"),
    (Consumer, "ack"),
    (ThrowableQueue, "clear"),
)
"""The faust and mode attributes ``install`` wraps when the audit is on (checked by
tests/unit/streams/faust_patches/test_faust_still_has.py)."""
READ: tuple[tuple[type, str], ...] = (
    (Consumer, "callback"),
    (Consumer, "_active_partitions"),
    (Consumer, "_buffered_partitions"),
    (Consumer, "_paused_partitions"),
    (Consumer, "_read_offset"),
    (Consumer, "_committed_offset"),
)
"""The private state of faust's consumer the audit reads (checked the same way)."""


class _State:
    enabled = False
    last_processed: dict[TP, int] = {}  # noqa: RUF012 (one per process, on purpose)


def processed(message: Message) -> None:
    """An agent took ``message`` (call before acknowledging it)."""
    if not _State.enabled:
        return
    setattr(message, _PROCESSED, True)
    last = _State.last_processed.get(message.tp)
    if last is not None and message.offset > last + 1:
        log.warning(
            "AUDIT processing jump %s[%d]: %d -> %d",
            message.tp.topic,
            message.tp.partition,
            last,
            message.offset,
        )
    _State.last_processed[message.tp] = message.offset


def _tp_name(tp: TP) -> str:
    return f"{tp.topic}[{tp.partition}]"


def install(app: Any, *, enabled: bool) -> None:
    """Wrap faust's consumer and queue methods once, if the audit is enabled; a partition
    revoked from ``app`` may come back further on (another worker read it meanwhile), so its
    last processed offset is forgotten."""
    if not enabled:
        return
    _State.enabled = True

    @app.on_partitions_revoked.connect  # type: ignore[untyped-decorator]
    async def forget_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        for tp in revoked:
            _State.last_processed.pop(tp, None)

    if getattr(Consumer, "_fin_audited", False):
        return
    Consumer._fin_audited = True  # type: ignore[attr-defined]

    wait_next_records = Consumer._wait_next_records

    @functools.wraps(wait_next_records)
    async def audited_wait(self: Any, timeout: float) -> Any:
        records, active = await wait_next_records(self, timeout)
        self._fin_audit_batch = records or {}
        return records, active

    Consumer._wait_next_records = audited_wait  # type: ignore[method-assign]

    getmany = Consumer.getmany

    @functools.wraps(getmany)
    async def audited_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        self._fin_audit_batch = {}
        yielded: dict[TP, set[int]] = {}
        generation = self.app.consumer_generation_id
        async for tp, message in getmany(self, timeout):
            yielded.setdefault(tp, set()).add(message.offset)
            yield tp, message
        for tp, records in (self._fin_audit_batch or {}).items():
            offsets = [record.offset for record in records]
            dropped = sorted(set(offsets) - yielded.get(tp, set()))
            if dropped:
                log.warning(
                    "AUDIT getmany dropped %s offsets %s (batch %d..%d; flow_active %s, "
                    "active %s, buffered %s, paused %s, generation %s -> %s)",
                    _tp_name(tp),
                    dropped[:20],
                    min(offsets),
                    max(offsets),
                    self.flow_active,
                    tp in (self._active_partitions or ()),
                    tp in self._buffered_partitions,
                    tp in self._paused_partitions,
                    generation,
                    self.app.consumer_generation_id,
                )

    Consumer.getmany = audited_getmany  # type: ignore[method-assign,assignment]

    drain = Consumer._drain_messages

    @functools.wraps(drain)
    async def audited_drain(self: Any, fetcher: Any) -> None:
        if not getattr(self.callback, "_fin_audited", False):
            self.callback = _audited_callback(self, self.callback)
        await drain(self, fetcher)

    Consumer._drain_messages = audited_drain  # type: ignore[method-assign]

    perform_seek = Consumer.perform_seek

    @functools.wraps(perform_seek)
    async def audited_seek(self: Any) -> None:
        await perform_seek(self)
        # How far each partition had been delivered when the seek set its read offset back.
        changes = [
            f"{_tp_name(tp)} delivered to {offset}, read offset now {self._read_offset.get(tp)}"
            for tp, offset in sorted(delivered_before_seek(self).items())
        ]
        log.warning("AUDIT seek done: %s", ", ".join(changes) or "nothing delivered before it")

    Consumer.perform_seek = audited_seek  # type: ignore[method-assign]

    ack = Consumer.ack

    @functools.wraps(ack)
    def audited_ack(self: Any, message: Message) -> bool:
        if (
            not message.acked
            and not getattr(message, _PROCESSED, False)
            and self.app.topics.acks_enabled_for(message.topic)
        ):
            log.warning(
                "AUDIT acknowledged without processing %s@%d (generation %s, app %s, "
                "flow active %s)",
                _tp_name(message.tp),
                message.offset,
                message.generation_id,
                self.app.consumer_generation_id,
                self.app.flow_control.is_active(),
            )
        return bool(ack(self, message))

    Consumer.ack = audited_ack  # type: ignore[method-assign]

    _audit_queue_clear()


def _audit_queue_clear() -> None:
    """Log the records (and waiting puts) a queue drops when it is cleared."""
    queue_clear = ThrowableQueue.clear

    @functools.wraps(queue_clear)
    def audited_clear(self: Any) -> None:
        dropped: dict[str, list[int]] = {}
        for item in list(getattr(self, "_queue", ())):
            message = getattr(item, "message", None)
            if message is not None:
                dropped.setdefault(_tp_name(message.tp), []).append(message.offset)
        putters = len(getattr(self, "_putters", ()))
        if dropped or putters:
            log.warning(
                "AUDIT queue cleared, records dropped: %s, puts cancelled: %d", dropped, putters
            )
        queue_clear(self)

    ThrowableQueue.clear = audited_clear  # type: ignore[method-assign]


def _audited_callback(consumer: Any, callback: Callable[..., Any]) -> Callable[..., Any]:
    last: dict[TP, int] = {}

    async def deliver(message: Message) -> None:
        tp = message.tp
        previous = last.get(tp)
        if previous is None or message.offset != previous + 1:
            log.warning(
                "AUDIT deliver %s: %s -> %d (read offset %s, committed %s)",
                _tp_name(tp),
                previous,
                message.offset,
                consumer._read_offset.get(tp),
                consumer._committed_offset.get(tp),
            )
        last[tp] = message.offset
        try:
            await callback(message)
        except BaseException as exc:
            log.warning("AUDIT delivery of %s@%d ended by %r", _tp_name(tp), message.offset, exc)
            raise

    deliver._fin_audited = True  # type: ignore[attr-defined]
    return deliver
