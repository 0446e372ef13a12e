"""The registry's state, rebuilt from the records of the compacted `_schemas` topic.

Karapace's design: the topic is the only storage. Each record is keyed so that compaction keeps
exactly the latest fact per key:

  {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}
      -> {"subject":S,"version":V,"id":ID,"schema":TEXT,"deleted":BOOL}     (schemaType if not AVRO)
      -> null (tombstone): the version was deleted permanently
  {"keytype":"CONFIG","subject":S or null,"magic":0}
      -> {"compatibilityLevel":LEVEL};  null: back to the global level (or, for null, the default)
  {"keytype":"SCHEMA_ID_WATERMARK","magic":0} -> {"id":ID}
      the highest id ever given out, written before a permanent delete, so that compaction
      removing the last record that carried an id can never make the id be given out again.

Karapace's "DELETE_SUBJECT" and "NOOP" records are understood when replaying but never written:
a soft delete rewrites each version's SCHEMA record with "deleted": true, so compaction keeps one
self-contained record per version. Keys are always serialized the same way (same field order,
compact separators) because compaction compares key bytes.

`RegistryState.apply` is the only way state changes, both when replaying the topic at start and
after each acknowledged write, so what a running registry answers is exactly what a restarted one
rebuilds. This module does no I/O.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import avro.schema

from errors import FinError
from registry.avro_schema import SCHEMA_TYPE_AVRO, parse_stored
from registry.compatibility import DEFAULT_LEVEL, CompatibilityLevel
from registry.errors import RegistryError

LOG = logging.getLogger(__name__)

KEYTYPE_SCHEMA = "SCHEMA"
KEYTYPE_CONFIG = "CONFIG"
KEYTYPE_DELETE_SUBJECT = "DELETE_SUBJECT"
KEYTYPE_NOOP = "NOOP"
KEYTYPE_ID_WATERMARK = "SCHEMA_ID_WATERMARK"

INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class LogRecord:
    """One record of the `_schemas` topic."""

    offset: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool
    schema_type: str = SCHEMA_TYPE_AVRO


def _encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def schema_key(subject: str, version: int) -> bytes:
    return _encode({"keytype": KEYTYPE_SCHEMA, "subject": subject, "version": version, "magic": 1})


def schema_value(entry: SubjectVersion) -> bytes:
    document: dict[str, object] = {
        "subject": entry.subject,
        "version": entry.version,
        "id": entry.schema_id,
        "schema": entry.schema,
        "deleted": entry.deleted,
    }
    if entry.schema_type != SCHEMA_TYPE_AVRO:
        document["schemaType"] = entry.schema_type
    return _encode(document)


def config_key(subject: str | None) -> bytes:
    return _encode({"keytype": KEYTYPE_CONFIG, "subject": subject, "magic": 0})


def config_value(level: CompatibilityLevel) -> bytes:
    return _encode({"compatibilityLevel": level.value})


def id_watermark_key() -> bytes:
    return _encode({"keytype": KEYTYPE_ID_WATERMARK, "magic": 0})


def id_watermark_value(schema_id: int) -> bytes:
    return _encode({"id": schema_id})


class SchemaLog(Protocol):
    """What the registry needs from its storage."""

    async def read_from(self, offset: int) -> list[LogRecord]:
        """Every record from `offset` up to the end of the log as it is now, in order."""
        ...

    async def append(self, entries: Sequence[tuple[bytes, bytes | None]]) -> list[int]:
        """Append (key, value) records, in order; return their offsets once all are durable."""
        ...

    async def close(self) -> None: ...


class MalformedRecordError(FinError):
    """A record of the topic that this registry cannot understand (it is skipped, and logged)."""


@dataclass
class RegistryState:
    """Subjects, versions, ids and compatibility levels, as the topic's records say."""

    next_offset: int = 0
    max_schema_id: int = 0
    records_applied: int = 0
    records_skipped: int = 0
    _subjects: dict[str, dict[int, SubjectVersion]] = field(default_factory=dict)
    _schema_by_id: dict[int, str] = field(default_factory=dict)
    _id_by_canonical: dict[str, int] = field(default_factory=dict)
    _canonical_by_id: dict[int, str] = field(default_factory=dict)
    _users_by_id: dict[int, set[tuple[str, int]]] = field(default_factory=dict)
    _parsed_by_id: dict[int, avro.schema.Schema] = field(default_factory=dict)
    _subject_levels: dict[str, CompatibilityLevel] = field(default_factory=dict)
    _global_level: CompatibilityLevel | None = None

    # --- applying records -------------------------------------------------------------------

    def apply(self, record: LogRecord) -> None:
        """Apply one record; a record this registry cannot understand is logged and skipped."""
        self.next_offset = max(self.next_offset, record.offset + 1)
        try:
            self._apply(record)
        except MalformedRecordError as exc:
            self.records_skipped += 1
            LOG.warning("skipping _schemas record at offset %d: %s", record.offset, exc)
            return
        self.records_applied += 1

    def _apply(self, record: LogRecord) -> None:
        key = _decode_object(record.key, "key")
        value = None if record.value is None else _decode_object(record.value, "value")
        keytype = key.get("keytype")
        if keytype == KEYTYPE_SCHEMA:
            self._apply_schema(key, value)
        elif keytype == KEYTYPE_CONFIG:
            self._apply_config(key, value)
        elif keytype == KEYTYPE_DELETE_SUBJECT:
            self._apply_delete_subject(value)
        elif keytype == KEYTYPE_ID_WATERMARK:
            if value is not None:
                self.max_schema_id = max(self.max_schema_id, _positive_int(value, "id"))
        elif keytype != KEYTYPE_NOOP:
            raise MalformedRecordError(f"unknown keytype {keytype!r}")

    def _apply_schema(self, key: dict[str, object], value: dict[str, object] | None) -> None:
        subject = _string(key, "subject")
        version = _positive_int(key, "version")
        if value is None:
            self._remove_version(subject, version)
            return
        if value.get("subject", subject) != subject or value.get("version", version) != version:
            raise MalformedRecordError("value names another subject or version than its key")
        schema_type = value.get("schemaType", SCHEMA_TYPE_AVRO)
        deleted = value.get("deleted", False)
        if not isinstance(schema_type, str) or not isinstance(deleted, bool):
            raise MalformedRecordError("schemaType must be a string and deleted a boolean")
        entry = SubjectVersion(
            subject=subject,
            version=version,
            schema_id=_positive_int(value, "id"),
            schema=_string(value, "schema"),
            deleted=deleted,
            schema_type=schema_type,
        )
        previous = self._subjects.get(subject, {}).get(version)
        if previous is not None and previous.schema_id != entry.schema_id:
            self._remove_version(subject, version)
        self._subjects.setdefault(subject, {})[version] = entry
        self._remember_schema(entry)

    def _remember_schema(self, entry: SubjectVersion) -> None:
        self.max_schema_id = max(self.max_schema_id, entry.schema_id)
        self._users_by_id.setdefault(entry.schema_id, set()).add((entry.subject, entry.version))
        known_text = self._schema_by_id.get(entry.schema_id)
        if known_text is not None:
            if known_text != entry.schema:
                LOG.error(
                    "_schemas topic: id %d already names another schema; subject %r version %d"
                    " keeps its own text (was the topic written by two registries?)",
                    entry.schema_id,
                    entry.subject,
                    entry.version,
                )
            return
        self._schema_by_id[entry.schema_id] = entry.schema
        parsed = parse_stored(entry.schema) if entry.schema_type == SCHEMA_TYPE_AVRO else None
        canonical = parsed.canonical if parsed is not None else entry.schema
        if parsed is not None:
            self._parsed_by_id[entry.schema_id] = parsed.parsed
        self._canonical_by_id[entry.schema_id] = canonical
        identity = _identity(entry.schema_type, canonical)
        if self._id_by_canonical.setdefault(identity, entry.schema_id) != entry.schema_id:
            LOG.warning(
                "_schemas topic: the schema of id %d was already registered as id %d",
                entry.schema_id,
                self._id_by_canonical[identity],
            )

    def _remove_version(self, subject: str, version: int) -> None:
        versions = self._subjects.get(subject)
        if versions is None or version not in versions:
            return
        entry = versions.pop(version)
        if not versions:
            del self._subjects[subject]
        users = self._users_by_id.get(entry.schema_id, set())
        users.discard((subject, version))
        if users:
            return
        # No subject version uses the id any more: forget the schema, as a restart after
        # compaction would. The id itself is never given out again (see max_schema_id).
        self._users_by_id.pop(entry.schema_id, None)
        self._schema_by_id.pop(entry.schema_id, None)
        self._parsed_by_id.pop(entry.schema_id, None)
        canonical = self._canonical_by_id.pop(entry.schema_id, None)
        if canonical is not None:
            identity = _identity(entry.schema_type, canonical)
            if self._id_by_canonical.get(identity) == entry.schema_id:
                del self._id_by_canonical[identity]

    def _apply_config(self, key: dict[str, object], value: dict[str, object] | None) -> None:
        subject = key.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise MalformedRecordError("config subject must be a string or null")
        level: CompatibilityLevel | None = None
        if value is not None:
            try:
                level = CompatibilityLevel.parse(value.get("compatibilityLevel"))
            except RegistryError as exc:
                raise MalformedRecordError(str(exc)) from exc
        if subject is None:
            self._global_level = level
        elif level is None:
            self._subject_levels.pop(subject, None)
        else:
            self._subject_levels[subject] = level

    def _apply_delete_subject(self, value: dict[str, object] | None) -> None:
        if value is None:
            return
        subject = _string(value, "subject")
        version_max = _positive_int(value, "version")
        for version, entry in list(self._subjects.get(subject, {}).items()):
            if version <= version_max and not entry.deleted:
                self._subjects[subject][version] = SubjectVersion(
                    subject=entry.subject,
                    version=entry.version,
                    schema_id=entry.schema_id,
                    schema=entry.schema,
                    deleted=True,
                    schema_type=entry.schema_type,
                )

    # --- queries ----------------------------------------------------------------------------

    def subjects(self, *, include_deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subjects with a live version; with `include_deleted` also fully soft-deleted ones."""
        names = []
        for subject, versions in self._subjects.items():
            live = any(not entry.deleted for entry in versions.values())
            if (deleted_only and not live) or (not deleted_only and (live or include_deleted)):
                names.append(subject)
        return sorted(names)

    def versions(self, subject: str, *, include_deleted: bool = False) -> list[SubjectVersion]:
        """The subject's versions, oldest first."""
        entries = self._subjects.get(subject, {})
        return [
            entries[version]
            for version in sorted(entries)
            if include_deleted or not entries[version].deleted
        ]

    def version(self, subject: str, version: int) -> SubjectVersion | None:
        """That version, soft-deleted or not."""
        return self._subjects.get(subject, {}).get(version)

    def next_version(self, subject: str) -> int:
        """Versions are never reused while the topic holds a record of them, deleted or not."""
        versions = self._subjects.get(subject)
        return max(versions) + 1 if versions else 1

    def schema_text(self, schema_id: int) -> str | None:
        return self._schema_by_id.get(schema_id)

    def schema_type(self, schema_id: int) -> str | None:
        users = self._users_by_id.get(schema_id)
        if not users:
            return None
        subject, version = min(users)
        return self._subjects[subject][version].schema_type

    def id_of(self, schema_type: str, canonical: str) -> int | None:
        return self._id_by_canonical.get(_identity(schema_type, canonical))

    def parsed(self, schema_id: int) -> avro.schema.Schema | None:
        return self._parsed_by_id.get(schema_id)

    def users_of(self, schema_id: int, *, include_deleted: bool = False) -> list[SubjectVersion]:
        """The subject versions registered with that id, sorted by subject and version."""
        entries = [
            self._subjects[subject][version]
            for subject, version in sorted(self._users_by_id.get(schema_id, ()))
        ]
        return [entry for entry in entries if include_deleted or not entry.deleted]

    def subject_level(self, subject: str) -> CompatibilityLevel | None:
        return self._subject_levels.get(subject)

    def global_level(self) -> CompatibilityLevel:
        return self._global_level if self._global_level is not None else DEFAULT_LEVEL

    def effective_level(self, subject: str) -> CompatibilityLevel:
        return self._subject_levels.get(subject, self.global_level())

    def next_schema_id(self) -> int:
        return self.max_schema_id + 1

    def schema_count(self) -> int:
        return len(self._schema_by_id)


def _identity(schema_type: str, canonical: str) -> str:
    # Ids are shared across subjects only by schemas of the same type and canonical text.
    return canonical if schema_type == SCHEMA_TYPE_AVRO else f"{schema_type}\n{canonical}"


def _decode_object(raw: bytes, what: str) -> dict[str, object]:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedRecordError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedRecordError(f"{what} is not a JSON object")
    return document


def _string(document: dict[str, object], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise MalformedRecordError(f"{name} must be a string, got {value!r}")
    return value


def _positive_int(document: dict[str, object], name: str) -> int:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT32_MAX:
        raise MalformedRecordError(f"{name} must be a positive 32-bit integer, got {value!r}")
    return value
