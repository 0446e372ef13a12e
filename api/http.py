"""HTTP plumbing every FIN endpoint shares: JSON bodies, problem responses, API keys, bodies.

Every error FIN answers is a JSON *problem* ``{"status", "title", "detail", ...}`` (the shape of
RFC 9457 without its URIs), whether a handler produced it, faust raised a ``WebError`` or
aiohttp's router found no route or method: ``install_problem_middleware`` converts the last two
and any unexpected exception (logged, answered 500 without internals).

API keys (``X-API-Key`` header, or ``Authorization: Bearer``) are compared in constant time.
A missing or unknown key is 401, a read key on a write endpoint is 403; neither body carries data.
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
from faust.web import Request, Response, View
from faust.web.exceptions import WebError

from ledger.rejections import Reason

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE: Final = "application/json"
# Commands are a few hundred bytes; anything much larger is not a command.
REQUEST_BODY_BYTES_MAX: Final = 64 * 1024


class BadParameterError(Exception):
    """A request parameter (path, query, header or body field) is missing or malformed.

    ``reason`` names the ledger rejection when one applies (``period_invalid`` for a period
    that is not ``2024-03`` or ``2024-Q1``), so clients see the same names as in ``fin.dlq``.
    """

    def __init__(self, name: str, detail: str, reason: Reason | None = None) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail
        self.reason = reason


class RequestRefusedError(Exception):
    """A request refused before its parameters are looked at (size, media type)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


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
    """The configured keys; ``None`` leaves that kind of endpoint open (local development)."""

    read_key: str | None
    write_key: str | None

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
        open_endpoint = self.write_key is None if write else self.read_key is None
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


def refuse_access(view: View, status: int) -> Response:
    if status == 403:
        return problem(view, 403, "forbidden", "this endpoint needs the write key")
    return problem(view, 401, "unauthorised", "a valid X-API-Key header is required")


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
    async for chunk in content.iter_any():
        body += chunk
        if len(body) > limit:
            raise RequestRefusedError(
                413, "request body too large", f"a request body may hold at most {limit} bytes"
            )
    return bytes(body)


def require_json_media_type(request: Request) -> None:
    """A body FIN reads must be JSON; no Content-Type at all is taken as JSON."""
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type not in ("", JSON_CONTENT_TYPE):
        raise RequestRefusedError(
            415, "unsupported media type", f"send {JSON_CONTENT_TYPE}, not {media_type!r}"
        )


# --- errors outside any handler ------------------------------------------------------------

Handler = Callable[[aiohttp_web.Request], Awaitable[aiohttp_web.StreamResponse]]


@aiohttp_web.middleware
async def _problem_middleware(
    request: aiohttp_web.Request, handler: Handler
) -> aiohttp_web.StreamResponse:
    try:
        return await handler(request)
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


def install_problem_middleware(app: faust.App) -> None:
    """Answer unknown paths, unsupported methods and crashes with problem bodies."""
    web_app = getattr(app.web, "web_app", None)
    assert isinstance(web_app, aiohttp_web.Application), "FIN runs faust's aiohttp web driver"
    web_app.middlewares.append(_problem_middleware)
