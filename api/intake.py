"""Commands over REST: parse, validate, publish to ``fin.commands``; 202 once Kafka has it.

A handler never writes a table: a command takes the same path as any event (ingest, posting).
The command resources (budgets, payables, receivables, master data, compensations) hand their
body builders to ``CommandIntake.accept``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from faust.web import Request, Response, View

from api import commands, params
from api.commands import (
    CommandRejectedError,
    IdempotencyKeyReusedError,
    IdempotencyMemory,
    PreparedCommand,
)
from api.http import (
    ApiKeys,
    BadParameterError,
    RequestRefusedError,
    bad_parameter,
    given_key,
    json_response,
    problem,
    read_body,
    refuse_access,
    require_json_media_type,
)
from ledger.chart import ChartOfAccounts
from ledger.contract import COMMANDS_TOPIC
from streams.hub import Hub

log = logging.getLogger(__name__)

# Builds a command's data from the path parameters and the JSON body.
DataBuilder = Callable[[Mapping[str, Any]], dict[str, Any]]


class CommandIntake:
    """The worker's command endpoint logic, with its memory of idempotency keys."""

    def __init__(self, hub: Hub, chart: ChartOfAccounts, keys: ApiKeys) -> None:
        self._hub = hub
        self._chart = chart
        self._keys = keys
        self._idempotency = IdempotencyMemory()
        self._commands_topic = hub.topic(COMMANDS_TOPIC)

    async def accept(
        self, view: View, request: Request, event_type: str, build_data: DataBuilder
    ) -> Response:
        """Parse, validate, publish; 202 once Kafka has the command."""
        if (status := self._keys.refusal(given_key(request), write=True)) is not None:
            return refuse_access(view, status, writes_disabled=self._keys.writes_disabled)
        try:
            require_json_media_type(request)
            body = commands.parse_json_object(await read_body(request))
            header = request.headers.get("Idempotency-Key")
            given = params.uuid_text(header, "Idempotency-Key") if header is not None else None
            data = build_data(body)
            # Without a key, a payment's id is its natural key's (the same payment twice is one).
            natural = commands.natural_command_id(event_type, data) if given is None else None
            event_id = given or natural or commands.new_command_id()
            command = self._prepared(
                event_type, data, event_id, remembered=given is not None or natural is not None
            )
        except RequestRefusedError as exc:
            return problem(view, exc.status, exc.title, exc.detail)
        except BadParameterError as exc:
            return bad_parameter(view, exc)
        except CommandRejectedError as exc:
            return problem(
                view,
                400,
                "command rejected",
                exc.rejection.detail,
                reason=exc.rejection.reason.value,
            )
        except IdempotencyKeyReusedError as exc:
            return _key_reused(view, exc, header, data)
        try:
            partition, offset = await commands.publish(self._commands_topic, command)
        except TimeoutError:
            log.warning("command %s not acknowledged by Kafka in time", command.command_id)
            return problem(
                view,
                503,
                "service unavailable",
                "Kafka did not acknowledge the command in time; retry with the same "
                "Idempotency-Key",
            )
        return json_response(
            view,
            {
                "command_id": command.command_id,
                "status": "accepted",
                "event_type": command.event_type,
                "partition": partition,
                "offset": offset,
            },
            202,
        )

    def _prepared(
        self, event_type: str, data: dict[str, Any], event_id: str, *, remembered: bool
    ) -> PreparedCommand:
        if remembered:
            again = self._idempotency.recall(event_id, commands.request_digest(event_type, data))
            if again is not None:
                return again
        command = commands.prepare(
            event_type,
            data,
            event_id=event_id,
            now=datetime.now(UTC),
            chart=self._chart,
            encoder=self._hub.encoder,
        )
        if remembered:
            self._idempotency.remember(event_id, command)
        return command


def _key_reused(
    view: View, exc: IdempotencyKeyReusedError, header: str | None, data: Mapping[str, Any]
) -> Response:
    if header is None:
        return problem(
            view,
            409,
            "conflict",
            f"payment_id {data['payment_id']} was already used for a different payment "
            f"(command {exc.key}); a resend must repeat it exactly, another payment "
            "needs its own payment_id",
            parameter="payment_id",
        )
    return problem(
        view,
        409,
        "conflict",
        f"Idempotency-Key {exc.key} was already used for a different request",
        parameter="Idempotency-Key",
    )
