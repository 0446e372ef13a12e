"""Confluent Schema Registry's REST API over `SchemaRegistry`, served with aiohttp.

Handlers only parse the request and shape the answer; every decision is in `registry.service`.
Requests and answers are JSON with Confluent's media types; every error answer is
{"error_code": ..., "message": ...}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from registry.avro_schema import SCHEMA_TYPE_AVRO, SUPPORTED_SCHEMA_TYPES, AvroSchema
from registry.compatibility import CompatibilityLevel
from registry.errors import RegistryError
from registry.service import SchemaRegistry, VersionSpec, parse_schema, validate_subject
from registry.store import SubjectVersion

LOG = logging.getLogger(__name__)

REQUEST_BYTES_MAX = 2 * 1024 * 1024
CONTENT_TYPE_V1 = "application/vnd.schemaregistry.v1+json"
CONTENT_TYPE_ANY_VERSION = "application/vnd.schemaregistry+json"
CONTENT_TYPE_JSON = "application/json"
# What a client may send (Confluent also takes octet-stream), and what we may answer.
REQUEST_CONTENT_TYPES = frozenset(
    {CONTENT_TYPE_V1, CONTENT_TYPE_ANY_VERSION, CONTENT_TYPE_JSON, "application/octet-stream"}
)
RESPONSE_CONTENT_TYPES = (CONTENT_TYPE_V1, CONTENT_TYPE_ANY_VERSION, CONTENT_TYPE_JSON)

REGISTRY_KEY = web.AppKey("registry", SchemaRegistry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(RegistryError):
    """A refusal about the request itself (malformed body, media type): error_code = status."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = http_status


def create_app(registry: SchemaRegistry) -> web.Application:
    app = web.Application(middlewares=[_errors_middleware], client_max_size=REQUEST_BYTES_MAX)
    app[REGISTRY_KEY] = registry
    app.router.add_routes(
        [
            web.get("/", _root),
            web.get("/subjects", _list_subjects),
            web.post("/subjects/{subject}", _lookup),
            web.delete("/subjects/{subject}", _delete_subject),
            web.get("/subjects/{subject}/versions", _list_versions),
            web.post("/subjects/{subject}/versions", _register),
            web.get("/subjects/{subject}/versions/{version}", _get_version),
            web.delete("/subjects/{subject}/versions/{version}", _delete_version),
            web.get("/subjects/{subject}/versions/{version}/schema", _get_version_schema),
            web.get("/subjects/{subject}/versions/{version}/referencedby", _referenced_by),
            web.get(r"/schemas/ids/{schema_id:\d+}", _get_schema_by_id),
            web.get(r"/schemas/ids/{schema_id:\d+}/schema", _get_raw_schema_by_id),
            web.get(r"/schemas/ids/{schema_id:\d+}/versions", _get_versions_by_id),
            web.get(r"/schemas/ids/{schema_id:\d+}/subjects", _get_subjects_by_id),
            web.get("/schemas/types", _schema_types),
            web.get("/config", _get_global_config),
            web.put("/config", _put_global_config),
            web.delete("/config", _delete_global_config),
            web.get("/config/{subject}", _get_subject_config),
            web.put("/config/{subject}", _put_subject_config),
            web.delete("/config/{subject}", _delete_subject_config),
            web.post("/compatibility/subjects/{subject}/versions", _check_all),
            web.post("/compatibility/subjects/{subject}/versions/{version}", _check_version),
            web.get("/mode", _get_mode),
            web.get("/mode/{subject}", _get_mode),
        ]
    )
    return app


# --- plumbing ---------------------------------------------------------------------------------


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    content_type = CONTENT_TYPE_V1
    try:
        content_type = _response_content_type(request)
        _check_request(request)
        response = await handler(request)
    except RegistryError as exc:
        if exc.http_status >= 500:
            LOG.error("%s %s failed: %s", request.method, request.path, exc.message)
        return _json(
            {"error_code": exc.error_code, "message": exc.message},
            content_type,
            status=exc.http_status,
        )
    except web.HTTPException as exc:  # no route, wrong method, body too large
        if exc.status < 400:
            raise
        return _json(
            {"error_code": exc.status, "message": exc.reason}, content_type, status=exc.status
        )
    except Exception:
        LOG.exception("unexpected error on %s %s", request.method, request.path)
        return _json(
            {"error_code": 50001, "message": "Internal Server Error"}, content_type, status=500
        )
    if response.content_type == CONTENT_TYPE_V1 and content_type != CONTENT_TYPE_V1:
        response.content_type = content_type
    return response


def _response_content_type(request: web.Request) -> str:
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return CONTENT_TYPE_V1
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for media_type in offered:
        if media_type in RESPONSE_CONTENT_TYPES:
            return media_type
        if media_type in ("*/*", "application/*"):
            return CONTENT_TYPE_V1
    raise HttpError(
        406, f"Not Acceptable: this registry answers {', '.join(RESPONSE_CONTENT_TYPES)}"
    )


def _check_request(request: web.Request) -> None:
    if request.content_length is not None and request.content_length > REQUEST_BYTES_MAX:
        raise HttpError(413, f"Request body larger than {REQUEST_BYTES_MAX} bytes")
    if request.method in ("POST", "PUT") and request.body_exists:
        media_type = request.content_type.lower()
        # aiohttp reports a missing Content-Type as application/octet-stream.
        if media_type not in REQUEST_CONTENT_TYPES:
            raise HttpError(415, f"Unsupported Media Type {media_type}")


def _json(
    document: object, content_type: str = CONTENT_TYPE_V1, *, status: int = 200
) -> web.Response:
    return web.Response(
        text=json.dumps(document, ensure_ascii=False),
        status=status,
        content_type=content_type,
        charset="utf-8",
    )


async def _body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"Malformed JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise HttpError(400, "Malformed JSON: the body must be a JSON object")
    return document


def _registry(request: web.Request) -> SchemaRegistry:
    return request.app[REGISTRY_KEY]


def _subject(request: web.Request) -> str:
    return validate_subject(request.match_info["subject"])


def _version(request: web.Request) -> VersionSpec:
    return VersionSpec.parse(request.match_info["version"])


def _schema_id(request: web.Request) -> int:
    return int(request.match_info["schema_id"])


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").strip().lower() in ("true", "1", "yes")


def _page(request: web.Request, items: list[object]) -> list[object]:
    """Confluent's offset/limit query parameters (limit -1: all)."""
    try:
        offset = max(int(request.query.get("offset", "0")), 0)
        limit = int(request.query.get("limit", "-1"))
    except ValueError as exc:
        raise HttpError(400, f"offset and limit must be integers: {exc}") from exc
    selected = items[offset:]
    return selected if limit < 0 else selected[:limit]


def _version_document(entry: SubjectVersion) -> dict[str, object]:
    document: dict[str, object] = {
        "subject": entry.subject,
        "version": entry.version,
        "id": entry.schema_id,
        "schema": entry.schema,
    }
    if entry.schema_type != SCHEMA_TYPE_AVRO:
        document["schemaType"] = entry.schema_type
    return document


def _schema_from_body(body: dict[str, object]) -> AvroSchema:
    return parse_schema(body.get("schema"), body.get("schemaType"), body.get("references"))


# --- handlers ---------------------------------------------------------------------------------


async def _root(request: web.Request) -> web.Response:
    return _json({})


async def _list_subjects(request: web.Request) -> web.Response:
    subjects = _registry(request).subjects(
        include_deleted=_flag(request, "deleted"),
        deleted_only=_flag(request, "deleted_only") or _flag(request, "deletedOnly"),
        prefix=request.query.get("subjectPrefix", ""),
    )
    return _json(_page(request, list(subjects)))


async def _list_versions(request: web.Request) -> web.Response:
    versions = _registry(request).versions(
        _subject(request), include_deleted=_flag(request, "deleted")
    )
    return _json(_page(request, list(versions)))


async def _get_version(request: web.Request) -> web.Response:
    entry = _registry(request).get_version(
        _subject(request), _version(request), include_deleted=_flag(request, "deleted")
    )
    return _json(_version_document(entry))


async def _get_version_schema(request: web.Request) -> web.Response:
    entry = _registry(request).get_version(
        _subject(request), _version(request), include_deleted=_flag(request, "deleted")
    )
    return web.Response(text=entry.schema, content_type=CONTENT_TYPE_V1, charset="utf-8")


async def _referenced_by(request: web.Request) -> web.Response:
    # References are not supported, so nothing can refer to a version; it must exist though.
    _registry(request).get_version(_subject(request), _version(request))
    return _json([])


async def _register(request: web.Request) -> web.Response:
    raw_subject = request.match_info["subject"]
    try:
        subject = _subject(request)
        schema = _schema_from_body(await _body(request))
    except RegistryError as exc:
        # Incompatible schemas are logged by the service, with the level and every reason.
        LOG.info("refused subject=%r: %s", raw_subject, exc.message)
        raise
    schema_id = await _registry(request).register(subject, schema)
    return _json({"id": schema_id})


async def _lookup(request: web.Request) -> web.Response:
    subject = _subject(request)
    body = await _body(request)
    schema = _schema_from_body(body)
    entry = _registry(request).lookup(subject, schema, include_deleted=_flag(request, "deleted"))
    return _json(_version_document(entry))


async def _delete_subject(request: web.Request) -> web.Response:
    versions = await _registry(request).delete_subject(
        _subject(request), permanent=_flag(request, "permanent")
    )
    return _json(versions)


async def _delete_version(request: web.Request) -> web.Response:
    version = await _registry(request).delete_version(
        _subject(request), _version(request), permanent=_flag(request, "permanent")
    )
    return _json(version)


async def _get_schema_by_id(request: web.Request) -> web.Response:
    text, schema_type = _registry(request).schema_by_id(_schema_id(request))
    document: dict[str, object] = {"schema": text}
    if schema_type != SCHEMA_TYPE_AVRO:
        document["schemaType"] = schema_type
    return _json(document)


async def _get_raw_schema_by_id(request: web.Request) -> web.Response:
    text, _ = _registry(request).schema_by_id(_schema_id(request))
    return web.Response(text=text, content_type=CONTENT_TYPE_V1, charset="utf-8")


async def _get_versions_by_id(request: web.Request) -> web.Response:
    entries = _registry(request).users_of(
        _schema_id(request), include_deleted=_flag(request, "deleted")
    )
    subject_filter = request.query.get("subject")
    documents: list[object] = [
        {"subject": entry.subject, "version": entry.version}
        for entry in entries
        if subject_filter is None or entry.subject == subject_filter
    ]
    return _json(_page(request, documents))


async def _get_subjects_by_id(request: web.Request) -> web.Response:
    entries = _registry(request).users_of(
        _schema_id(request), include_deleted=_flag(request, "deleted")
    )
    subject_filter = request.query.get("subject")
    subjects: list[object] = [
        *sorted(
            {
                entry.subject
                for entry in entries
                if subject_filter is None or entry.subject == subject_filter
            }
        )
    ]
    return _json(_page(request, subjects))


async def _schema_types(request: web.Request) -> web.Response:
    return _json(list(SUPPORTED_SCHEMA_TYPES))


async def _get_global_config(request: web.Request) -> web.Response:
    return _json({"compatibilityLevel": _registry(request).global_level().value})


async def _put_global_config(request: web.Request) -> web.Response:
    level = _level_from_body(await _body(request))
    await _registry(request).set_level(None, level)
    return _json({"compatibility": level.value})


async def _delete_global_config(request: web.Request) -> web.Response:
    previous = await _registry(request).delete_level(None)
    return _json({"compatibilityLevel": previous.value})


async def _get_subject_config(request: web.Request) -> web.Response:
    level = _registry(request).subject_level(
        _subject(request), default_to_global=_flag(request, "defaultToGlobal")
    )
    return _json({"compatibilityLevel": level.value})


async def _put_subject_config(request: web.Request) -> web.Response:
    subject = _subject(request)
    level = _level_from_body(await _body(request))
    await _registry(request).set_level(subject, level)
    return _json({"compatibility": level.value})


async def _delete_subject_config(request: web.Request) -> web.Response:
    previous = await _registry(request).delete_level(_subject(request))
    return _json({"compatibilityLevel": previous.value})


def _level_from_body(body: dict[str, object]) -> CompatibilityLevel:
    # Confluent's clients send "compatibility"; newer ones may send "compatibilityLevel".
    return CompatibilityLevel.parse(body.get("compatibility", body.get("compatibilityLevel")))


async def _check_version(request: web.Request) -> web.Response:
    subject = _subject(request)
    spec = _version(request)
    schema = _schema_from_body(await _body(request))
    return _check_answer(_registry(request), subject, spec, schema)


async def _check_all(request: web.Request) -> web.Response:
    subject = _subject(request)
    schema = _schema_from_body(await _body(request))
    return _check_answer(_registry(request), subject, None, schema)


def _check_answer(
    registry: SchemaRegistry, subject: str, spec: VersionSpec | None, schema: AvroSchema
) -> web.Response:
    result = registry.check(subject, spec, schema)
    if not result.is_compatible:
        LOG.info(
            "compatibility check subject=%r: incompatible: %s", subject, " | ".join(result.messages)
        )
    return _json({"is_compatible": result.is_compatible, "messages": list(result.messages)})


async def _get_mode(request: web.Request) -> web.Response:
    return _json({"mode": "READWRITE"})
