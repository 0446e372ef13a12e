"""The registry's operations, independent of HTTP: reads answer from memory, writes go through
the log first.

Every write runs under one lock: catch up with the log (so the decision sees every record the
topic holds), decide, append the records and wait for Kafka's acks (acks=all), then apply the very
same records to memory. A write Kafka did not acknowledge changes nothing in memory; if it landed
anyway, the catch-up before the next write picks it up. One registry process writes a topic: two
would each hand out the same next id (see docs in `registry/__init__.py`).
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from registry.avro_schema import SCHEMA_TYPE_AVRO, SUPPORTED_SCHEMA_TYPES, AvroSchema, parse_avro
from registry.compatibility import (
    CompatibilityLevel,
    CompatibilityResult,
    PreviousSchema,
    check_compatibility,
    check_pair,
)
from registry.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidSubjectError,
    InvalidVersionError,
    RegistryError,
    SchemaNotFoundError,
    SubjectCompatibilityNotConfiguredError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from registry.store import (
    INT32_MAX,
    LogRecord,
    RegistryState,
    SchemaLog,
    SubjectVersion,
    config_key,
    config_value,
    id_watermark_key,
    id_watermark_value,
    schema_key,
    schema_value,
)

LOG = logging.getLogger(__name__)

SUBJECT_CHARS_MAX = 1000
LATEST = "latest"


@dataclass(frozen=True)
class VersionSpec:
    """A version named in a URL: a number, or the latest one (`latest` or -1)."""

    number: int | None

    @property
    def is_latest(self) -> bool:
        return self.number is None

    @classmethod
    def parse(cls, raw: str) -> VersionSpec:
        if raw in (LATEST, "-1"):
            return cls(None)
        if raw.isascii() and raw.isdigit():
            number = int(raw)
            if 1 <= number <= INT32_MAX:
                return cls(number)
        raise InvalidVersionError(
            f"The specified version '{raw}' is not a valid version id. Allowed values are between"
            ' [1, 2^31-1] and the string "latest"'
        )


def validate_subject(subject: str) -> str:
    if not subject or len(subject) > SUBJECT_CHARS_MAX:
        raise InvalidSubjectError(
            f"The specified subject is not valid: it must have 1 to {SUBJECT_CHARS_MAX} characters"
        )
    if any(unicodedata.category(char) == "Cc" for char in subject):
        raise InvalidSubjectError(
            "The specified subject is not valid: it contains control characters"
        )
    return subject


def parse_schema(text: object, schema_type: object, references: object) -> AvroSchema:
    """Validate a request's schema fields and parse the schema (Avro only)."""
    if schema_type is None:
        schema_type = SCHEMA_TYPE_AVRO
    if not isinstance(schema_type, str) or schema_type.upper() not in SUPPORTED_SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"Invalid schemaType {schema_type!r}: this registry supports "
            f"{', '.join(SUPPORTED_SCHEMA_TYPES)} only"
        )
    if references not in (None, []):
        raise InvalidSchemaError("Schema references are not supported by this registry")
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError("Empty schema: the request needs a non-empty string 'schema'")
    return parse_avro(text)


class SchemaRegistry:
    """Subjects, versions, ids and compatibility levels, kept in a `SchemaLog`."""

    def __init__(self, log: SchemaLog) -> None:
        self._log = log
        self._state = RegistryState()
        self._write_lock = asyncio.Lock()

    @property
    def state(self) -> RegistryState:
        return self._state

    async def load(self) -> None:
        """Rebuild the state from the whole log (at start, before serving)."""
        async with self._write_lock:
            await self._catch_up()
        LOG.info(
            "loaded %d records (%d skipped): %d subjects, %d schemas, next id %d",
            self._state.records_applied,
            self._state.records_skipped,
            len(self._state.subjects(include_deleted=True)),
            self._state.schema_count(),
            self._state.next_schema_id(),
        )

    # --- reads ------------------------------------------------------------------------------

    def subjects(
        self, *, include_deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        names = self._state.subjects(include_deleted=include_deleted, deleted_only=deleted_only)
        return [name for name in names if name.startswith(prefix)]

    def versions(self, subject: str, *, include_deleted: bool = False) -> list[int]:
        entries = self._state.versions(subject, include_deleted=include_deleted)
        if not entries:
            raise _subject_not_found(subject)
        return [entry.version for entry in entries]

    def get_version(
        self, subject: str, spec: VersionSpec, *, include_deleted: bool = False
    ) -> SubjectVersion:
        entries = self._state.versions(subject, include_deleted=include_deleted)
        if not entries:
            raise _subject_not_found(subject)
        if spec.number is None:
            return entries[-1]
        for entry in entries:
            if entry.version == spec.number:
                return entry
        raise _version_not_found(spec.number)

    def schema_by_id(self, schema_id: int) -> tuple[str, str]:
        """The schema text and type of an id."""
        text = self._state.schema_text(schema_id)
        schema_type = self._state.schema_type(schema_id)
        if text is None or schema_type is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return text, schema_type

    def users_of(self, schema_id: int, *, include_deleted: bool = False) -> list[SubjectVersion]:
        self.schema_by_id(schema_id)
        return self._state.users_of(schema_id, include_deleted=include_deleted)

    def global_level(self) -> CompatibilityLevel:
        return self._state.global_level()

    def subject_level(self, subject: str, *, default_to_global: bool) -> CompatibilityLevel:
        level = self._state.subject_level(subject)
        if level is not None:
            return level
        if default_to_global:
            return self._state.global_level()
        raise _level_not_configured(subject)

    def lookup(
        self, subject: str, schema: AvroSchema, *, include_deleted: bool = False
    ) -> SubjectVersion:
        """The version of `subject` registered with this very schema."""
        entries = self._state.versions(subject, include_deleted=include_deleted)
        if not entries:
            raise _subject_not_found(subject)
        schema_id = self._state.id_of(SCHEMA_TYPE_AVRO, schema.canonical)
        matches = [entry for entry in entries if entry.schema_id == schema_id]
        if not matches:
            raise SchemaNotFoundError("Schema not found")
        live = [entry for entry in matches if not entry.deleted]
        return (live or matches)[-1]

    def check(
        self, subject: str, spec: VersionSpec | None, schema: AvroSchema
    ) -> CompatibilityResult:
        """Is `schema` compatible with that version (or, without one, with what the level needs)?"""
        level = self._state.effective_level(subject)
        if spec is None:
            return check_compatibility(schema.parsed, self._previous(subject), level)
        entry = self.get_version(subject, spec)
        previous = self._previous_of(entry)
        if previous is None:
            return CompatibilityResult(messages=())
        return CompatibilityResult(messages=tuple(check_pair(schema.parsed, previous, level)))

    def _previous(self, subject: str) -> list[PreviousSchema]:
        previous = []
        for entry in self._state.versions(subject):
            parsed = self._previous_of(entry)
            if parsed is not None:
                previous.append(parsed)
        return previous

    def _previous_of(self, entry: SubjectVersion) -> PreviousSchema | None:
        parsed = self._state.parsed(entry.schema_id)
        if parsed is None:
            LOG.warning(
                "subject %r version %d (id %d) cannot be parsed; it is left out of checks",
                entry.subject,
                entry.version,
                entry.schema_id,
            )
            return None
        return PreviousSchema(version=entry.version, parsed=parsed)

    # --- writes -----------------------------------------------------------------------------

    async def register(self, subject: str, schema: AvroSchema) -> int:
        """Register `schema` under `subject`; the same schema again returns its id unchanged."""
        async with self._write_lock:
            await self._catch_up()
            known_id = self._state.id_of(SCHEMA_TYPE_AVRO, schema.canonical)
            for entry in self._state.versions(subject):
                if entry.schema_id == known_id:
                    return entry.schema_id
            level = self._state.effective_level(subject)
            result = check_compatibility(schema.parsed, self._previous(subject), level)
            if not result.is_compatible:
                LOG.info(
                    "refused subject=%r level=%s: %s",
                    subject,
                    level.value,
                    " | ".join(result.messages),
                )
                raise IncompatibleSchemaError(
                    "Schema being registered is incompatible with an earlier schema for subject"
                    f' "{subject}", details: [{"; ".join(result.messages)}]'
                )
            schema_id = known_id if known_id is not None else self._state.next_schema_id()
            entry = SubjectVersion(
                subject=subject,
                version=self._state.next_version(subject),
                schema_id=schema_id,
                schema=schema.canonical,
                deleted=False,
            )
            await self._write([(schema_key(subject, entry.version), schema_value(entry))])
            LOG.info(
                "registered subject=%r version=%d id=%d%s",
                subject,
                entry.version,
                schema_id,
                " (existing id)" if known_id is not None else "",
            )
            return schema_id

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        async with self._write_lock:
            await self._catch_up()
            entries = self._state.versions(subject, include_deleted=True)
            if not entries:
                raise _subject_not_found(subject)
            live = [entry for entry in entries if not entry.deleted]
            if permanent:
                if live:
                    raise SubjectNotSoftDeletedError(
                        f"Subject '{subject}' was not deleted first before being permanently"
                        " deleted"
                    )
                await self._write(self._permanent_delete_records(entries))
                LOG.info("deleted subject=%r permanently (versions %s)", subject, _numbers(entries))
                return _numbers(entries)
            if not live:
                raise SubjectSoftDeletedError(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete"
                    " permanently"
                )
            await self._write([_soft_delete_record(entry) for entry in live])
            LOG.info("deleted subject=%r (soft; versions %s)", subject, _numbers(live))
            return _numbers(live)

    async def delete_version(self, subject: str, spec: VersionSpec, *, permanent: bool) -> int:
        async with self._write_lock:
            await self._catch_up()
            entries = self._state.versions(subject, include_deleted=True)
            if not entries:
                raise _subject_not_found(subject)
            entry = self._version_to_delete(subject, entries, spec, permanent=permanent)
            if permanent:
                if not entry.deleted:
                    raise VersionNotSoftDeletedError(
                        f"Subject '{subject}' Version {entry.version} was not deleted first"
                        " before being permanently deleted"
                    )
                await self._write(self._permanent_delete_records([entry]))
                LOG.info("deleted subject=%r version=%d permanently", subject, entry.version)
                return entry.version
            if entry.deleted:
                raise VersionSoftDeletedError(
                    f"Subject '{subject}' Version {entry.version} was soft deleted. Set"
                    " permanent=true to delete permanently"
                )
            await self._write([_soft_delete_record(entry)])
            LOG.info("deleted subject=%r version=%d (soft)", subject, entry.version)
            return entry.version

    def _version_to_delete(
        self,
        subject: str,
        entries: Sequence[SubjectVersion],
        spec: VersionSpec,
        *,
        permanent: bool,
    ) -> SubjectVersion:
        if spec.number is not None:
            for entry in entries:
                if entry.version == spec.number:
                    return entry
            raise _version_not_found(spec.number)
        # "latest": the latest live version, or for a permanent delete the latest of all.
        candidates = list(entries) if permanent else [e for e in entries if not e.deleted]
        if not candidates:
            raise _subject_not_found(subject)
        return candidates[-1]

    def _permanent_delete_records(
        self, entries: Sequence[SubjectVersion]
    ) -> list[tuple[bytes, bytes | None]]:
        # The watermark first: once compaction drops the tombstoned records, it alone remembers
        # the highest id ever given out.
        records: list[tuple[bytes, bytes | None]] = [
            (id_watermark_key(), id_watermark_value(self._state.max_schema_id))
        ]
        records.extend((schema_key(entry.subject, entry.version), None) for entry in entries)
        return records

    async def set_level(self, subject: str | None, level: CompatibilityLevel) -> None:
        async with self._write_lock:
            await self._catch_up()
            await self._write([(config_key(subject), config_value(level))])
        LOG.info("compatibility of %s set to %s", _scope(subject), level.value)

    async def delete_level(self, subject: str | None) -> CompatibilityLevel:
        """Remove a subject's level (or reset the global one); return the level it had."""
        async with self._write_lock:
            await self._catch_up()
            if subject is None:
                previous = self._state.global_level()
            else:
                subject_level = self._state.subject_level(subject)
                if subject_level is None:
                    raise _level_not_configured(subject)
                previous = subject_level
            await self._write([(config_key(subject), None)])
        LOG.info("compatibility of %s deleted (was %s)", _scope(subject), previous.value)
        return previous

    async def _catch_up(self) -> None:
        for record in await self._log.read_from(self._state.next_offset):
            self._state.apply(record)

    async def _write(self, entries: list[tuple[bytes, bytes | None]]) -> None:
        try:
            offsets = await self._log.append(entries)
        except RegistryError as exc:
            LOG.error("write to the schema log failed, nothing changed: %s", exc)
            raise
        for (key, value), offset in zip(entries, offsets, strict=True):
            self._state.apply(LogRecord(offset=offset, key=key, value=value))


def _soft_delete_record(entry: SubjectVersion) -> tuple[bytes, bytes | None]:
    deleted = SubjectVersion(
        subject=entry.subject,
        version=entry.version,
        schema_id=entry.schema_id,
        schema=entry.schema,
        deleted=True,
        schema_type=entry.schema_type,
    )
    return schema_key(entry.subject, entry.version), schema_value(deleted)


def _numbers(entries: Sequence[SubjectVersion]) -> list[int]:
    return [entry.version for entry in entries]


def _scope(subject: str | None) -> str:
    return "the registry (global)" if subject is None else f"subject {subject!r}"


def _subject_not_found(subject: str) -> SubjectNotFoundError:
    return SubjectNotFoundError(f"Subject '{subject}' not found.")


def _version_not_found(version: int) -> VersionNotFoundError:
    return VersionNotFoundError(f"Version {version} not found.")


def _level_not_configured(subject: str) -> SubjectCompatibilityNotConfiguredError:
    return SubjectCompatibilityNotConfiguredError(
        f"Subject '{subject}' does not have subject-level compatibility configured"
    )
