"""Settings from the environment: the registry URL `make up` wrote, write safety, allowed hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from errors import ConfigurationError
from settings import Settings

APICURIO = "http://127.0.0.1:8081/apis/ccompat/v7"


def url_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry" / "url"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return path


def test_without_fin_schema_registry_url_the_url_make_up_wrote_is_used(tmp_path: Path) -> None:
    settings = Settings.from_env({}, registry_url_file=url_file(tmp_path, APICURIO + "\n"))

    assert settings.schema_registry_url == APICURIO


def test_an_explicit_fin_schema_registry_url_wins_over_the_file(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"FIN_SCHEMA_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7"},
        registry_url_file=url_file(tmp_path, APICURIO),
    )

    assert settings.schema_registry_url == "http://registry:8080/apis/ccompat/v7"


def test_without_the_file_or_with_an_empty_one_the_default_url_is_used(tmp_path: Path) -> None:
    missing = Settings.from_env({}, registry_url_file=tmp_path / "nothing-here")
    empty = Settings.from_env({}, registry_url_file=url_file(tmp_path, "  \n"))

    assert missing.schema_registry_url == empty.schema_registry_url == "http://localhost:8081"


def test_writes_are_closed_unless_fin_api_insecure_writes_is_1() -> None:
    assert Settings.from_env({}, registry_url_file=None).api_insecure_writes is False
    assert (
        Settings.from_env(
            {"FIN_API_INSECURE_WRITES": "0"}, registry_url_file=None
        ).api_insecure_writes
        is False
    )
    assert (
        Settings.from_env(
            {"FIN_API_INSECURE_WRITES": "1"}, registry_url_file=None
        ).api_insecure_writes
        is True
    )


def test_an_insecure_writes_value_other_than_0_or_1_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="FIN_API_INSECURE_WRITES"):
        Settings.from_env({"FIN_API_INSECURE_WRITES": "yes"}, registry_url_file=None)


def test_by_default_the_bind_host_localhost_and_loopback_addresses_are_allowed_hosts() -> None:
    settings = Settings.from_env({"FIN_WEB_HOST": "Worker-1"}, registry_url_file=None)

    assert settings.host_allow_list == {"worker-1", "localhost", "127.0.0.1", "::1"}


def test_fin_allowed_hosts_replaces_the_defaults_but_the_bind_host_stays_allowed() -> None:
    settings = Settings.from_env(
        {"FIN_ALLOWED_HOSTS": " fin.example.com, [::1],WORKER-2. ,", "FIN_WEB_HOST": "worker-1"},
        registry_url_file=None,
    )

    assert settings.host_allow_list == {"fin.example.com", "::1", "worker-2", "worker-1"}


@pytest.mark.parametrize("entry", ["worker-1:6066", "http://worker-1", "[::1]:6066"])
def test_an_allowed_host_with_a_port_or_scheme_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="FIN_ALLOWED_HOSTS"):
        Settings.from_env({"FIN_ALLOWED_HOSTS": entry}, registry_url_file=None)


def test_table_recovery_in_bulk_is_on_unless_fin_fast_recovery_is_0() -> None:
    assert Settings.from_env({}, registry_url_file=None).fast_recovery is True
    assert Settings.from_env({"FIN_FAST_RECOVERY": "1"}, registry_url_file=None).fast_recovery
    off = Settings.from_env({"FIN_FAST_RECOVERY": "0"}, registry_url_file=None)
    assert off.fast_recovery is False
    with pytest.raises(ConfigurationError, match="FIN_FAST_RECOVERY"):
        Settings.from_env({"FIN_FAST_RECOVERY": "yes"}, registry_url_file=None)


def test_the_recovery_fetch_size_is_bounded() -> None:
    default = Settings.from_env({}, registry_url_file=None)
    assert default.recovery_fetch_bytes == 1024 * 1024
    env = {"FIN_RECOVERY_FETCH_BYTES": str(4 * 1024 * 1024)}
    assert Settings.from_env(env, registry_url_file=None).recovery_fetch_bytes == 4 * 1024 * 1024
    with pytest.raises(ConfigurationError, match="FIN_RECOVERY_FETCH_BYTES"):
        Settings.from_env({"FIN_RECOVERY_FETCH_BYTES": "1000"}, registry_url_file=None)


def test_the_collector_threshold_is_0_or_bounded() -> None:
    assert Settings.from_env({}, registry_url_file=None).gc_young_threshold == 50_000
    env = {"FIN_GC_YOUNG_THRESHOLD": "0"}
    assert Settings.from_env(env, registry_url_file=None).gc_young_threshold == 0
    for bad in ("50", "2000000"):
        with pytest.raises(ConfigurationError, match="FIN_GC_YOUNG_THRESHOLD"):
            Settings.from_env({"FIN_GC_YOUNG_THRESHOLD": bad}, registry_url_file=None)


def test_the_inline_hand_over_in_fausts_fetcher_is_on_unless_fin_fast_drain_is_0() -> None:
    assert Settings.from_env({}, registry_url_file=None).fast_drain is True
    off = Settings.from_env({"FIN_FAST_DRAIN": "0"}, registry_url_file=None)
    assert off.fast_drain is False
    with pytest.raises(ConfigurationError, match="FIN_FAST_DRAIN"):
        Settings.from_env({"FIN_FAST_DRAIN": "on"}, registry_url_file=None)


def test_the_lag_is_sampled_every_5_seconds_unless_fin_lag_sample_interval_s_says() -> None:
    assert Settings.from_env({}, registry_url_file=None).lag_sample_interval_s == 5.0
    fast = Settings.from_env({"FIN_LAG_SAMPLE_INTERVAL_S": "1"}, registry_url_file=None)
    assert fast.lag_sample_interval_s == 1.0
    with pytest.raises(ConfigurationError, match="FIN_LAG_SAMPLE_INTERVAL_S"):
        Settings.from_env({"FIN_LAG_SAMPLE_INTERVAL_S": "0.1"}, registry_url_file=None)


def test_the_worker_consumer_waits_25_ms_for_a_mebibyte_unless_told() -> None:
    default = Settings.from_env({}, registry_url_file=None)
    assert (default.fetch_max_wait_s, default.fetch_min_bytes) == (0.025, 1024 * 1024)
    env = {"FIN_FETCH_MAX_WAIT_MS": "0", "FIN_FETCH_MIN_BYTES": "1"}
    faust_own = Settings.from_env(env, registry_url_file=None)
    assert (faust_own.fetch_max_wait_s, faust_own.fetch_min_bytes) == (0.0, 1)
    for name, bad in (("FIN_FETCH_MAX_WAIT_MS", "5000"), ("FIN_FETCH_MIN_BYTES", "0")):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: bad}, registry_url_file=None)


def test_agents_linger_only_100_records_behind_unless_told() -> None:
    default = Settings.from_env({}, registry_url_file=None)
    assert (default.batch_linger_s, default.batch_behind_records) == (0.02, 100)
    always = Settings.from_env({"FIN_BATCH_BEHIND_RECORDS": "0"}, registry_url_file=None)
    assert always.batch_behind_records == 0
    with pytest.raises(ConfigurationError, match="FIN_BATCH_BEHIND_RECORDS"):
        Settings.from_env({"FIN_BATCH_BEHIND_RECORDS": "-1"}, registry_url_file=None)


def test_the_local_hand_over_is_on_unless_told() -> None:
    default = Settings.from_env({}, registry_url_file=None)
    assert default.local_handoff is True
    off = Settings.from_env({"FIN_LOCAL_HANDOFF": "0"}, registry_url_file=None)
    assert off.local_handoff is False


def test_no_producer_linger_but_for_the_classic_runtime_unless_told() -> None:
    def linger(env: dict[str, str]) -> float:
        return Settings.from_env(env, registry_url_file=None).producer_linger_s

    assert linger({}) == 0.0  # a batch's outputs leave together without waiting
    assert linger({"FIN_RUNTIME": "classic"}) == 0.005  # one send per record
    assert linger({"FIN_RUNTIME": "classic", "FIN_PRODUCER_LINGER_MS": "0"}) == 0.0
    assert linger({"FIN_PRODUCER_LINGER_MS": "5"}) == 0.005


def test_the_consumer_runs_on_the_workers_loop_but_for_the_classic_runtime_unless_told() -> None:
    def in_loop(env: dict[str, str]) -> bool:
        return Settings.from_env(env, registry_url_file=None).consumer_in_loop

    assert in_loop({}) is True
    assert in_loop({"FIN_CONSUMER_IN_LOOP": "0"}) is False
    assert in_loop({"FIN_RUNTIME": "classic"}) is False  # faust's own thread, as it was
    assert in_loop({"FIN_RUNTIME": "classic", "FIN_CONSUMER_IN_LOOP": "1"}) is True


def test_the_tables_agent_gathers_250_ms_unless_told() -> None:
    def linger(env: dict[str, str]) -> float:
        return Settings.from_env(env, registry_url_file=None).tables_linger_s

    assert linger({}) == 0.25
    assert linger({"FIN_TABLES_LINGER_MS": "0"}) == 0.0  # the agents' shared linger
    assert linger({"FIN_TABLES_LINGER_MS": "100"}) == 0.1
    with pytest.raises(ConfigurationError):
        Settings.from_env({"FIN_TABLES_LINGER_MS": "6000"}, registry_url_file=None)


def test_rows_over_256_kib_go_to_their_changelog_in_chunks_unless_told() -> None:
    def chunk(env: dict[str, str]) -> int:
        return Settings.from_env(env, registry_url_file=None).row_chunk_bytes

    assert chunk({}) == 256 * 1024
    assert chunk({"FIN_ROW_CHUNK_BYTES": "4096"}) == 4096
    # Over 512 KiB a chunk and its produce request would near the changelogs' 1 MiB limit.
    for refused in ("100", "1048576"):
        with pytest.raises(ConfigurationError):
            Settings.from_env({"FIN_ROW_CHUNK_BYTES": refused}, registry_url_file=None)
