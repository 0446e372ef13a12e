"""The registry process: connect to Kafka, rebuild the state, serve HTTP until SIGTERM/SIGINT.

The HTTP port is bound only once the whole topic has been read, so a client that can connect gets
answers that include every schema registered before the start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from aiohttp import web

from registry.errors import StoreError
from registry.kafka_log import KafkaSchemaLog
from registry.options import RegistryOptions
from registry.server import create_app
from registry.service import SchemaRegistry

LOG = logging.getLogger("registry")

SHUTDOWN_TIMEOUT_S = 5.0
EXIT_OK = 0
EXIT_START_FAILED = 1

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    options = RegistryOptions.from_command_line(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=options.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if options.log_level != "DEBUG":
        # kafka-python narrates every connection at INFO; keep its warnings and errors.
        logging.getLogger("kafka").setLevel(logging.WARNING)
    return asyncio.run(serve(options))


async def serve(options: RegistryOptions) -> int:
    """Run until SIGTERM or SIGINT; return the process exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stop.set)
    log = KafkaSchemaLog(
        options.bootstrap, options.topic, request_timeout_s=options.kafka_timeout_s
    )
    runner: web.AppRunner | None = None
    try:
        runner = await _unless_stopped(stop, _start(options, log))
        if runner is None:
            LOG.info("stopped before the start completed")
            return EXIT_OK
        LOG.info(
            "serving on http://%s:%d (topic %s at %s)",
            options.host,
            options.port,
            options.topic,
            options.bootstrap,
        )
        await stop.wait()
        LOG.info("stopping")
        return EXIT_OK
    except (StoreError, OSError) as exc:
        LOG.error("cannot start: %s", exc)
        return EXIT_START_FAILED
    finally:
        if runner is not None:
            await runner.cleanup()
        await log.close()
        LOG.info("stopped")


async def _start(options: RegistryOptions, log: KafkaSchemaLog) -> web.AppRunner:
    LOG.info("connecting to Kafka at %s, topic %s", options.bootstrap, options.topic)
    await log.connect(options.startup_timeout_s)
    registry = SchemaRegistry(log)
    await registry.load()
    runner = web.AppRunner(
        create_app(registry), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, options.host, options.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T | None:
    """Run `work`, unless `stop` is set first (then cancel it and return None)."""
    work_task = asyncio.ensure_future(work)
    stop_task = asyncio.ensure_future(stop.wait())
    await asyncio.wait({work_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if work_task.done():
        stop_task.cancel()
        return work_task.result()
    work_task.cancel()
    try:
        await work_task
    except asyncio.CancelledError:
        pass
    except (StoreError, OSError):  # failed while being stopped: the stop wins
        pass
    return None
