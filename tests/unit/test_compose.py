"""docker-compose.yml, its Prometheus and Grafana files, and the code agree with each other.

No Docker engine is needed: the files are read as data. Every PromQL expression of the provisioned
dashboard may only name series that ``streams/metrics.py`` really exposes, grouped by labels those
metrics really have.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "ops" / "compose" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "ops" / "compose" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "fin.yml"
DASHBOARD = GRAFANA / "dashboards" / "fin-hub.json"
METRICS = ROOT / "streams" / "metrics.py"

# Panel title -> the metrics its queries must use.
REQUIRED_PANELS: dict[str, set[str]] = {
    "Throughput (events/s by topic)": {"fin_events_consumed_total", "fin_events_posted_total"},
    "Consumer lag (records by topic/partition)": {"fin_consumer_lag_records"},
    "Latency p50/p99: published → posted (hub), event date → posting": {
        "fin_record_to_posting_seconds_bucket",
        "fin_event_to_posting_seconds_bucket",
    },
    "Latency inside the worker (p50/p99 by stage)": {"fin_processing_seconds_bucket"},
    "Rejections by reason": {"fin_events_rejected_total"},
    "Dead letters": {"fin_dead_letters_total"},
    "Duplicates": {"fin_events_duplicate_total"},
    "Integrity": {"fin_trial_balance_imbalance", "fin_integrity_failures_total"},
    "Circuit breaker state": {"fin_circuit_breaker_state"},
    "Table keys": {"fin_table_keys"},
}
# Labels every scraped series has besides its own.
TARGET_LABELS = {"instance", "job"}


def _yaml_module() -> Any:
    try:
        import yaml
    except ImportError:
        pytest.fail(
            "PyYAML is needed to read the compose, Prometheus and Grafana files; install the test "
            "extras: .venv/bin/pip install -c constraints.txt -e '.[test]'"
        )
    return yaml


def load_yaml(path: Path) -> Any:
    return _yaml_module().safe_load(path.read_text(encoding="utf-8"))


def load_compose() -> dict[str, Any]:
    """The compose file as data: PyYAML if present, else `docker compose config` (CLI only)."""
    try:
        import yaml
    except ImportError:
        docker = shutil.which("docker")
        if docker is None:
            pytest.fail(
                "cannot read docker-compose.yml: neither PyYAML nor the docker CLI is installed "
                "(install the test extras: .venv/bin/pip install -c constraints.txt -e '.[test]')"
            )
        done = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE), "config", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"`docker compose config` failed (is the compose plugin installed?): "
                f"{done.stderr.strip()}"
            )
        data: dict[str, Any] = json.loads(done.stdout)
        return data
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command")
    if command is None:
        return ""
    return command if isinstance(command, str) else " ".join(command)


def worker_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services built from the repo that run `app.py worker` (the Dockerfile's default command)."""
    return {
        name: svc
        for name, svc in services.items()
        if "build" in svc and (svc.get("command") is None or "worker" in command_text(svc))
    }


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts.append((str(source), str(target)))
    return mounts


def depends_conditions(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def service_by_image(
    services: dict[str, dict[str, Any]], prefix: str
) -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in services.items() if str(s.get("image", "")).startswith(prefix)]
    assert len(found) == 1, f"expected one service with image {prefix}*, found {found}"
    return found[0]


# --- metrics.py as data ----------------------------------------------------------------------


def declared_metrics() -> dict[str, tuple[str, set[str]]]:
    """name -> (kind, labels) for every prometheus_client metric built in streams/metrics.py."""
    tree = ast.parse(METRICS.read_text(encoding="utf-8"))
    metrics: dict[str, tuple[str, set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        kind = node.func.id
        if kind not in {"Counter", "Gauge", "Histogram", "Summary"}:
            continue
        if not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        labels_node: ast.expr | None = node.args[2] if len(node.args) > 2 else None
        for keyword in node.keywords:
            if keyword.arg == "labelnames":
                labels_node = keyword.value
        labels: set[str] = set()
        if isinstance(labels_node, (ast.List, ast.Tuple)):
            labels = {str(elt.value) for elt in labels_node.elts if isinstance(elt, ast.Constant)}
        metrics[str(node.args[0].value)] = (kind, labels)
    return metrics


def exposed_series() -> dict[str, set[str]]:
    """Series name -> labels it carries, as prometheus_client exposes each declared metric."""
    series: dict[str, set[str]] = {}
    for name, (kind, labels) in declared_metrics().items():
        if kind == "Counter":
            base = name.removesuffix("_total")
            series[f"{base}_total"] = labels
            series[f"{base}_created"] = labels
        elif kind == "Gauge":
            series[name] = labels
        else:
            series[f"{name}_bucket"] = labels | {"le"} if kind == "Histogram" else labels
            series[f"{name}_count"] = labels
            series[f"{name}_sum"] = labels
            series[f"{name}_created"] = labels
    return series


def test_metrics_py_is_parsed() -> None:
    series = exposed_series()
    assert "fin_consumer_lag_records" in series
    assert series["fin_consumer_lag_records"] == {"topic", "partition"}
    assert "fin_processing_seconds_bucket" in series
    assert len(declared_metrics()) >= 10


# --- compose ---------------------------------------------------------------------------------


def test_compose_runs_two_workers_in_one_group(services: dict[str, dict[str, Any]]) -> None:
    workers = worker_services(services)
    assert len(workers) == 2, f"expected two worker services, found {sorted(workers)}"
    envs = {name: env(svc) for name, svc in workers.items()}
    assert len({e["FIN_APP_ID"] for e in envs.values()}) == 1, "workers must share FIN_APP_ID"
    data_dirs = [e["FIN_DATA_DIR"] for e in envs.values()]
    assert len(set(data_dirs)) == 2, f"workers need distinct FIN_DATA_DIR: {data_dirs}"
    sources = []
    for name, svc in workers.items():
        data_dir = envs[name]["FIN_DATA_DIR"]
        holding = [s for s, t in volume_mounts(svc) if data_dir.startswith(t.rstrip("/") + "/")]
        assert holding, f"{name}: FIN_DATA_DIR {data_dir} is not on a volume"
        sources.extend(holding)
    assert len(set(sources)) == 2, f"workers must not share a data volume: {sources}"


def test_workers_are_wired_to_kafka_registry_and_init(services: dict[str, dict[str, Any]]) -> None:
    kafka_name, _ = service_by_image(services, "apache/kafka:")
    registry_name, _ = service_by_image(services, "apicurio/apicurio-registry:")
    for name, svc in worker_services(services).items():
        e = env(svc)
        assert e["FIN_KAFKA_BOOTSTRAP"] == f"{kafka_name}:9092"
        assert e["FIN_SCHEMA_REGISTRY_URL"] == f"http://{registry_name}:8080/apis/ccompat/v7"
        # Bound and advertised under a name the other worker resolves (faust routes reads to it).
        assert e["FIN_WEB_HOST"] in {name, svc.get("hostname")}, name
        assert "FIN_API_KEY" not in e, "compose leaves FIN_API_KEY unset by default"
        conditions = depends_conditions(svc)
        assert conditions.get(kafka_name) == "service_healthy"
        init = [n for n, c in conditions.items() if c == "service_completed_successfully"]
        assert len(init) == 1, f"{name} must wait for the init service to finish"
        init_command = command_text(services[init[0]])
        assert "app.py topics create" in init_command
        assert "app.py schemas register" in init_command
        health = " ".join(svc["healthcheck"]["test"])
        assert f"http://{e['FIN_WEB_HOST']}:{e['FIN_WEB_PORT']}/health" in health


def test_kafka_is_the_official_image_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    _, kafka = service_by_image(services, "apache/kafka:")
    assert re.fullmatch(r"apache/kafka:4\.3\.\d+", kafka["image"])
    roles = set(env(kafka)["KAFKA_PROCESS_ROLES"].split(","))
    assert roles == {"broker", "controller"}
    assert "healthcheck" in kafka


def test_registry_is_apicurio_on_kafkasql(services: dict[str, dict[str, Any]]) -> None:
    kafka_name, _ = service_by_image(services, "apache/kafka:")
    _, registry = service_by_image(services, "apicurio/apicurio-registry:")
    assert re.fullmatch(r"apicurio/apicurio-registry:3\.\d+\.\d+", registry["image"])
    e = env(registry)
    assert e["APICURIO_STORAGE_KIND"] == "kafkasql"
    assert e["APICURIO_KAFKASQL_BOOTSTRAP_SERVERS"] == f"{kafka_name}:9092"
    assert "healthcheck" in registry


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"{name} has no image name"
        repository, _, tag = str(image).rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} is not pinned"


def test_dockerfile_builds_the_worker_as_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11[.\d]*-slim", text, re.MULTILINE)
    assert "pip install -c constraints.txt ." in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["python", "app.py", "worker"\]', text, re.MULTILINE)
    assert "/health" in text


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_both_workers(services: dict[str, dict[str, Any]]) -> None:
    config = load_yaml(PROMETHEUS)
    targets = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
    for name, svc in worker_services(services).items():
        e = env(svc)
        assert f"{e['FIN_WEB_HOST']}:{e['FIN_WEB_PORT']}" in targets, name
    prometheus_name, prometheus = service_by_image(services, "prom/prometheus:")
    assert any(t == "/etc/prometheus/prometheus.yml" for _, t in volume_mounts(prometheus))
    datasources = load_yaml(DATASOURCES)["datasources"]
    assert [d["url"] for d in datasources] == [f"http://{prometheus_name}:9090"]


# --- Grafana ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_grafana_mounts_the_provisioning(services: dict[str, dict[str, Any]]) -> None:
    _, grafana = service_by_image(services, "grafana/grafana:")
    mounts = {target: source for source, target in volume_mounts(grafana)}

    def host_dir(target: str) -> Path:
        source = Path(mounts[target])
        return (source if source.is_absolute() else COMPOSE.parent / source).resolve()

    assert host_dir("/etc/grafana/provisioning") == (GRAFANA / "provisioning").resolve()
    dashboards_dir = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]["options"]["path"]
    assert host_dir(dashboards_dir) == DASHBOARD.parent.resolve()
    home = env(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"


def test_dashboard_has_the_required_panels(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "FIN hub"
    panels = {p["title"]: p for p in dashboard["panels"]}
    missing = set(REQUIRED_PANELS) - set(panels)
    assert not missing, f"dashboard lacks panels {sorted(missing)}"
    for title, metrics in REQUIRED_PANELS.items():
        used = set().union(*(metric_names(t["expr"]) for t in panels[title]["targets"]))
        assert metrics <= used, f"{title!r} should query {sorted(metrics - used)}"
    for title in (
        "Latency p50/p99: published → posted (hub), event date → posting",
        "Latency inside the worker (p50/p99 by stage)",
    ):
        exprs = " ".join(t["expr"] for t in panels[title]["targets"])
        assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bfin_[a-z0-9_]+\b", expr))


def test_every_query_names_real_series_and_labels(dashboard: dict[str, Any]) -> None:
    series = exposed_series()
    datasource_uid = load_yaml(DATASOURCES)["datasources"][0]["uid"]
    count = 0
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]
        for target in panel["targets"]:
            count += 1
            expr = target["expr"]
            names = metric_names(expr)
            assert names, f"{panel['title']!r}: no FIN metric in {expr!r}"
            unknown = names - set(series)
            assert not unknown, f"{panel['title']!r}: {sorted(unknown)} not in streams/metrics.py"
            allowed = set().union(*(series[n] for n in names)) | TARGET_LABELS
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                labels = {label.strip() for label in group.split(",") if label.strip()}
                assert labels <= allowed, (
                    f"{panel['title']!r}: {expr!r} groups by {sorted(labels - allowed)}, "
                    f"which {sorted(names)} do not have"
                )
    assert count >= len(REQUIRED_PANELS)
