"""Real infrastructure for tests: a Kafka broker, a schema registry and FIN worker processes.

The broker and registry come from the project's own ``ops/`` scripts. If ``make up`` is running
they are reused; otherwise the session starts its own on free ports under a temporary state dir
and stops them at the end. Every test isolates itself with its own topic prefix and app id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(
    args: list[str], env: Mapping[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env={**os.environ, **env},
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Infra:
    bootstrap: str
    registry_url: str
    kafka_env: dict[str, str] = field(default_factory=dict)
    registry_env: dict[str, str] = field(default_factory=dict)
    owned: bool = False

    def kafka_tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(OPS / "kafka.sh"), "tool", name, *args], self.kafka_env)

    def kafka(self, action: str) -> subprocess.CompletedProcess[str]:
        """``ops/kafka.sh <action>`` (start, stop, status) for this broker."""
        return _run([str(OPS / "kafka.sh"), action], self.kafka_env)

    def registry(self, action: str) -> subprocess.CompletedProcess[str]:
        """``ops/registry.sh <action>`` (start, stop, status) for this registry."""
        return _run([str(OPS / "registry.sh"), action], self.registry_env)

    def kafka_pid(self) -> int:
        """The broker JVM's pid, from the pid file ``ops/kafka.sh`` keeps in its state dir."""
        state = Path(self.kafka_env["KAFKA_STATE_DIR"]) if self.owned else ROOT / ".state/kafka"
        return int((state / "kafka.pid").read_text().strip())

    def restart_registry(self) -> None:
        stop = _run([str(OPS / "registry.sh"), "stop"], self.registry_env)
        assert stop.returncode == 0, stop.stderr
        start = _run([str(OPS / "registry.sh"), "start"], self.registry_env)
        assert start.returncode == 0, start.stdout + start.stderr


def _status_ok(script: str, env: Mapping[str, str]) -> bool:
    return _run([str(OPS / script), "status"], env, timeout=60).returncode == 0


@contextlib.contextmanager
def infrastructure(private: bool = False) -> Iterator[Infra]:
    """Reuse `make up` when it answers on the default ports, else start a private pair.

    ``private`` (or FIN_TEST_PRIVATE_INFRA=1) always starts a private pair on free ports, for
    tests that stop or restart the broker or the registry.
    """
    if (
        not private
        and os.environ.get("FIN_TEST_PRIVATE_INFRA") != "1"
        and _status_ok("kafka.sh", {})
        and _status_ok("registry.sh", {})
    ):
        url = _run([str(OPS / "registry.sh"), "url"], {}).stdout.strip()
        yield Infra("127.0.0.1:9092", url)
        return
    state = Path(tempfile.mkdtemp(prefix="fin-test-infra-"))
    kafka_port = free_port()
    kafka_env = {
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_STATE_DIR": str(state / "kafka"),
    }
    registry_env = {
        "REGISTRY_PORT": str(free_port()),
        "REGISTRY_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "REGISTRY_STATE_DIR": str(state / "registry"),
    }
    started: list[tuple[str, dict[str, str]]] = []
    try:
        for script, env in (("kafka.sh", kafka_env), ("registry.sh", registry_env)):
            result = _run([str(OPS / script), "start"], env)
            if result.returncode != 0:
                raise RuntimeError(f"ops/{script} start failed:\n{result.stdout}\n{result.stderr}")
            started.append((script, env))
        url = _run([str(OPS / "registry.sh"), "url"], registry_env).stdout.strip()
        yield Infra(f"127.0.0.1:{kafka_port}", url, kafka_env, registry_env, owned=True)
    finally:
        for script, env in reversed(started):
            _run([str(OPS / script), "stop"], env)
        # ~50 MB of broker data per private pair; FIN_TEST_KEEP_INFRA=1 keeps it (and its logs).
        if os.environ.get("FIN_TEST_KEEP_INFRA") != "1":
            shutil.rmtree(state, ignore_errors=True)


@dataclass
class Worker:
    """One `python app.py worker` process with its own port and data dir."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "worker"],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                response = requests.get(f"{self.url}/ready", headers=self.headers, timeout=2)
                if response.status_code == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"worker not ready after {timeout_s}s:\n{self.log_tail()}")

    @property
    def headers(self) -> dict[str, str]:
        key = self.env.get("FIN_API_KEY")
        return {"X-API-Key": key} if key else {}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=30)

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout_s=30)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class Deployment:
    """A test's own FIN: a topic prefix and app id on the shared broker, and its workers."""

    infra: Infra
    root: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    partitions: int = 4
    api_key: str = "test-read-key"
    workers: list[Worker] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "FIN_KAFKA_BOOTSTRAP": self.infra.bootstrap,
            "FIN_SCHEMA_REGISTRY_URL": self.infra.registry_url,
            "FIN_TOPIC_PREFIX": self.prefix,
            "FIN_APP_ID": f"fin-{self.prefix.rstrip('.')}",
            "FIN_PARTITIONS": str(self.partitions),
            "FIN_API_KEY": self.api_key,
            "FIN_API_WRITE_KEY": self.api_key + "-write",
            "FIN_LOG_LEVEL": "info",
            # A burst a fast worker drains in two or three seconds still shows in the lag.
            "FIN_LAG_SAMPLE_INTERVAL_S": "1",
            **extra,
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def add_worker(self, *, start: bool = True, **extra_env: str) -> Worker:
        index = len(self.workers)
        port = free_port()
        data_dir = self.root / f"worker-{index}"
        worker = Worker(
            env=self.env(FIN_WEB_PORT=str(port), FIN_DATA_DIR=str(data_dir), **extra_env),
            port=port,
            log_path=self.root / f"worker-{index}.log",
        )
        self.workers.append(worker)
        if start:
            worker.start()
        return worker

    def create_topics(self) -> None:
        result = _run([sys.executable, str(ROOT / "app.py"), "topics", "create"], self.env())
        assert result.returncode == 0, result.stdout + result.stderr

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
