"""What every benchmark step shares: the broker, the registry, a scratch dir, fresh names."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.kafka_io import LOG_APPEND_TIME, Kafka
from settings import LEDGER_TOPIC, Settings
from streams.admin import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4
API_KEY = "bench-read-key"


def stop_workers_on_sigterm() -> None:
    """Make SIGTERM (``timeout``, ``kill``) end the bench like Ctrl-C: as ``SystemExit``, so the
    ``finally`` blocks stop the workers it started. Python's default for SIGTERM ends the
    process at once, and the workers (child processes) went on running, each a consumer
    polling its deleted topics: four of them took ~0.3 of a core from later runs."""

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)


@dataclass
class Context:
    bootstrap: str
    registry_url: str
    scratch: Path
    kafka: Kafka
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    prefixes: list[str] = field(default_factory=list)
    keep_topics: bool = False
    runtime: str | None = None  # FIN_RUNTIME for every hub worker; None: the worker decides

    @property
    def effective_runtime(self) -> str:
        """The runtime the hub's workers run: ``--runtime``, else FIN_RUNTIME inherited from
        the environment, else the worker's own default."""
        return self.runtime or os.environ.get("FIN_RUNTIME") or Settings.runtime

    def worker_env(self) -> dict[str, str]:
        """What every hub worker gets on top of the inherited environment."""
        return {"FIN_RUNTIME": self.runtime} if self.runtime else {}

    def new_prefix(self, tag: str) -> str:
        prefix = f"bench{self.run_id}-{tag}-{len(self.prefixes)}."
        self.prefixes.append(prefix)
        return prefix

    def settings(self, prefix: str) -> Settings:
        return Settings(
            kafka_bootstrap=self.bootstrap,
            schema_registry_url=self.registry_url,
            topic_prefix=prefix,
            partitions=PARTITIONS,
        )

    def create_contract_topics(self, prefix: str) -> None:
        """The contract topics of ``prefix``; the ledger topic stamped with broker append time,
        so "when the entry appeared on the topic" is read straight from each record."""
        self.kafka.create_topics([prefix + LEDGER_TOPIC], PARTITIONS, LOG_APPEND_TIME)
        ensure_topics(self.settings(prefix))

    def cleanup(self, prefix: str) -> None:
        """Delete every topic of ``prefix`` and of its app id (changelogs), unless kept."""
        if self.keep_topics:
            return
        app_id = app_id_for(prefix)
        self.kafka.delete_topics(self.kafka.topics_starting_with(prefix, app_id + "-"))


def app_id_for(prefix: str) -> str:
    return "fin-" + prefix.rstrip(".")


def registry_url_from_ops() -> str:
    result = subprocess.run(
        [str(ROOT / "ops" / "registry.sh"), "url"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()
