"""What the contract says about each data field of an event, declared once, on the field.

An event's dataclass (``ledger.event_types``) is the one Python source of its data fields: the
attribute's name and type, its default (the schema's default), and, in the field's metadata
(``dataclasses.field(metadata=amount())`` and the like), what the validation and the wire need
to know beyond the type: that it is an amount, a reference to master data, a business date the
producer stated, free text, a uuid, one of a fixed set of values, or that the record names it
differently. ``layout_of`` reads that once per class; the generic ``amounts()``,
``references()``, ``stated_dates()`` and ``free_texts()`` of the events, the reader of
``ledger.events`` and ``ledger.event_json.to_record`` all work from it, and a unit test holds
every ``schemas/*.avsc`` event schema to it.

A class declares its own fields in the order of the schema's ``data`` record; the fields a base
class adds (``currency`` and ``business_date`` of the dated events) come after them. The tuples
built from the layout (the order in which validation reports a fault) follow that order.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Literal

ROLE_KEY = "fin"
# The envelope's fields; everything else on an event's dataclass is a field of ``data``.
ENVELOPE_FIELDS = frozenset({"event_id", "timestamp", "source"})

ReferenceKind = Literal["department", "category", "currency", "entity"]


class Required:
    """The default of a field the record must carry (``dataclasses.MISSING``, typed)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = Required()


@dataclass(frozen=True)
class FieldRole:
    """What a data field is, beyond its Python type."""

    wire: str | None = None  # the field's name in the record, when not the attribute's
    amount: bool = False
    zero_allowed: bool = False  # with amount: zero is a real value, not a mistake
    reference: ReferenceKind | None = None
    stated_date: bool = False  # a business date the producer stated (checked against a window)
    free_text: bool = False  # kept as written; only its length is checked
    identifier: bool = False  # a uuid: fastavro yields ``uuid.UUID``, the record holds its text
    one_of: tuple[str, ...] = ()  # the values allowed, when the schema's string is an enum


def _role(**role: Any) -> Mapping[str, FieldRole]:
    return {ROLE_KEY: FieldRole(**role)}


def amount(*, zero_allowed: bool = False) -> Mapping[str, FieldRole]:
    """Metadata of an amount (checked positive, or non-negative when zero is allowed)."""
    return _role(amount=True, zero_allowed=zero_allowed)


def ref(kind: ReferenceKind) -> Mapping[str, FieldRole]:
    """Metadata of an identifier of master data or of another service's entity."""
    return _role(reference=kind)


def stated_date(*, wire: str | None = None) -> Mapping[str, FieldRole]:
    """Metadata of a business date the producer stated."""
    return _role(stated_date=True, wire=wire)


def free_text() -> Mapping[str, FieldRole]:
    return _role(free_text=True)


def identifier() -> Mapping[str, FieldRole]:
    return _role(identifier=True)


def one_of(values: tuple[str, ...]) -> Mapping[str, FieldRole]:
    return _role(one_of=values)


@dataclass(frozen=True)
class DataField:
    """One data field of an event (or of a record nested in one), as declared."""

    name: str  # the attribute
    wire: str  # the field's name in the record
    hint: Any  # the attribute's type, resolved (``str | None``, ``tuple[DepartmentLine, ...]``)
    default: Any  # ``REQUIRED`` when the record must carry the field
    role: FieldRole
    nested: Layout | None = None  # for ``tuple[X, ...]`` of a dataclass X: X's layout


# What the generic methods of an event walk, read once per class: (attribute, "." + the record's
# name for it, what the role says, the nested layout of an array of records or None).
AmountItem = tuple[str, str, bool, "Layout | None"]  # the role's part: zero_allowed
ReferenceItem = tuple[str, str, ReferenceKind | None, "Layout | None"]


@dataclass(frozen=True)
class Layout:
    """The data fields of one class, and those with a role, in the order they are read and
    reported in: the class's own fields as declared, then those it inherits (a dated event's
    ``currency`` and ``business_date``), as every schema has its references and amounts."""

    cls: type
    fields: tuple[DataField, ...]
    amounts: tuple[AmountItem, ...]  # amounts, and nested records that hold amounts
    references: tuple[ReferenceItem, ...]  # references, and nested records holding references
    stated_dates: tuple[tuple[str, str], ...]  # (attribute, ".wire")
    free_texts: tuple[tuple[str, str], ...]  # (attribute, ".wire")


def layout_of(cls: type) -> Layout:
    """The data fields of the dataclass ``cls`` (an event, or a record nested in one)."""
    hints = typing.get_type_hints(cls)
    declared = [item for item in fields(cls) if item.name not in ENVELOPE_FIELDS]
    own = inspect.get_annotations(cls)  # this class's own, not its bases'
    found = []
    for item in sorted(declared, key=lambda item: item.name not in own):
        role = item.metadata.get(ROLE_KEY, FieldRole())
        assert isinstance(role, FieldRole), f"{cls.__name__}.{item.name}: metadata is not a role"
        if item.default is not MISSING:
            default = item.default
        elif item.default_factory is not MISSING:
            default = item.default_factory()
        else:
            default = REQUIRED
        hint = hints[item.name]
        found.append(
            DataField(item.name, role.wire or item.name, hint, default, role, _nested(hint))
        )
    data = tuple(found)
    return Layout(
        cls=cls,
        fields=data,
        amounts=tuple(
            (f.name, f".{f.wire}", f.role.zero_allowed, f.nested)
            for f in data
            if f.role.amount or (f.nested and f.nested.amounts)
        ),
        references=tuple(
            (f.name, f".{f.wire}", f.role.reference, f.nested)
            for f in data
            if f.role.reference or (f.nested and f.nested.references)
        ),
        stated_dates=tuple((f.name, f".{f.wire}") for f in data if f.role.stated_date),
        free_texts=tuple((f.name, f".{f.wire}") for f in data if f.role.free_text),
    )


def item_type(hint: Any) -> type | None:
    """X of ``tuple[X, ...]`` when X is a dataclass (a nested record), else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if isinstance(item, type) and is_dataclass(item):
            return item
    return None


def _nested(hint: Any) -> Layout | None:
    item = item_type(hint)
    return None if item is None else layout_of(item)
