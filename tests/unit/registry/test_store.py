"""Rebuilding the registry's state from `_schemas` records."""

from __future__ import annotations

import json

from registry.avro_schema import parse_avro
from registry.compatibility import CompatibilityLevel
from registry.store import (
    LogRecord,
    RegistryState,
    SubjectVersion,
    config_key,
    config_value,
    id_watermark_key,
    id_watermark_value,
    schema_key,
    schema_value,
)

SCHEMA_A = parse_avro('{"type":"record","name":"A","fields":[{"name":"a","type":"string"}]}')
SCHEMA_B = parse_avro('{"type":"record","name":"B","fields":[{"name":"b","type":"string"}]}')


def version_record(
    offset: int, subject: str, version: int, schema_id: int, text: str, *, deleted: bool = False
) -> LogRecord:
    entry = SubjectVersion(subject, version, schema_id, text, deleted)
    return LogRecord(offset, schema_key(subject, version), schema_value(entry))


def replay(*records: LogRecord) -> RegistryState:
    state = RegistryState()
    for record in records:
        state.apply(record)
    return state


def test_keys_are_karapace_shaped_and_byte_stable():
    assert schema_key("s", 3) == b'{"keytype":"SCHEMA","subject":"s","version":3,"magic":1}'
    assert config_key(None) == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert json.loads(schema_value(SubjectVersion("s", 3, 7, "x", False))) == {
        "subject": "s",
        "version": 3,
        "id": 7,
        "schema": "x",
        "deleted": False,
    }


def test_replay_rebuilds_subjects_versions_and_ids():
    state = replay(
        version_record(0, "s1", 1, 1, SCHEMA_A.canonical),
        version_record(1, "s1", 2, 2, SCHEMA_B.canonical),
        version_record(2, "s2", 1, 1, SCHEMA_A.canonical),
    )
    assert state.subjects() == ["s1", "s2"]
    assert [entry.version for entry in state.versions("s1")] == [1, 2]
    assert state.id_of("AVRO", SCHEMA_A.canonical) == 1
    assert [(entry.subject, entry.version) for entry in state.users_of(1)] == [("s1", 1), ("s2", 1)]
    assert state.next_schema_id() == 3
    assert state.next_version("s1") == 3
    assert state.next_offset == 3


def test_ids_are_found_by_canonical_text_whatever_the_stored_formatting():
    pretty = json.dumps(json.loads(SCHEMA_A.canonical), indent=2)
    state = replay(version_record(0, "s", 1, 5, pretty))
    assert state.id_of("AVRO", SCHEMA_A.canonical) == 5


def test_soft_deleted_versions_are_hidden_but_keep_their_number_and_id():
    state = replay(
        version_record(0, "s", 1, 1, SCHEMA_A.canonical),
        version_record(1, "s", 1, 1, SCHEMA_A.canonical, deleted=True),
    )
    assert state.subjects() == []
    assert state.subjects(include_deleted=True) == ["s"]
    assert state.subjects(deleted_only=True) == ["s"]
    assert state.versions("s") == []
    assert state.next_version("s") == 2
    assert state.schema_text(1) == SCHEMA_A.canonical


def test_tombstone_forgets_the_version_and_an_unused_schema_but_never_reuses_its_id():
    state = replay(
        version_record(0, "s", 1, 1, SCHEMA_A.canonical),
        version_record(1, "s", 2, 2, SCHEMA_B.canonical),
        LogRecord(2, id_watermark_key(), id_watermark_value(2)),
        LogRecord(3, schema_key("s", 2), None),
    )
    assert [entry.version for entry in state.versions("s", include_deleted=True)] == [1]
    assert state.schema_text(2) is None
    assert state.id_of("AVRO", SCHEMA_B.canonical) is None
    assert state.next_schema_id() == 3


def test_after_compaction_the_watermark_alone_keeps_ids_from_being_reused():
    compacted = replay(
        version_record(0, "s", 1, 1, SCHEMA_A.canonical),
        LogRecord(2, id_watermark_key(), id_watermark_value(2)),
    )
    assert compacted.next_schema_id() == 3


def test_config_records_set_and_clear_levels():
    state = replay(
        LogRecord(0, config_key(None), config_value(CompatibilityLevel.FULL)),
        LogRecord(1, config_key("s"), config_value(CompatibilityLevel.NONE)),
    )
    assert state.global_level() is CompatibilityLevel.FULL
    assert state.effective_level("s") is CompatibilityLevel.NONE
    assert state.effective_level("other") is CompatibilityLevel.FULL
    state.apply(LogRecord(2, config_key("s"), None))
    state.apply(LogRecord(3, config_key(None), None))
    assert state.effective_level("s") is CompatibilityLevel.BACKWARD


def test_karapace_delete_subject_and_noop_records_are_understood():
    state = replay(
        version_record(0, "s", 1, 1, SCHEMA_A.canonical),
        version_record(1, "s", 2, 2, SCHEMA_B.canonical),
        LogRecord(2, b'{"keytype":"NOOP","magic":0}', b"{}"),
        LogRecord(
            3,
            b'{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}',
            b'{"subject":"s","version":1}',
        ),
    )
    assert [entry.version for entry in state.versions("s")] == [2]
    assert state.records_skipped == 0


def test_malformed_records_are_skipped_and_counted_not_fatal():
    state = replay(
        LogRecord(0, b"not json", b"{}"),
        LogRecord(1, b'{"keytype":"SCHEMA","subject":"s","version":0,"magic":1}', b"{}"),
        LogRecord(2, b'{"keytype":"MYSTERY"}', b"{}"),
        version_record(3, "s", 1, 1, SCHEMA_A.canonical),
    )
    assert state.records_skipped == 3
    assert state.subjects() == ["s"]
    assert state.next_offset == 4
