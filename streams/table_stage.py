"""Table state: the delta records that feed each table, and the stage that applies them.

Every table is written only by its own agent, from a topic partitioned by the table's key, so the
changelog partition of a write is the partition that owns the key (faust writes a table change to
the changelog partition of the event being processed). The reducer itself is pure (ledger.reducers)
and guarded by the delta's position, so a replay never applies a change twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from ledger import reducers
from ledger.chart import ChartOfAccounts
from ledger.deltas import Delta, delta_from_json_dict, delta_to_json_dict
from schemas.codec import Encoder
from settings import ALERTS_TOPIC, delta_topic
from streams.effects import Outcome, Send, StageResult


def delta_send(delta: Delta, position: reducers.Position, event_id: str) -> Send:
    body = {"delta": delta_to_json_dict(delta), "position": list(position), "event_id": event_id}
    return Send(delta_topic(delta.table), delta.key.encode(), orjson.dumps(body))


@dataclass(frozen=True)
class DeltaRecord:
    delta: Delta
    position: reducers.Position
    event_id: str

    @classmethod
    def parse(cls, value: bytes) -> DeltaRecord:
        body = orjson.loads(value)
        partition, offset, index = body["position"]
        return cls(
            delta_from_json_dict(body["delta"]), (partition, offset, index), body["event_id"]
        )


class TableApply:
    """Delta → new table row (guarded), plus any alerts, for one table."""

    def __init__(self, table: str, encoder: Encoder, chart: ChartOfAccounts) -> None:
        self.table = table
        self._encoder = encoder
        self._chart = chart

    def process(self, value: bytes, current: bytes | None) -> StageResult:
        record = DeltaRecord.parse(value)
        row = (
            reducers.row_from_json_dict(self.table, orjson.loads(current))
            if current is not None
            else None
        )
        outcome = reducers.apply(
            row, record.delta, record.position, self._chart, source_event_id=record.event_id
        )
        if not outcome.applied:
            return StageResult(outcome=Outcome.SKIPPED, event_id=record.event_id)
        sends = tuple(
            Send(
                ALERTS_TOPIC,
                alert.subject.encode(),
                self._encoder.encode(reducers.alert_to_avro_dict(alert)),
            )
            for alert in outcome.alerts
        )
        return StageResult(
            outcome=Outcome.APPLIED,
            event_id=record.event_id,
            sends=sends,
            table_writes=(
                (
                    self.table,
                    record.delta.key,
                    orjson.dumps(reducers.row_to_json_dict(outcome.row)),
                ),
            ),
            alert_types=tuple(alert.alert_type for alert in outcome.alerts),
        )
