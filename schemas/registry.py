"""A small synchronous client for the Confluent schema registry REST API.

Works with Confluent Schema Registry, Karapace, Redpanda and Apicurio's Confluent-compatible API
(whose base URL has a path, e.g. `http://host:8081/apis/ccompat/v7`). Transport failures and 5xx
answers are transient (`RegistryUnavailableError`, retry); a 404 is `SchemaNotFound`; any other
4xx is permanent (`RegistryRequestError`) and carries the registry's own message.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests

from errors import FinError, RegistryRequestError, RegistryUnavailableError
from registry.avro_schema import parse_avro
from registry.compatibility import logical_type_changes, reader_writer_problems
from registry.errors import RegistryError
from schemas.catalog import SchemaCatalog, SchemaEntry, subject_for

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
FULL_TRANSITIVE = "FULL_TRANSITIVE"
HTTP_NOT_FOUND = 404
HTTP_CLIENT_ERROR_MIN = 400
HTTP_SERVER_ERROR_MIN = 500


class SchemaNotFound(FinError):  # noqa: N818 - the registry's own name for the condition
    """The registry has no such schema id, subject or version (HTTP 404)."""

    def __init__(self, message: str, error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class HttpSession(Protocol):
    """The part of `requests.Session` the client uses (tests pass a hand-written fake)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject as the registry returns it."""

    subject: str
    version: int
    schema_id: int
    schema_str: str


class RegistryClient:
    """Blocking calls to one registry; every call has a timeout."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        session: HttpSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session: HttpSession = session if session is not None else requests.Session()

    def close(self) -> None:
        self._session.close()

    def get_schema(self, schema_id: int) -> str:
        """The schema text registered under a global id (GET /schemas/ids/{id})."""
        body = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        return _text_field(body, "schema")

    def register(self, subject: str, schema_str: str) -> int:
        """Register a schema under a subject (idempotent: an existing one returns its id)."""
        body = self._request(
            "POST", f"/subjects/{_segment(subject)}/versions", {"schema": schema_str}
        )
        return _int_field(body, "id")

    def lookup(self, subject: str, schema_str: str) -> int:
        """The id of a schema already registered under a subject; SchemaNotFound otherwise."""
        body = self._request("POST", f"/subjects/{_segment(subject)}", {"schema": schema_str})
        return _int_field(body, "id")

    def set_compatibility(self, subject: str, level: str) -> None:
        body = self._request("PUT", f"/config/{_segment(subject)}", {"compatibility": level})
        if not isinstance(body, Mapping):
            raise RegistryRequestError(f"unexpected answer to PUT /config/{subject}: {body!r}")

    def get_compatibility(self, subject: str) -> str:
        """The subject's own compatibility level; SchemaNotFound when it has none."""
        body = self._request("GET", f"/config/{_segment(subject)}")
        if isinstance(body, Mapping):
            # Confluent answers compatibilityLevel; some servers answer compatibility.
            for name in ("compatibilityLevel", "compatibility"):
                if isinstance(body.get(name), str):
                    return str(body[name])
        raise RegistryRequestError(f"unexpected answer to GET /config/{subject}: {body!r}")

    def check_compatibility(self, subject: str, schema_str: str) -> tuple[bool, list[str]]:
        """Would `schema_str` be accepted by the subject under its compatibility level?

        Checks against every registered version the level requires (not only the latest).
        """
        body = self._request(
            "POST",
            f"/compatibility/subjects/{_segment(subject)}/versions?verbose=true",
            {"schema": schema_str},
        )
        if not isinstance(body, Mapping) or not isinstance(body.get("is_compatible"), bool):
            raise RegistryRequestError(f"unexpected compatibility answer: {body!r}")
        messages = body.get("messages") or []
        return bool(body["is_compatible"]), [str(message) for message in messages]

    def latest(self, subject: str) -> RegisteredSchema:
        body = self._request("GET", f"/subjects/{_segment(subject)}/versions/latest")
        return RegisteredSchema(
            subject=subject,
            version=_int_field(body, "version"),
            schema_id=_int_field(body, "id"),
            schema_str=_text_field(body, "schema"),
        )

    def subjects(self) -> list[str]:
        body = self._request("GET", "/subjects")
        if not isinstance(body, list):
            raise RegistryRequestError(f"unexpected answer to GET /subjects: {body!r}")
        return [str(subject) for subject in body]

    def _request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                data=None if payload is None else json.dumps(payload),
                headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise RegistryUnavailableError(f"{method} {url}: {exc}") from exc
        status = int(response.status_code)
        if status >= HTTP_SERVER_ERROR_MIN:
            raise RegistryUnavailableError(f"{method} {url}: HTTP {status}: {response.text[:500]}")
        if status >= HTTP_CLIENT_ERROR_MIN:
            error_code, message = _error_of(response)
            if status == HTTP_NOT_FOUND:
                raise SchemaNotFound(f"{method} {url}: {message}", error_code)
            raise RegistryRequestError(f"{method} {url}: HTTP {status} ({error_code}): {message}")
        try:
            return response.json()
        except ValueError as exc:
            raise RegistryUnavailableError(f"{method} {url}: answer is not JSON") from exc


def _segment(text: str) -> str:
    """A subject as one URL path segment."""
    return quote(text, safe="")


def _error_of(response: Any) -> tuple[int | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:500]
    if isinstance(body, Mapping):
        code = body.get("error_code")
        return (code if isinstance(code, int) else None), str(body.get("message", body))
    return None, str(body)[:500]


def _text_field(body: Any, name: str) -> str:
    if isinstance(body, Mapping) and isinstance(body.get(name), str):
        return str(body[name])
    raise RegistryRequestError(f"registry answer has no text field {name!r}: {body!r}"[:500])


def _int_field(body: Any, name: str) -> int:
    if isinstance(body, Mapping):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise RegistryRequestError(f"registry answer has no integer field {name!r}: {body!r}"[:500])


def registered_subject(entry: SchemaEntry, topic_prefix: str = "") -> str:
    """The subject an entry is registered under when its topic carries `topic_prefix`."""
    return subject_for(topic_prefix + entry.topic, entry.fullname)


class SchemaIds:
    """Schema id per contract subject, for an Encoder: lookup first, register when absent.

    Called with the contract subject (`entry.subject`); asks the registry about the subject of
    the real, possibly prefixed, topic. Each id is fetched once.
    """

    def __init__(
        self,
        catalog: SchemaCatalog,
        client: RegistryClient,
        topic_prefix: str = "",
        auto_register: bool = True,
    ) -> None:
        self._catalog = catalog
        self._client = client
        self._topic_prefix = topic_prefix
        self._auto_register = auto_register
        self._ids: dict[str, int] = {}

    def __call__(self, subject: str) -> int:
        cached = self._ids.get(subject)
        if cached is not None:
            return cached
        entry = self._catalog.by_subject[subject]
        real_subject = registered_subject(entry, self._topic_prefix)
        try:
            schema_id = self._client.lookup(real_subject, entry.schema_str)
        except SchemaNotFound:
            if not self._auto_register:
                raise
            schema_id = self._client.register(real_subject, entry.schema_str)
        self._ids[subject] = schema_id
        return schema_id


def ensure_compatibility(client: RegistryClient, subject: str, level: str) -> None:
    """Set the subject's level, tolerating a concurrent setter.

    Apicurio answers 409 "rule already exists" to all but one of several simultaneous PUTs on a
    new subject (two workers starting together): then the level is read back, and set once more
    only if it is not already the one we want.
    """
    try:
        client.set_compatibility(subject, level)
    except RegistryRequestError:
        if client.get_compatibility(subject) != level:
            client.set_compatibility(subject, level)


def register_all(
    catalog: SchemaCatalog, client: RegistryClient, topic_prefix: str = ""
) -> dict[str, int]:
    """Set FULL_TRANSITIVE on every FIN subject and register its schema.

    Subjects are those of the real topics (`topic_prefix` + contract topic). The answer maps the
    *contract* subject (`SchemaEntry.subject`, what `Encoder` asks for) to the schema id. The
    level is set before registering so that even the first version is guarded.
    """
    ids: dict[str, int] = {}
    for entry in catalog.entries:
        subject = registered_subject(entry, topic_prefix)
        ensure_compatibility(client, subject, FULL_TRANSITIVE)
        ids[entry.subject] = client.register(subject, entry.schema_str)
    return ids


class SubjectReader(Protocol):
    """What `check_all` asks of a registry (a `RegistryClient`, or a test's fake)."""

    def latest(self, subject: str) -> RegisteredSchema: ...

    def check_compatibility(self, subject: str, schema_str: str) -> tuple[bool, list[str]]: ...

    def get_compatibility(self, subject: str) -> str: ...


def check_all(catalog: SchemaCatalog, client: SubjectReader, topic_prefix: str = "") -> list[str]:
    """Problems between the local schemas and the registry; empty when all is well.

    Reports a subject that is missing, a local schema that is incompatible with the registered
    versions (with the registry's messages, or ours when it gives none), a field whose logical
    type, decimal precision or decimal scale differs from the registry's latest version, and a
    subject whose level is not FULL_TRANSITIVE.
    """
    problems: list[str] = []
    for entry in catalog.entries:
        subject = registered_subject(entry, topic_prefix)
        try:
            latest = client.latest(subject)
        except SchemaNotFound:
            problems.append(f"{subject}: not registered")
            continue
        compatible, messages = client.check_compatibility(subject, entry.schema_str)
        if not compatible:
            detail = "; ".join(messages) if messages else _local_detail(entry, latest)
            problems.append(f"{subject}: {entry.path.name} is incompatible: {detail}")
        problems.extend(
            f"{subject}: {entry.path.name} differs from registered version {latest.version}: "
            f"{change}"
            for change in _logical_type_changes(entry, latest)
        )
        try:
            level = client.get_compatibility(subject)
        except SchemaNotFound:
            level = "the registry default"
        if level != FULL_TRANSITIVE:
            problems.append(f"{subject}: compatibility is {level}, expected {FULL_TRANSITIVE}")
    return problems


def _logical_type_changes(entry: SchemaEntry, latest: RegisteredSchema) -> list[str]:
    """Changes of logical type, decimal precision or scale from the registered version to ours.

    Avro's resolution rules look only at the underlying types, so a registry may accept a
    decimal(18,2) that became decimal(18,3) (Apicurio does): the bytes still decode, but every
    amount would be read ten times smaller.
    """
    try:
        registered = parse_avro(latest.schema_str).parsed
    except RegistryError as exc:
        return [f"the registered schema cannot be parsed: {exc}"]
    return logical_type_changes(new=parse_avro(entry.schema_str).parsed, old=registered)


def _local_detail(entry: SchemaEntry, latest: RegisteredSchema) -> str:
    """Why ours and the latest registered version cannot read each other's data, for a
    registry that says "incompatible" without saying why (Apicurio)."""
    try:
        registered = parse_avro(latest.schema_str).parsed
    except RegistryError as exc:
        return f"the registered schema cannot be parsed: {exc}"
    ours = parse_avro(entry.schema_str).parsed
    reasons = [
        *(
            f"ours cannot read version {latest.version}: {problem}"
            for problem in reader_writer_problems(reader=ours, writer=registered)
        ),
        *(
            f"version {latest.version} cannot read ours: {problem}"
            for problem in reader_writer_problems(reader=registered, writer=ours)
        ),
    ]
    if not reasons:
        return "no detail from the registry (the latest version reads and is read by ours)"
    return "; ".join(reasons)
