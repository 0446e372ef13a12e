"""faust's Monitor sensor, without its per-record bookkeeping.

faust adds its ``Monitor`` to every app's sensors and calls it several times per record (message
in, stream event in and out, message out, every send and table access), keeping counters,
timings and a history of event runtimes that only faust's own web stats pages read, which FIN
turns off (``web_stats_enabled=False``). FIN's own Prometheus metrics (``streams/metrics.py``)
are what operators read. The hooks below are the per-record ones; the rest (rebalances,
commits, assignment) stay as faust has them.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.monitor import Monitor

PER_RECORD_HOOKS: tuple[str, ...] = (
    "on_message_in",
    "on_stream_event_in",
    "on_stream_event_out",
    "on_message_out",
    "on_table_get",
    "on_table_set",
    "on_table_del",
    "on_send_initiated",
    "on_send_completed",
)

REPLACED: tuple[tuple[type, str], ...] = tuple((Monitor, hook) for hook in PER_RECORD_HOOKS)
"""What ``QuietMonitor`` overrides (checked by tests/unit/streams/faust_patches/)."""
READ: tuple[tuple[type, str], ...] = ()


class QuietMonitor(Monitor):
    """A Monitor whose per-record hooks do nothing."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_del(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None
