"""The registry's settings: defaults, environment, command line (which wins)."""

from __future__ import annotations

import pytest

from registry.options import RegistryOptions


def test_defaults_bind_loopback_8081_and_local_kafka():
    options = RegistryOptions.from_command_line([], {})
    assert (options.host, options.port, options.bootstrap, options.topic) == (
        "127.0.0.1",
        8081,
        "127.0.0.1:9092",
        "_schemas",
    )


def test_environment_then_command_line():
    environ = {"REGISTRY_PORT": "38081", "REGISTRY_KAFKA_BOOTSTRAP": "127.0.0.1:39092"}
    from_env = RegistryOptions.from_command_line([], environ)
    assert (from_env.port, from_env.bootstrap) == (38081, "127.0.0.1:39092")
    from_args = RegistryOptions.from_command_line(["--port", "9000", "--topic", "_t"], environ)
    assert (from_args.port, from_args.bootstrap, from_args.topic) == (9000, "127.0.0.1:39092", "_t")


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--port", "0"], {}),
        (["--port", "http"], {}),
        ([], {"REGISTRY_PORT": "70000"}),
        (["--startup-timeout", "-1"], {}),
    ],
)
def test_bad_values_exit_with_usage_error(argv, environ):
    with pytest.raises(SystemExit) as caught:
        RegistryOptions.from_command_line(argv, environ)
    assert caught.value.code == 2
