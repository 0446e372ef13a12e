"""Schema evolution rules: Confluent's compatibility levels over Avro reader/writer resolution.

BACKWARD means the new schema can read data written with the old one (consumers upgrade first);
FORWARD means the old schema can read data written with the new one (producers upgrade first);
FULL means both. The plain levels compare with the latest version only, the `_TRANSITIVE` ones with
every version still registered.

Reader/writer resolution is Apache Avro's `ReaderWriterCompatibilityChecker`. It looks only at the
underlying types, so on its own it would let a `decimal(18,2)` become `decimal(18,3)` or plain
`bytes`, or a `date` become a plain `int`: the bytes still decode, the amounts do not mean the same.
We therefore add one rule for money: for any field present in both schemas (walking records,
unions, arrays and maps), a change of logical type, or of a decimal's precision or scale, is
incompatible under every level but NONE.

This module is pure: it takes parsed schemas and returns messages.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from registry.errors import InvalidCompatibilityLevelError

ROOT_PATH = "<root>"


class CompatibilityLevel(enum.Enum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        """The level named `value` (any case), or `InvalidCompatibilityLevelError` (42203)."""
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        raise InvalidCompatibilityLevelError(
            "Invalid compatibility level. Valid values are none, backward, forward, full, "
            "backward_transitive, forward_transitive, and full_transitive"
        )

    @property
    def new_reads_old(self) -> bool:
        return self in _BACKWARD_LEVELS

    @property
    def old_reads_new(self) -> bool:
        return self in _FORWARD_LEVELS

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD

_BACKWARD_LEVELS = frozenset(
    {
        CompatibilityLevel.BACKWARD,
        CompatibilityLevel.BACKWARD_TRANSITIVE,
        CompatibilityLevel.FULL,
        CompatibilityLevel.FULL_TRANSITIVE,
    }
)
_FORWARD_LEVELS = frozenset(
    {
        CompatibilityLevel.FORWARD,
        CompatibilityLevel.FORWARD_TRANSITIVE,
        CompatibilityLevel.FULL,
        CompatibilityLevel.FULL_TRANSITIVE,
    }
)


@dataclass(frozen=True)
class PreviousSchema:
    """A registered version the new schema is compared with."""

    version: int
    parsed: avro.schema.Schema


@dataclass(frozen=True)
class CompatibilityResult:
    messages: tuple[str, ...]

    @property
    def is_compatible(self) -> bool:
        return not self.messages


def versions_to_check(
    level: CompatibilityLevel, previous: Sequence[PreviousSchema]
) -> Sequence[PreviousSchema]:
    """Which of the registered versions (oldest first) a new schema is checked against."""
    if level is CompatibilityLevel.NONE or not previous:
        return ()
    return previous if level.transitive else previous[-1:]


def check_compatibility(
    new: avro.schema.Schema, previous: Sequence[PreviousSchema], level: CompatibilityLevel
) -> CompatibilityResult:
    """Check `new` against `previous` (oldest first) as `level` requires; messages say why not."""
    messages: list[str] = []
    for old in versions_to_check(level, previous):
        messages.extend(check_pair(new, old, level))
    return CompatibilityResult(messages=tuple(messages))


def check_pair(
    new: avro.schema.Schema, old: PreviousSchema, level: CompatibilityLevel
) -> list[str]:
    """Check `new` against the single version `old` in the directions `level` names."""
    if level is CompatibilityLevel.NONE:
        return []
    messages: list[str] = []
    if level.new_reads_old:
        messages.extend(
            f"{level.value}: the new schema cannot read data written with version "
            f"{old.version}: {problem}"
            for problem in reader_writer_problems(reader=new, writer=old.parsed)
        )
    if level.old_reads_new:
        messages.extend(
            f"{level.value}: version {old.version} cannot read data written with the new "
            f"schema: {problem}"
            for problem in reader_writer_problems(reader=old.parsed, writer=new)
        )
    messages.extend(
        f"{level.value}: compared with version {old.version}: {problem}"
        for problem in logical_type_changes(new=new, old=old.parsed)
    )
    return messages


def reader_writer_problems(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    """Why `reader` cannot decode what `writer` wrote, per Avro's resolution rules."""
    try:
        # A fresh checker each time: it memoizes by object identity.
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(reader, writer)
    except Exception as exc:  # the checker's own failure must refuse, never accept
        return [f"the Avro compatibility checker failed: {type(exc).__name__}: {exc}"]
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({kind.value for kind in result.incompatibilities})
    messages = sorted(str(message) for message in result.messages)
    # Locations are merged from every step of the walk; the bare root says nothing more.
    locations = ", ".join(sorted(set(result.locations) - {"/"}) or ["/"])
    if kinds == [SchemaIncompatibilityType.reader_field_missing_default_value.value]:
        fields = ", ".join(f"'{message}'" for message in messages)
        return [
            f"reader field {fields} has no default value and is missing from the writer schema"
            f" (at {locations})"
        ]
    return [f"{', '.join(kinds)}: {'; '.join(messages)} (at {locations})"]


def logical_type_changes(new: avro.schema.Schema, old: avro.schema.Schema) -> list[str]:
    """Changes of logical type, decimal precision or decimal scale between the two schemas."""
    changes: list[str] = []
    _walk_logical(new, old, ROOT_PATH, set(), changes)
    return changes


@dataclass(frozen=True)
class _Annotation:
    logical_type: str | None
    precision: object
    scale: object

    def describe(self) -> str:
        if self.logical_type is None:
            return "no logical type"
        if self.logical_type == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.logical_type


def _annotation(schema: avro.schema.Schema) -> _Annotation:
    logical_type = schema.props.get("logicalType")
    if not isinstance(logical_type, str):
        return _Annotation(None, None, None)
    if logical_type != "decimal":
        return _Annotation(logical_type, None, None)
    # The specification's default scale is 0: an explicit 0 and an absent scale are the same.
    return _Annotation(logical_type, schema.props.get("precision"), schema.props.get("scale", 0))


def _walk_logical(
    new: avro.schema.Schema,
    old: avro.schema.Schema,
    path: str,
    seen: set[tuple[int, int]],
    changes: list[str],
) -> None:
    pair = (id(new), id(old))
    if pair in seen:  # recursive named types
        return
    seen.add(pair)
    if isinstance(new, avro.schema.UnionSchema) or isinstance(old, avro.schema.UnionSchema):
        old_branches = _branches(old)
        for new_branch in _branches(new):
            old_branch = _matching_branch(new_branch, old_branches)
            if old_branch is not None:
                _walk_logical(new_branch, old_branch, path, seen, changes)
        return
    new_annotation, old_annotation = _annotation(new), _annotation(old)
    if new_annotation != old_annotation:
        changes.append(
            f"{_describe_path(path)} changed from {old_annotation.describe()} to "
            f"{new_annotation.describe()} (a logical type, precision or scale may not change)"
        )
    if isinstance(new, avro.schema.RecordSchema) and isinstance(old, avro.schema.RecordSchema):
        for field in new.fields:
            old_field = _matching_field(field, old)
            if old_field is not None:
                _walk_logical(field.type, old_field.type, _join(path, field.name), seen, changes)
    elif isinstance(new, avro.schema.ArraySchema) and isinstance(old, avro.schema.ArraySchema):
        _walk_logical(new.items, old.items, f"{path}[]", seen, changes)
    elif isinstance(new, avro.schema.MapSchema) and isinstance(old, avro.schema.MapSchema):
        _walk_logical(new.values, old.values, f"{path}{{}}", seen, changes)


def _branches(schema: avro.schema.Schema) -> list[avro.schema.Schema]:
    if isinstance(schema, avro.schema.UnionSchema):
        return list(schema.schemas)
    return [schema]


def _branch_key(schema: avro.schema.Schema) -> str:
    if isinstance(schema, avro.schema.NamedSchema):
        return f"{schema.type}:{schema.fullname}"
    return str(schema.type)


def _matching_branch(
    branch: avro.schema.Schema, candidates: Sequence[avro.schema.Schema]
) -> avro.schema.Schema | None:
    key = _branch_key(branch)
    for candidate in candidates:
        if _branch_key(candidate) == key:
            return candidate
    if isinstance(branch, avro.schema.NamedSchema):
        # A renamed record/enum/fixed still pairs with the only one of its kind.
        same_kind = [candidate for candidate in candidates if candidate.type == branch.type]
        if len(same_kind) == 1:
            return same_kind[0]
    return None


def _matching_field(
    field: avro.schema.Field, old: avro.schema.RecordSchema
) -> avro.schema.Field | None:
    fields_by_name = old.fields_dict
    if field.name in fields_by_name:
        matched: avro.schema.Field = fields_by_name[field.name]
        return matched
    aliases = field.props.get("aliases")
    if isinstance(aliases, list):
        for alias in aliases:
            if isinstance(alias, str) and alias in fields_by_name:
                aliased: avro.schema.Field = fields_by_name[alias]
                return aliased
    return None


def _join(path: str, name: str) -> str:
    return name if path == ROOT_PATH else f"{path}.{name}"


def _describe_path(path: str) -> str:
    return "the schema itself" if path == ROOT_PATH else f"field '{path}'"
