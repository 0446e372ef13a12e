"""bench.hops: an event's latency cut at the broker timestamps of its records."""

from __future__ import annotations

import argparse

import pytest

from bench.hops import first_stamps, hops, parse_variant, result_of


def test_each_hop_is_cut_at_the_brokers_timestamps_of_the_events_records() -> None:
    first, second, whole = hops(
        scheduled_ms=[1_000, 1_010, 1_020],
        event_ids=["e1", "e2", "e3"],
        entry_ids=["j1", None, "j3"],  # e2 made no journal entry (rejected): not measured
        by_id_ms={"e1": 1_030, "e2": 1_040, "e3": 1_025},
        ledger_ms={"j1": 1_050, "j3": 1_100},
    )
    assert (first, second, whole) == ([30.0, 5.0], [20.0, 75.0], [50.0, 80.0])


def test_a_missing_record_is_an_error_not_a_shorter_list() -> None:
    with pytest.raises(RuntimeError, match="e1"):
        hops([1_000], ["e1"], ["j1"], by_id_ms={}, ledger_ms={"j1": 1_050})


def test_a_replayed_record_keeps_the_first_timestamp_of_its_key() -> None:
    assert first_stamps([(b"e1", 10), (b"e2", 11), (b"e1", 30)]) == {"e1": 10, "e2": 11}


def test_variants_are_name_value_pairs() -> None:
    assert parse_variant("FIN_A=1,FIN_B=x") == {"FIN_A": "1", "FIN_B": "x"}
    assert parse_variant("") == {}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant("FIN_A")


def test_a_result_names_its_percentiles_and_cpu() -> None:
    result = result_of(
        "defaults", 2, 100.0, ([1.0, 2.0, 9.0], [2.0, 4.0, 5.0], [3.0, 6.0, 7.0], 812.34)
    )
    # nearest-rank percentiles (bench.measure.percentile), as in make bench
    assert (result.entries, result.hop1_p50_ms, result.hop2_p99_ms, result.p99_ms) == (
        3,
        2.0,
        5.0,
        7.0,
    )
    assert result.cpu_us_per_event == 812.3
    assert "round 2" in result.line()
