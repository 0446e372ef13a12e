"""The alert rules in ops/prometheus/rules.yml, checked and unit-tested by the real promtool.

promtool comes from ``ops/prometheus.sh`` (Debian's prometheus package, fetched once into
``.cache/prometheus``). If it cannot be had, these tests fail and say why; they never skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ops" / "prometheus.sh"
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "rules.test.yml"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_PROMETHEUS = ROOT / "ops" / "compose" / "prometheus" / "prometheus.yml"

ALERTS = {
    "FinWorkerDown",
    "FinConsumerLagGrowing",
    "FinNoPostingsWhileInputArrives",
    "FinDeadLetterRateHigh",
    "FinCircuitBreakerOpen",
    "FinIntegrityFailure",
    "FinSendFailures",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SCRIPT), "promtool", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_rules_file_passes_promtool_check() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_every_alert_fires_and_stays_quiet_as_its_promtool_unit_tests_expect() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_a_severity_and_a_summary() -> None:
    rules = [rule for group in load(RULES)["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    tested = {
        case["alertname"]
        for test in load(RULE_TESTS)["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == ALERTS


def test_docker_compose_prometheus_loads_the_same_rules_file() -> None:
    mounts = load(COMPOSE)["services"]["prometheus"]["volumes"]
    assert "./ops/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts
    assert load(COMPOSE_PROMETHEUS)["rule_files"] == ["/etc/prometheus/rules.yml"]
