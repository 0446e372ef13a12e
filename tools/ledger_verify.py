"""``python app.py ledger verify``: read the ledger topic and check every hash chain.

The checks are ``ledger.chain``'s; this module only reads the topic (from the beginning to its
end offsets as of the start) and decodes each record through the schema registry, so entries
written under an older schema (before the chain fields) decode too and are counted unchained.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import orjson

from errors import FinError
from ledger.chain import ChainReport, ChainVerifier
from ledger.rejections import Rejection
from schemas.codec import Decoded
from settings import LEDGER_TOPIC, Settings

log = logging.getLogger(__name__)


class LedgerVerifyError(FinError):
    """The ledger topic could not be read (missing, broker unreachable)."""


def verify_records(
    records: Iterable[Any],
    decode: Callable[[bytes | None], Decoded | Rejection],
    topic: str,
) -> tuple[ChainVerifier, list[str]]:
    """Feed every consumed record (``partition``, ``offset``, ``value``) to a verifier.

    Returns the verifier and the positions of records that do not decode as journal entries
    (on the book of record, that is a break of its own)."""
    verifier = ChainVerifier()
    undecodable: list[str] = []
    for record in records:
        position = f"{topic}[{record.partition}]@{record.offset}"
        decoded = decode(record.value)
        if isinstance(decoded, Rejection):
            undecodable.append(f"{position}: {decoded.reason}: {decoded.detail}")
            continue
        verifier.add(decoded.record, record.value, position)
    return verifier, undecodable


def render(
    reports: list[ChainReport], verifier: ChainVerifier, undecodable: list[str], topic: str
) -> str:
    lines = [f"ledger {topic}:"]
    for report in reports:
        if report.first_break is None:
            lines.append(
                f"  chain {report.partition}: ok, {report.entries} entries, verified to sequence "
                f"{report.verified_sequence} (hash {report.verified_hash[:16]}..., "
                f"at {report.verified_position})"
            )
        else:
            broken = report.first_break
            lines.append(
                f"  chain {report.partition}: BROKEN at sequence {broken.sequence}: "
                f"{broken.problem} ({broken.position}); verified to sequence "
                f"{report.verified_sequence}"
            )
    lines.extend(f"  undecodable record {where}" for where in undecodable)
    lines.append(
        f"  {sum(r.entries for r in reports)} chained entries in {len(reports)} chain(s), "
        f"{verifier.repeats} byte-identical repeat(s) ignored, {verifier.unchained} entries "
        "without a chain (written before chains)"
    )
    return "\n".join(lines) + "\n"


def verify_command(settings: Settings, out: TextIO, *, topic: str | None, as_json: bool) -> int:
    """Exit status 0: every chain holds; 1: a break (or an undecodable record)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    from schemas.catalog import SchemaCatalog
    from schemas.codec import Decoder
    from schemas.registry import RegistryClient
    from streams.topic_scan import TopicReadError, read_topic

    name = topic or settings.topic(LEDGER_TOPIC)
    registry = RegistryClient(settings.schema_registry_url, timeout_s=settings.registry_timeout_s)
    try:
        decoder = Decoder(SchemaCatalog.load(settings.schema_dir), registry.get_schema)
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            client_id="fin-ledger-verify",
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=15_000,
        )
        try:
            verifier, undecodable = verify_records(
                read_topic(consumer, name, timeout_s=120.0),
                # Decoded against the ledger's contract whatever the copy is called.
                lambda value: decoder.decode(LEDGER_TOPIC, value),
                name,
            )
        finally:
            consumer.close()
    except (KafkaError, TopicReadError) as exc:
        raise LedgerVerifyError(f"reading {name}: {exc}") from exc
    finally:
        registry.close()
    reports = verifier.reports()
    broken = bool(undecodable) or any(report.first_break is not None for report in reports)
    if as_json:
        document = {
            "topic": name,
            "ok": not broken,
            "chains": [report.to_json_dict() for report in reports],
            "repeats": verifier.repeats,
            "unchained": verifier.unchained,
            "undecodable": undecodable,
        }
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(render(reports, verifier, undecodable, name))
    return 1 if broken else 0
