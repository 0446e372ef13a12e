"""The registry's operations over an in-memory log: ids, versions, deletes, restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest

from registry.avro_schema import AvroSchema, parse_avro
from registry.compatibility import CompatibilityLevel
from registry.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    StoreError,
    SubjectCompatibilityNotConfiguredError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from registry.service import SchemaRegistry, VersionSpec, parse_schema
from tests.unit.registry.fakes import MemoryLog

LATEST = VersionSpec(None)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def payment(*extra_fields: dict[str, object]) -> AvroSchema:
    fields = [{"name": "payment_id", "type": "string"}, *extra_fields]
    return parse_avro(json.dumps({"type": "record", "name": "Payment", "fields": fields}))


V1 = payment()
V2 = payment({"name": "note", "type": ["null", "string"], "default": None})
V3_REQUIRED = payment(
    {"name": "note", "type": ["null", "string"], "default": None}, {"name": "fee", "type": "int"}
)


def loaded(log: MemoryLog) -> SchemaRegistry:
    registry = SchemaRegistry(log)
    run(registry.load())
    return registry


def test_same_schema_again_returns_the_same_id_and_adds_no_version():
    log = MemoryLog()
    registry = loaded(log)
    first = run(registry.register("s", V1))
    again = run(registry.register("s", parse_avro(json.dumps(json.loads(V1.canonical), indent=4))))
    assert first == again == 1
    assert registry.versions("s") == [1]
    assert len(log.records) == 1


def test_same_schema_under_another_subject_shares_the_id_with_its_own_version():
    registry = loaded(MemoryLog())
    run(registry.register("a", V2))
    run(registry.register("b", V1))
    assert run(registry.register("b", V2)) == 1
    assert registry.get_version("b", LATEST).version == 2
    assert [(e.subject, e.version) for e in registry.users_of(1)] == [("a", 1), ("b", 2)]


def test_ids_are_global_and_increasing():
    registry = loaded(MemoryLog())
    assert [
        run(registry.register(s, schema))
        for s, schema in [
            ("a", V1),
            ("a", V2),
            ("b", V1),
            ("c", payment({"name": "x", "type": "int"})),
        ]
    ] == [
        1,
        2,
        1,
        3,
    ]


def test_incompatible_schema_is_refused_with_409_and_nothing_is_written():
    log = MemoryLog()
    registry = loaded(log)
    run(registry.register("s", V1))
    with pytest.raises(IncompatibleSchemaError) as caught:
        run(registry.register("s", V3_REQUIRED))
    assert caught.value.http_status == caught.value.error_code == 409
    assert "'fee'" in caught.value.message
    assert '"s"' in caught.value.message
    assert len(log.records) == 1


def test_a_restart_rebuilds_the_same_ids_versions_and_levels():
    log = MemoryLog()
    registry = loaded(log)
    run(registry.set_level(None, CompatibilityLevel.FULL_TRANSITIVE))
    run(registry.set_level("s", CompatibilityLevel.FORWARD))
    ids = [
        run(registry.register("s", V1)),
        run(registry.register("s", V2)),
        run(registry.register("t", V2)),
    ]

    restarted = loaded(log)
    assert restarted.versions("s") == [1, 2]
    assert [
        restarted.lookup(s, schema).schema_id for s, schema in [("s", V1), ("s", V2), ("t", V2)]
    ] == ids
    assert restarted.global_level() is CompatibilityLevel.FULL_TRANSITIVE
    assert restarted.subject_level("s", default_to_global=False) is CompatibilityLevel.FORWARD
    assert run(restarted.register("u", payment({"name": "new", "type": "long"}))) == 3


def test_a_restart_after_permanent_delete_and_compaction_does_not_reuse_ids():
    log = MemoryLog()
    registry = loaded(log)
    run(registry.register("s", V1))
    run(registry.register("s", V2))
    run(registry.delete_version("s", VersionSpec(2), permanent=False))
    run(registry.delete_version("s", VersionSpec(2), permanent=True))

    restarted = loaded(log.compacted())
    with pytest.raises(SchemaNotFoundError):
        restarted.schema_by_id(2)
    assert run(restarted.register("other", payment({"name": "x", "type": "int"}))) == 3


def test_soft_delete_hides_versions_and_re_registering_makes_a_new_version_with_the_old_id():
    registry = loaded(MemoryLog())
    run(registry.register("s", V1))
    assert run(registry.delete_subject("s", permanent=False)) == [1]
    assert registry.subjects() == []
    assert registry.subjects(include_deleted=True) == ["s"]
    with pytest.raises(SubjectNotFoundError):
        registry.versions("s")
    assert registry.schema_by_id(1)[0] == V1.canonical  # ids stay resolvable for consumers
    assert run(registry.register("s", V1)) == 1
    assert registry.versions("s") == [2]


def test_deletes_follow_confluents_soft_then_permanent_order():
    registry = loaded(MemoryLog())
    run(registry.register("s", V1))
    run(registry.register("s", V2))
    with pytest.raises(SubjectNotSoftDeletedError):
        run(registry.delete_subject("s", permanent=True))
    with pytest.raises(VersionNotSoftDeletedError):
        run(registry.delete_version("s", VersionSpec(1), permanent=True))
    assert run(registry.delete_version("s", LATEST, permanent=False)) == 2
    with pytest.raises(VersionSoftDeletedError):
        run(registry.delete_version("s", VersionSpec(2), permanent=False))
    assert run(registry.delete_subject("s", permanent=False)) == [1]
    with pytest.raises(SubjectSoftDeletedError):
        run(registry.delete_subject("s", permanent=False))
    assert run(registry.delete_subject("s", permanent=True)) == [1, 2]
    assert registry.subjects(include_deleted=True) == []
    with pytest.raises(SubjectNotFoundError):
        run(registry.delete_subject("s", permanent=False))


def test_compatibility_ignores_soft_deleted_versions():
    registry = loaded(MemoryLog())
    run(registry.set_level(None, CompatibilityLevel.FULL_TRANSITIVE))
    run(registry.register("s", V1))
    run(registry.delete_version("s", VersionSpec(1), permanent=False))
    assert run(registry.register("s", payment({"name": "only", "type": "int"}))) == 2


def test_lookup_finds_the_version_or_says_what_is_missing():
    registry = loaded(MemoryLog())
    run(registry.register("s", V1))
    found = registry.lookup("s", parse_avro(V1.canonical))
    assert (found.subject, found.version, found.schema_id) == ("s", 1, 1)
    with pytest.raises(SchemaNotFoundError):
        registry.lookup("s", V2)
    with pytest.raises(SubjectNotFoundError):
        registry.lookup("nope", V1)


def test_check_against_one_version_or_against_what_the_level_needs():
    registry = loaded(MemoryLog())
    run(registry.register("s", V1))
    assert registry.check("s", LATEST, V2).is_compatible
    assert not registry.check("s", VersionSpec(1), V3_REQUIRED).is_compatible
    assert not registry.check("s", None, V3_REQUIRED).is_compatible
    assert registry.check("empty", None, V3_REQUIRED).is_compatible
    with pytest.raises(VersionNotFoundError):
        registry.check("s", VersionSpec(9), V2)
    with pytest.raises(SubjectNotFoundError):
        registry.check("nope", LATEST, V2)


def test_subject_level_is_absent_until_set_and_can_be_removed():
    registry = loaded(MemoryLog())
    with pytest.raises(SubjectCompatibilityNotConfiguredError) as caught:
        registry.subject_level("s", default_to_global=False)
    assert caught.value.error_code == 40408
    assert registry.subject_level("s", default_to_global=True) is CompatibilityLevel.BACKWARD
    run(registry.set_level("s", CompatibilityLevel.NONE))
    assert run(registry.delete_level("s")) is CompatibilityLevel.NONE
    with pytest.raises(SubjectCompatibilityNotConfiguredError):
        run(registry.delete_level("s"))


def test_a_failed_write_changes_nothing_and_the_next_write_works():
    log = MemoryLog()
    registry = loaded(log)
    log.fail_appends = True
    with pytest.raises(StoreError) as caught:
        run(registry.register("s", V1))
    assert caught.value.http_status == 500
    assert registry.subjects() == []
    log.fail_appends = False
    assert run(registry.register("s", V1)) == 1


def test_writes_catch_up_with_records_they_have_not_seen():
    log = MemoryLog()
    registry = loaded(log)
    other_writer = loaded(log)  # e.g. a write acknowledged after its caller gave up
    run(other_writer.register("s", V1))
    assert run(registry.register("t", V2)) == 2
    assert registry.versions("s") == [1]


def test_concurrent_registrations_of_one_schema_get_one_id_and_one_version():
    log = MemoryLog()

    async def scenario() -> list[int]:
        registry = SchemaRegistry(log)
        await registry.load()
        return list(await asyncio.gather(*(registry.register("s", V1) for _ in range(10))))

    assert run(scenario()) == [1] * 10
    assert len(log.records) == 1


@pytest.mark.parametrize(
    ("raw", "number"), [("latest", None), ("-1", None), ("1", 1), ("2147483647", 2147483647)]
)
def test_version_specs(raw, number):
    assert VersionSpec.parse(raw).number == number


@pytest.mark.parametrize("raw", ["0", "-2", "2147483648", "one", "1.5", "", "\u0661"])
def test_invalid_version_specs_are_refused_with_42202(raw):
    with pytest.raises(InvalidVersionError) as caught:
        VersionSpec.parse(raw)
    assert caught.value.error_code == 42202


@pytest.mark.parametrize(
    ("schema", "schema_type", "references", "reason"),
    [
        (V1.canonical, "PROTOBUF", None, "AVRO only"),
        (V1.canonical, "JSON", None, "AVRO only"),
        (V1.canonical, None, [{"name": "x", "subject": "y", "version": 1}], "references"),
        (None, None, None, "Empty schema"),
        (42, None, None, "Empty schema"),
        ("  ", None, None, "Empty schema"),
    ],
)
def test_request_schema_fields_are_validated(schema, schema_type, references, reason):
    with pytest.raises(InvalidSchemaError) as caught:
        parse_schema(schema, schema_type, references)
    assert reason in caught.value.message
