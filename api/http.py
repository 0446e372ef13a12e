"""HTTP plumbing every FIN endpoint shares: JSON bodies, problem responses, API keys, bodies.

Every error FIN answers is a JSON *problem* ``{"status", "title", "detail", ...}`` (the shape of
RFC 9457 without its URIs), whether a handler produced it, faust raised a ``WebError`` or
aiohttp's router found no route or method: ``install_problem_middleware`` converts the last two
and any unexpected exception (logged, answered 500 without internals).

API keys (``X-API-Key`` header, or ``Authorization: Bearer``) are compared in constant time.
A missing or unknown key is 401, a read key on a write endpoint is 403; neither body carries data.

Safe by default: without a write key, commands are refused (403) unless FIN_API_INSECURE_WRITES=1
opens them; a body is read only when sent as ``application/json`` (a browser cannot send that
cross-site without a CORS preflight, which FIN never grants), and JSON nests at most
``JSON_DEPTH_MAX`` levels. A request naming a host the worker does not answer for (DNS
rebinding) is 421, except /health and /ready. A client that goes away mid-body is logged at
DEBUG: it is not the worker's error.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from http import HTTPStatus
from typing import Any, Final

import faust
import orjson
from aiohttp import web as aiohttp_web
from aiohttp.http_exceptions import HttpProcessingError
from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from errors import FinError
from ledger.rejections import Reason

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE: Final = "application/json"
# Commands are a few hundred bytes; anything much larger is not a command.
REQUEST_BODY_BYTES_MAX: Final = 64 * 1024
# Deeper JSON is no command; Python's parser would fail with RecursionError long before 64 KiB.
JSON_DEPTH_MAX: Final = 400
# Answered whatever the Host header: they carry no data, and orchestrators probe by address.
HOST_CHECK_EXEMPT_PATHS: Final = frozenset({"/health", "/ready"})


class BadParameterError(FinError):
    """A request parameter (path, query, header or body field) is missing or malformed.

    ``reason`` names the ledger rejection when one applies (``period_invalid`` for a period
    that is not ``2024-03`` or ``2024-Q1``), so clients see the same names as in ``fin.dlq``.
    """

    def __init__(self, name: str, detail: str, reason: Reason | None = None) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail
        self.reason = reason


class RequestRefusedError(FinError):
    """A request refused before its parameters are looked at (size, media type)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


class ClientDisconnectedError(FinError):
    """The client went away before its request body was complete: nobody to answer."""


def to_jsonable(value: Any) -> Any:
    """Money and ratios as decimal strings (two places when they have no more), dates as ISO."""
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(to_jsonable(body))


def json_response(
    view: View,
    body: Any,
    status: int = 200,
    headers: MutableMapping[str, str] | None = None,
) -> Response:
    return view.bytes(
        json_bytes(body), content_type=JSON_CONTENT_TYPE, status=status, headers=headers
    )


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "title": title, "detail": detail, **extra}


def problem(
    view: View,
    status: int,
    title: str,
    detail: str,
    headers: MutableMapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    return json_response(view, problem_body(status, title, detail, **extra), status, headers)


def bad_parameter(view: View, error: BadParameterError) -> Response:
    extra: dict[str, Any] = {"parameter": error.name}
    if error.reason is not None:
        extra["reason"] = error.reason.value
    return problem(view, 400, "bad parameter", error.detail, **extra)


# --- API keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys. No read key leaves reads open; no write key closes writes (403)
    unless ``insecure_writes`` opens them to anyone (a demo)."""

    read_key: str | None
    write_key: str | None
    insecure_writes: bool = False

    @property
    def writes_disabled(self) -> bool:
        """No write key and not opened: every command is refused, whatever key it brings."""
        return self.write_key is None and not self.insecure_writes

    @property
    def writes_open(self) -> bool:
        return self.write_key is None and self.insecure_writes

    def refusal(self, given: str | None, *, write: bool) -> int | None:
        """None when ``given`` may call the endpoint, else the status to refuse with (401/403).

        A write key may also read. Every accepted key is compared, in constant time, so the
        time taken says nothing about which key (or how much of one) matched.
        """
        if write:
            accepted = [self.write_key] if self.write_key is not None else []
            insufficient = [self.read_key] if self.read_key is not None else []
        else:
            accepted = [key for key in (self.read_key, self.write_key) if key is not None]
            insufficient = []
        if write and self.writes_disabled:
            return 403
        open_endpoint = self.writes_open if write else self.read_key is None
        if open_endpoint:
            return None
        if not given:
            return 401
        given_bytes = _key_bytes(given)
        matches = [hmac.compare_digest(given_bytes, _key_bytes(key)) for key in accepted]
        if any(matches):
            return None
        weaker = [hmac.compare_digest(given_bytes, _key_bytes(key)) for key in insufficient]
        return 403 if any(weaker) else 401


def _key_bytes(text: str) -> bytes:
    # Header values may hold any code point; surrogatepass encodes every str, injectively.
    return text.encode("utf-8", "surrogatepass")


def given_key(request: Request) -> str | None:
    """The key a request presents in its headers: X-API-Key, else a bearer token."""
    header = request.headers.get("X-API-Key")
    if header:
        return header
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    return None


def refuse_access(view: View, status: int, *, writes_disabled: bool = False) -> Response:
    if status == 403 and writes_disabled:
        return problem(
            view,
            403,
            "forbidden",
            "commands are disabled on this worker: it has no write key (FIN_API_WRITE_KEY); "
            "FIN_API_INSECURE_WRITES=1 opens them to anyone, for a demo only",
        )
    if status == 403:
        return problem(view, 403, "forbidden", "this endpoint needs the write key")
    return problem(view, 401, "unauthorised", "a valid X-API-Key header is required")


def security_warnings(keys: ApiKeys, allowed_hosts: frozenset[str]) -> list[str]:
    """What an operator must know at start: everything that answers without a key."""
    warnings = []
    if keys.read_key is None:
        warnings.append(
            "reads are UNAUTHENTICATED: anyone reaching this worker reads budgets, credit, "
            "payables, the ledger and /metrics (set FIN_API_KEY)"
        )
    if keys.writes_open:
        warnings.append(
            "writes are UNAUTHENTICATED (FIN_API_INSECURE_WRITES=1): anyone reaching this worker "
            "can post payments, budgets, credit limits and compensations; for a demo only (set "
            "FIN_API_WRITE_KEY)"
        )
    elif keys.writes_disabled:
        warnings.append(
            "commands are refused (403): no write key is set (FIN_API_WRITE_KEY, or FIN_API_KEY "
            "for both); FIN_API_INSECURE_WRITES=1 opens them to anyone, for a demo only"
        )
    elif keys.insecure_writes:
        warnings.append("FIN_API_INSECURE_WRITES=1 is ignored: a write key is set")
    if "*" in allowed_hosts:
        warnings.append(
            "any Host header is answered (FIN_ALLOWED_HOSTS=*): DNS rebinding is not refused"
        )
    return warnings


# --- views ---------------------------------------------------------------------------------


class FinView(View):
    """A faust view whose errors are problem bodies, and which serves HEAD only beside GET."""

    def get_methods(self) -> set[str]:
        # faust routes HEAD for every view; on a view without GET it could only answer 405.
        methods = set(super().get_methods())
        if type(self).get is View.get:
            methods.discard("HEAD")
        return methods

    async def on_request_error(self, request: Request, exc: WebError) -> Response:
        status = int(exc.code)
        headers: dict[str, str] = {}
        if status == 405:
            headers["Allow"] = ", ".join(sorted(self.get_methods()))
        return problem(self, status, _title(status), str(exc.detail), headers=headers)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


async def read_body(request: Request, limit: int = REQUEST_BODY_BYTES_MAX) -> bytes:
    """The request body, refused (413) as soon as it grows past ``limit`` bytes."""
    content = getattr(request, "content", None)
    assert content is not None, "FIN runs faust's aiohttp web driver"
    body = bytearray()
    try:
        async for chunk in content.iter_any():
            body += chunk
            if len(body) > limit:
                raise RequestRefusedError(
                    413, "request body too large", f"a request body may hold at most {limit} bytes"
                )
    except ConnectionError as exc:
        raise ClientDisconnectedError(str(exc)) from exc
    except HttpProcessingError as exc:  # e.g. a malformed chunked encoding
        raise RequestRefusedError(400, "malformed request body", exc.message) from exc
    return bytes(body)


def require_json_media_type(request: Request) -> None:
    """A body FIN reads must be sent as JSON: a missing or other Content-Type is 415.

    The three types a web page may send cross-site without a CORS preflight (text/plain, forms)
    are thereby refused, so a page a user opens cannot forge a command.
    """
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type == "":
        raise RequestRefusedError(
            415,
            "unsupported media type",
            f"a Content-Type: {JSON_CONTENT_TYPE} header is required with a body",
        )
    if media_type != JSON_CONTENT_TYPE:
        raise RequestRefusedError(
            415, "unsupported media type", f"send {JSON_CONTENT_TYPE}, not {media_type[:80]!r}"
        )


# --- errors outside any handler ------------------------------------------------------------

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


@aiohttp_web.middleware
async def _problem_middleware(
    request: aiohttp_web.Request, handler: Handler
) -> aiohttp_web.StreamResponse:
    try:
        return await handler(request)
    except ClientDisconnectedError as exc:
        # Not the worker's fault, and one line per disconnect must not flood the log.
        log.debug("client went away during %s %s: %s", request.method, request.path, exc)
        return _problem_response(400, "client disconnected", "the request body was cut off", {})
    except aiohttp_web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        detail = (
            f"no endpoint at {request.path}; the API is described at /api/v1/fin/openapi.json"
            if exc.status == 404
            else exc.reason
        )
        return _problem_response(exc.status, exc.reason.lower(), detail, headers)
    except Exception:
        # A bug: logged with its traceback here, answered without internals.
        log.exception("unhandled error answering %s %s", request.method, request.path)
        return _problem_response(
            500, "internal server error", "the worker failed to answer; see its log", {}
        )


def _problem_response(
    status: int, title: str, detail: str, headers: Mapping[str, str]
) -> aiohttp_web.Response:
    return aiohttp_web.Response(
        body=orjson.dumps(problem_body(status, title, detail)),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        headers=dict(headers),
    )


class _MalformedRequestsAtDebug(logging.Filter):
    """aiohttp answers a malformed request (bad chunk size, header...) with 400 itself, and logs
    the client's error as an ERROR with a traceback; one DEBUG line instead, no log flooding."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            log.debug("malformed request refused (400) by the web server: %s", error.message)
            return False
        return True


_MALFORMED_REQUESTS_AT_DEBUG: Final = _MalformedRequestsAtDebug()


def install_problem_middleware(app: faust.App) -> None:
    """Answer unknown paths, unsupported methods and crashes with problem bodies."""
    _web_app(app).middlewares.append(_problem_middleware)
    # The same filter object is added once, however many apps a process builds.
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS_AT_DEBUG)


def _web_app(app: faust.App) -> aiohttp_web.Application:
    web_app = getattr(app.web, "web_app", None)
    assert isinstance(web_app, aiohttp_web.Application), "FIN runs faust's aiohttp web driver"
    return web_app


def host_of(header: str) -> str | None:
    """The host name of a Host header value (lower case, IPv6 unbracketed), None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end > 0 else ("", "")
    else:
        host, colon, port = value.rpartition(":")
        host, rest = (host, colon + port) if colon else (value, "")
        if ":" in host:
            return None
    port = rest[1:]
    if rest and not (rest[0] == ":" and port.isascii() and port.isdigit()):
        return None
    host = host.rstrip(".")
    return host or None


def install_host_guard(app: faust.App, allowed: frozenset[str]) -> None:
    """Refuse (421) requests whose Host header names a host this worker does not answer for:
    a page served by a rebinding DNS name must not reach a worker on the victim's machine."""
    any_host = "*" in allowed

    @aiohttp_web.middleware
    async def host_guard(
        request: aiohttp_web.Request, handler: Handler
    ) -> aiohttp_web.StreamResponse:
        if any_host or request.path in HOST_CHECK_EXEMPT_PATHS:
            return await handler(request)
        raw = request.headers.get("Host")
        if raw is not None and host_of(raw) in allowed:
            return await handler(request)
        named = "no Host header" if raw is None else f"Host {raw[:100]!r}"
        return _problem_response(
            421,
            "misdirected request",
            f"this worker does not answer for {named}; allowed are its FIN_WEB_HOST and "
            "FIN_ALLOWED_HOSTS (default localhost, 127.0.0.1, ::1), with any port",
            {},
        )

    # Before every other middleware: a refused host learns nothing, not even a 404.
    _web_app(app).middlewares.insert(0, host_guard)
