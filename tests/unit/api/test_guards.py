"""Safe by default, over HTTP: write keys, media type, Host allow-list, JSON depth, disconnects.

The worker's real routes are served by aiohttp exactly as faust serves them (an ``AppRunner``
without handler cancellation) on a free loopback port; nothing reaches Kafka: publishing a
command is replaced by a fake that records what it was given.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web as aiohttp_web

from api import commands
from api.commands import PreparedCommand
from api.http import JSON_DEPTH_MAX, host_of
from tests.unit.api.fixtures import hub_with_routes

PREFIX = "/api/v1/fin"
COMPENSATIONS = f"{PREFIX}/compensations"
COMPENSATION = {"target_event_id": "5a3c1e6e-0b1f-4c55-9d7a-000000000001", "reason": "typo"}
WRITE = "the-write-key"
JSON = {"Content-Type": "application/json"}


@dataclass
class Served:
    port: int
    published: list[PreparedCommand] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Scenario = Callable[[Served, aiohttp.ClientSession], Awaitable[None]]


@pytest.fixture
def serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Callable[[Scenario], None]]]:
    """``serve(**settings)(scenario)`` runs ``scenario`` against a worker with those settings."""

    def with_settings(**settings: Any) -> Callable[[Scenario], None]:
        settings.setdefault("read_key", None)
        settings.setdefault("write_key", None)
        hub = hub_with_routes(tmp_path / f"data-{len(list(tmp_path.iterdir()))}", **settings)
        web_app = getattr(hub.app.web, "web_app", None)
        assert isinstance(web_app, aiohttp_web.Application)

        def run(scenario: Scenario) -> None:
            async def main() -> None:
                runner = aiohttp_web.AppRunner(web_app, access_log=None)
                await runner.setup()
                site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                served = Served(port=runner.addresses[0][1])

                async def fake_publish(topic: Any, command: PreparedCommand) -> tuple[int, int]:
                    served.published.append(command)
                    return 0, len(served.published) - 1

                monkeypatch.setattr(commands, "publish", fake_publish)
                try:
                    async with aiohttp.ClientSession() as session:
                        await scenario(served, session)
                finally:
                    await runner.cleanup()

            asyncio.run(main())

        return run

    yield with_settings


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    async with response:
        body = await response.json(content_type=None)
        assert isinstance(body, dict)
        return response.status, body


# --- write keys ----------------------------------------------------------------------------


def test_without_a_write_key_every_command_is_refused_with_403_saying_how_to_open_writes(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        for headers in ({}, {"X-API-Key": "anything"}):
            status, body = await answer(
                await session.post(served.url + COMPENSATIONS, json=COMPENSATION, headers=headers)
            )
            assert status == 403, body
            assert "FIN_API_WRITE_KEY" in body["detail"]
            assert "FIN_API_INSECURE_WRITES" in body["detail"]
        assert served.published == []

    serve()(scenario)


def test_reads_without_a_read_key_stay_open_while_writes_are_closed(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        async with session.get(served.url + "/metrics") as response:
            assert response.status == 200

    serve()(scenario)


def test_with_insecure_writes_a_json_command_without_a_key_is_accepted(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        status, body = await answer(
            await session.post(served.url + COMPENSATIONS, json=COMPENSATION)
        )
        assert status == 202, body
        assert len(served.published) == 1

    serve(api_insecure_writes=True)(scenario)


def test_with_a_write_key_the_insecure_writes_flag_opens_nothing(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        status, _ = await answer(await session.post(served.url + COMPENSATIONS, json=COMPENSATION))
        assert status == 401
        status, _ = await answer(
            await session.post(
                served.url + COMPENSATIONS, json=COMPENSATION, headers={"X-API-Key": WRITE}
            )
        )
        assert status == 202

    serve(write_key=WRITE, api_insecure_writes=True)(scenario)


# --- media type: no forged cross-site command ----------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_cross_site_shaped_command_without_json_content_type_is_refused_with_415(
    serve: Callable[..., Callable[[Scenario], None]], content_type: str | None
) -> None:
    """What a web page may send without a CORS preflight, even to a worker open for a demo."""

    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        headers = {"Origin": "http://evil.example"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        status, body = await answer(
            await session.post(
                served.url + COMPENSATIONS,
                data=b'{"target_event_id": "5a3c1e6e-0b1f-4c55-9d7a-000000000001", "reason": "x"}',
                headers=headers,
                skip_auto_headers=["Content-Type"],
            )
        )
        assert status == 415, body
        assert body["title"] == "unsupported media type"
        assert "application/json" in body["detail"]
        assert served.published == []

    serve(api_insecure_writes=True)(scenario)


def test_json_with_a_charset_parameter_is_json(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        status, body = await answer(
            await session.post(
                served.url + COMPENSATIONS,
                json=COMPENSATION,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        )
        assert status == 202, body

    serve(api_insecure_writes=True)(scenario)


# --- JSON depth ----------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """An object whose field holds arrays, ``depth`` levels in all."""
    return b'{"reason":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_a_body_nested_deeper_than_400_levels_is_a_400_naming_the_body_never_a_500(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        for depth in (JSON_DEPTH_MAX + 1, 30_000):
            status, body = await answer(
                await session.post(served.url + COMPENSATIONS, data=nested(depth), headers=JSON)
            )
            assert status == 400, body
            assert body["parameter"] == "body"
            assert f"deeper than {JSON_DEPTH_MAX}" in body["detail"]
        # At the limit the body is parsed, and refused for what it says instead.
        status, body = await answer(
            await session.post(
                served.url + COMPENSATIONS, data=nested(JSON_DEPTH_MAX), headers=JSON
            )
        )
        assert status == 400, body
        assert "deeper" not in body["detail"]

    serve(api_insecure_writes=True)(scenario)


# --- Host allow-list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/metrics", "/", f"{PREFIX}/status", f"{PREFIX}/ledger/trial-balance", "/no/such/path"],
)
def test_a_foreign_host_header_is_refused_with_421_before_anything_else(
    serve: Callable[..., Callable[[Scenario], None]], path: str
) -> None:
    """DNS rebinding: a page from evil.example resolving to 127.0.0.1 names evil.example."""

    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        status, body = await answer(
            await session.get(served.url + path, headers={"Host": "evil.example:6066"})
        )
        assert status == 421, body
        assert body["title"] == "misdirected request"
        assert "evil.example" in body["detail"]

    serve()(scenario)


def test_a_foreign_host_cannot_send_a_command_even_to_a_worker_open_for_a_demo(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        status, _ = await answer(
            await session.post(
                served.url + COMPENSATIONS,
                json=COMPENSATION,
                headers={"Host": "evil.example", "Origin": "http://evil.example"},
            )
        )
        assert status == 421
        assert served.published == []

    serve(api_insecure_writes=True)(scenario)


def test_health_and_ready_answer_whatever_the_host(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        async with session.get(
            served.url + "/health", headers={"Host": "10.0.0.7:6066"}
        ) as response:
            assert response.status == 200

    serve()(scenario)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:6066", "localhost", "LOCALHOST.:8080", "[::1]:6066", "worker-1:6066"]
)
def test_the_bind_host_localhost_and_loopback_are_answered_with_any_port(
    serve: Callable[..., Callable[[Scenario], None]], host: str
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        async with session.get(served.url + "/metrics", headers={"Host": host}) as response:
            assert response.status == 200

    serve(web_host="worker-1")(scenario)


def test_fin_allowed_hosts_names_the_hosts_answered(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        for host, status in (("fin.example.com", 200), ("localhost", 421), ("127.0.0.1", 200)):
            async with session.get(served.url + "/metrics", headers={"Host": host}) as response:
                assert response.status == status, host

    serve(allowed_hosts=("fin.example.com",))(scenario)


def test_fin_allowed_hosts_star_answers_any_host(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        async with session.get(
            served.url + "/metrics", headers={"Host": "anything.example"}
        ) as response:
            assert response.status == 200

    serve(allowed_hosts=("*",))(scenario)


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def test_a_request_without_a_host_header_is_refused_with_421(
    serve: Callable[..., Callable[[Scenario], None]],
) -> None:
    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        answered = await asyncio.to_thread(
            raw_exchange, served.port, b"GET /metrics HTTP/1.0\r\n\r\n"
        )
        assert answered.startswith(b"HTTP/1.0 421"), answered[:200]
        assert b"no Host header" in answered

    serve()(scenario)


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:6066", "127.0.0.1"),
        ("Worker-1", "worker-1"),
        ("localhost.:80", "localhost"),
        ("[::1]:6066", "::1"),
        ("[::1]", "::1"),
        ("::1", None),
        ("evil.example:", None),
        ("evil.example:http", None),
        ("[::1]x6066", None),
        ("[::1", None),
        ("", None),
        (":6066", None),
    ],
)
def test_the_host_of_a_host_header_is_its_name_without_port_or_none_when_malformed(
    header: str, host: str | None
) -> None:
    assert host_of(header) == host


# --- disconnects ---------------------------------------------------------------------------


def test_a_client_that_disconnects_mid_body_is_logged_at_debug_and_never_as_an_error(
    serve: Callable[..., Callable[[Scenario], None]], caplog: pytest.LogCaptureFixture
) -> None:
    head = (
        f"POST {COMPENSATIONS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    ).encode()

    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        for framing, partial in (
            (b"Content-Length: 1000\r\n\r\n", b'{"reason": '),
            (b"Transfer-Encoding: chunked\r\n\r\n", b'b\r\n{"reason": \r\n'),
        ):
            _, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(head + framing + partial)
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.2)
        assert served.published == []

    with caplog.at_level(logging.DEBUG):
        serve(api_insecure_writes=True)(scenario)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    went_away = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert len(went_away) == 2 and all(r.levelno == logging.DEBUG for r in went_away)


def test_a_malformed_chunked_body_is_a_400_logged_at_debug_and_never_as_an_error(
    serve: Callable[..., Callable[[Scenario], None]], caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        f"POST {COMPENSATIONS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    ).encode()

    async def scenario(served: Served, session: aiohttp.ClientSession) -> None:
        answered = await asyncio.to_thread(raw_exchange, served.port, request)
        assert answered.split(b" ")[1] == b"400", answered[:200]

    with caplog.at_level(logging.DEBUG):
        serve(api_insecure_writes=True)(scenario)

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("malformed request refused" in r.getMessage() for r in caplog.records)


# --- the warning at start ------------------------------------------------------------------


def test_an_unauthenticated_worker_warns_loudly_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        hub_with_routes(tmp_path, read_key=None, write_key=None, api_insecure_writes=True)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SECURITY" in w and "reads are UNAUTHENTICATED" in w for w in warnings)
    assert any("SECURITY" in w and "writes are UNAUTHENTICATED" in w for w in warnings)


def test_a_worker_with_both_keys_starts_without_a_security_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        hub_with_routes(tmp_path, read_key="r", write_key="w")

    assert [r.getMessage() for r in caplog.records if "SECURITY" in r.getMessage()] == []
