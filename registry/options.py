"""The registry process's settings: one frozen object, built once at start from argv and env.

Command-line options win over environment variables, which win over the defaults.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOST = "127.0.0.1"
PORT_DEFAULT = 8081
BOOTSTRAP_DEFAULT = "127.0.0.1:9092"
STARTUP_TIMEOUT_S_DEFAULT = 60.0
KAFKA_TIMEOUT_S_DEFAULT = 10.0
PORT_MAX = 65535
TOPIC_DEFAULT = "_schemas"


@dataclass(frozen=True)
class RegistryOptions:
    port: int = PORT_DEFAULT
    bootstrap: str = BOOTSTRAP_DEFAULT
    topic: str = TOPIC_DEFAULT
    startup_timeout_s: float = STARTUP_TIMEOUT_S_DEFAULT
    kafka_timeout_s: float = KAFKA_TIMEOUT_S_DEFAULT
    log_level: str = "INFO"
    host: str = HOST

    @classmethod
    def from_command_line(cls, argv: Sequence[str], environ: Mapping[str, str]) -> RegistryOptions:
        """Parse `argv` (without the program name); argparse exits with status 2 on misuse.

        String defaults go through the same `type` as the options, so a bad environment value
        is reported like a bad option.
        """
        parser = argparse.ArgumentParser(
            prog="python -m registry",
            description="FIN's Confluent-compatible schema registry (Karapace's design: all "
            "state in a compacted Kafka topic). Binds 127.0.0.1. Run a single instance per topic.",
        )
        parser.add_argument(
            "--port",
            type=_port,
            default=environ.get("REGISTRY_PORT", str(PORT_DEFAULT)),
            help="HTTP port (env REGISTRY_PORT, default %(default)s)",
        )
        parser.add_argument(
            "--bootstrap",
            default=environ.get("REGISTRY_KAFKA_BOOTSTRAP", BOOTSTRAP_DEFAULT),
            help="Kafka bootstrap servers (env REGISTRY_KAFKA_BOOTSTRAP, default %(default)s)",
        )
        parser.add_argument(
            "--topic",
            default=environ.get("REGISTRY_TOPIC", TOPIC_DEFAULT),
            help="the compacted topic holding all state (env REGISTRY_TOPIC, default %(default)s)",
        )
        parser.add_argument(
            "--startup-timeout",
            type=_seconds,
            default=environ.get("REGISTRY_STARTUP_TIMEOUT_S", str(STARTUP_TIMEOUT_S_DEFAULT)),
            help="seconds to wait for Kafka at start (env REGISTRY_STARTUP_TIMEOUT_S, "
            "default %(default)s)",
        )
        parser.add_argument(
            "--kafka-timeout",
            type=_seconds,
            default=environ.get("REGISTRY_KAFKA_TIMEOUT_S", str(KAFKA_TIMEOUT_S_DEFAULT)),
            help="seconds one Kafka read or write may take (env REGISTRY_KAFKA_TIMEOUT_S, "
            "default %(default)s)",
        )
        parser.add_argument(
            "--log-level",
            default=environ.get("REGISTRY_LOG_LEVEL", "INFO"),
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            type=str.upper,
            help="env REGISTRY_LOG_LEVEL, default %(default)s",
        )
        arguments = parser.parse_args(list(argv))
        return cls(
            port=arguments.port,
            bootstrap=arguments.bootstrap,
            topic=arguments.topic,
            startup_timeout_s=arguments.startup_timeout,
            kafka_timeout_s=arguments.kafka_timeout,
            log_level=arguments.log_level,
        )


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from exc
    if not 1 <= port <= PORT_MAX:
        raise argparse.ArgumentTypeError(f"port must be 1-{PORT_MAX}, got {port}")
    return port


def _seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from exc
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
    return seconds
