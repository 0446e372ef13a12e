"""The quiet Monitor replaces exactly the per-record hooks faust's Monitor has."""

from __future__ import annotations

from faust.sensors.monitor import Monitor

from streams.faust_patches.quiet_monitor import PER_RECORD_HOOKS, QuietMonitor


def test_every_silenced_hook_still_exists_in_the_installed_faust() -> None:
    # Fails when a faust upgrade renames or drops one: the override would then do nothing.
    for name in PER_RECORD_HOOKS:
        assert callable(getattr(Monitor, name, None)), name


def test_the_quiet_monitor_overrides_every_per_record_hook_and_nothing_else() -> None:
    overridden = {name for name in vars(QuietMonitor) if name.startswith("on_")}
    assert overridden == set(PER_RECORD_HOOKS)


def test_a_record_passing_through_the_quiet_monitor_leaves_no_trace() -> None:
    monitor = QuietMonitor()
    monitor.on_message_in(None, 0, None)
    monitor.on_stream_event_in(None, 0, None, None)
    assert monitor.messages_received_total == 0
    assert monitor.events_total == 0
