"""Golden digests of everything FIN persists or publishes for 2000 synthetic events.

The per-event code is optimised for speed (issue 13, item 5); what it produces must not change by
a single byte: journal entries and alerts are published, fingerprints and processed records are
kept in RocksDB tables (a changed fingerprint would turn every replay into event_id_conflict),
deltas and table rows travel through changelogs. The digests below were computed with the code as
it was before any optimisation (commit ef84751) and must never be updated to make a change pass.

The run mirrors the hub's posting and table stages (streams/posting.py, streams/table_stage.py):
decode, validate, fingerprint, post (a compensation reverses the posting read back from its target's
processed record), processed record JSON, delta JSON, reducers on rows read from and written to
their JSON form, journal entries and alerts encoded in the wire format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from demo.bad_records import bad_records
from demo.generator import synthetic_events
from ledger import idempotency, reducers, rules, validation
from ledger.chart import default_chart_path, load_chart
from ledger.deltas import delta_to_json_dict
from ledger.entries import SourceRef, assert_balanced, to_avro_dict
from ledger.events import CompensationRequested
from ledger.rejections import Rejection
from schemas.catalog import SchemaCatalog, contract_for_record
from schemas.codec import Decoder, Encoder
from schemas.registry import SchemaNotFound

EVENTS = 2000
SEED = 7
RECEIVED_AT = datetime(2024, 6, 1, tzinfo=UTC)

GOLDEN = {
    "source_values": "d8f30505a0fdfd915beae876d4cfd1b3f81c7fa88e3c42890208fc5a213a66f2",
    "decoded_records": "b1de4bb3655c26a3349dd2cce48dd71b4549583c80e606ebbb85221fb62c3564",
    "events": "f273e47dccf5cfa00c6c04eeeaaeefd3cc263d6cbd2ad66f99382a05877596f7",
    "fingerprints": "7f99789b907f03daa7fa4469b4d707a46a4eb00e929bc3e94f483d5438eadcd0",
    "processed_records": "cf5224a02c9c236cf7da734ea7ce99240ba162e2c70a7c7e02b465fac1f7bf21",
    "deltas": "ebb872ff033b1121d55dece200814259e318bc69676ea173fc7cd605c7a26558",
    # Five optional fields appended to the journal entry (issue 16, 2026-12-03): four of the
    # hash chain and posting_period. An entry posted in its own period and not chained (the
    # golden run calls the rules, not the posting stage) ends in five more bytes, the null
    # branch of each union. Without them the digest is still the first one (test below).
    "entries": "828fcfad853681e05c43b3b229a41080ff150f82369ebafdac6072ec5ba93e7f",
    "alerts": "5e80c49ff7e607fbfd803ca58e5c5b1b64b5e5ce7302140ca20c05084f4d03b4",
    "rows": "21e9ff22679dae97019ed3d7d8814a8ed03e75d5a27f042bf4f6619adbc17e2f",
    # Two bad records added with field_too_long (2026-12-03); without them the digest is still
    # the first one, b9d9dacf5f3211417bca133654d45e411b402f3b6d0297dce82db89b000e1cc8.
    "rejections": "672f509889692d9e6908a7903b6ae33a024f93b9e0600fc3f84a012207d45e8d",
}

# Records added to the contract after the digests were first computed (issue 16).
ADDED_SINCE = frozenset({"fin.commands.DepartmentChanged", "fin.commands.PeriodChanged"})
ENTRIES_BEFORE_CHAINS = "b5704aa217b1e02326711bb3ce9104c546c237b150399d186e3ca403035f0bba"


def _digest(chunks: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        # Length-prefixed, so moving a byte from one chunk to the next changes the digest.
        hasher.update(len(chunk).to_bytes(8, "big"))
        hasher.update(chunk)
    return hasher.hexdigest()


@cache
def outputs() -> dict[str, list[bytes]]:
    catalog = SchemaCatalog.load()
    # Schema ids as the run first had them: a schema added since takes an id after them all
    # (its file would otherwise shift the ids of the schemas sorted after it, and with them
    # the wire-format header of every record).
    ordered = [e for e in catalog.entries if e.fullname not in ADDED_SINCE] + [
        e for e in catalog.entries if e.fullname in ADDED_SINCE
    ]
    ids = {entry.subject: index for index, entry in enumerate(ordered, start=1)}
    texts = {index: entry.schema_str for index, entry in enumerate(ordered, start=1)}
    encoder = Encoder(catalog, ids.__getitem__)

    def fetch_schema(schema_id: int) -> str:
        if schema_id not in texts:
            raise SchemaNotFound(f"schema {schema_id} not found (fake)", 40403)
        return texts[schema_id]

    decoder = Decoder(catalog, fetch_schema)
    chart = load_chart(default_chart_path())
    out: dict[str, list[bytes]] = {name: [] for name in GOLDEN}
    processed: dict[str, bytes] = {}
    rows: dict[tuple[str, str], bytes] = {}
    for offset, record in enumerate(synthetic_events(SEED, count=EVENTS)):
        topic = contract_for_record(record).topic
        value = encoder.encode(record)
        out["source_values"].append(value)
        decoded = decoder.decode(topic, value)
        assert not isinstance(decoded, Rejection), decoded
        out["decoded_records"].append(repr(decoded).encode())
        event = validation.validate(
            decoded.record, topic=topic, received_at=RECEIVED_AT, chart=chart
        )
        assert not isinstance(event, Rejection), event
        out["events"].append(repr(event).encode())
        fingerprint = idempotency.fingerprint(decoded.record)
        out["fingerprints"].append(fingerprint.encode())
        source = SourceRef(event.event_id, event.event_type, topic, 1, offset)
        if isinstance(event, CompensationRequested):
            target = idempotency.ProcessedRecord.from_json_dict(
                orjson.loads(processed[event.target_event_id])
            )
            posting = rules.reverse(target.posting_value(), event.event_id, source)
            marked = target.with_compensated_by(event.event_id)
            processed[event.target_event_id] = orjson.dumps(marked.to_json_dict())
            out["processed_records"].append(processed[event.target_event_id])
        else:
            posting = rules.post(event, source, chart)
        record_json = orjson.dumps(
            idempotency.ProcessedRecord(
                fingerprint=fingerprint,
                source=source,
                by_id_offset=offset,
                posting=rules.posting_to_json_dict(posting),
            ).to_json_dict()
        )
        processed[event.event_id] = record_json
        out["processed_records"].append(record_json)
        if posting.entry is not None:
            assert_balanced(posting.entry)
            out["entries"].append(encoder.encode(to_avro_dict(posting.entry)))
        for index, delta in enumerate(posting.deltas):
            out["deltas"].append(orjson.dumps(delta_to_json_dict(delta)))
            row_key = (delta.table, delta.key)
            current = rows.get(row_key)
            row = (
                reducers.row_from_json_dict(delta.table, orjson.loads(current))
                if current is not None
                else None
            )
            outcome = reducers.apply(
                row, delta, (1, offset, index), chart, source_event_id=event.event_id
            )
            assert outcome.applied
            rows[row_key] = orjson.dumps(reducers.row_to_json_dict(outcome.row))
            out["alerts"].extend(
                encoder.encode(reducers.alert_to_avro_dict(alert)) for alert in outcome.alerts
            )
    out["rows"] = [b"|".join((*map(str.encode, key), rows[key])) for key in sorted(rows)]
    for bad in bad_records(SEED, ids.__getitem__, catalog):
        result: Any = decoder.decode(bad.topic, bad.value)
        if not isinstance(result, Rejection):
            result = validation.validate(
                result.record, topic=bad.topic, received_at=RECEIVED_AT, chart=chart
            )
        rejection = result if isinstance(result, Rejection) else None
        line = "accepted" if rejection is None else f"{rejection.reason}: {rejection.detail}"
        out["rejections"].append(line.encode())
    return out


def test_the_run_covers_every_output() -> None:
    counts = {name: len(chunks) for name, chunks in outputs().items()}
    assert counts["entries"] > 1500 and counts["alerts"] > 0
    assert len(set(outputs()["rejections"])) > 20


# Vendor rows carry the latest business date they have seen since they are bounded (settled
# items leave them, docs/design.md "Bounded vendor rows"): a field added on purpose. These
# events span less than the 90 days after which a settled item leaves, so no item settles and,
# without that one field, every row is byte for byte what it was.
LATEST_DATE = re.compile(rb',"latest_date":"\d{4}-\d{2}-\d{2}"')


def _as_before_bounded_vendor_rows(rows: list[bytes]) -> list[bytes]:
    assert not any(b"settled_" in row for row in rows)
    vendors = [row for row in rows if row.startswith(b"vendors|")]
    assert vendors and all(len(LATEST_DATE.findall(row)) == 1 for row in vendors)
    return [LATEST_DATE.sub(b"", row) for row in rows]


def test_outputs_are_byte_identical_to_the_golden_digests() -> None:
    produced = dict(outputs())  # a copy: outputs() is cached
    produced["rows"] = _as_before_bounded_vendor_rows(produced["rows"])
    digests = {name: _digest(chunks) for name, chunks in produced.items()}
    assert digests == GOLDEN


def test_entries_differ_from_the_first_golden_only_by_five_null_optional_fields() -> None:
    entries = outputs()["entries"]
    assert all(chunk.endswith(b"\x00" * 5) for chunk in entries)
    assert _digest(chunk[:-5] for chunk in entries) == ENTRIES_BEFORE_CHAINS
