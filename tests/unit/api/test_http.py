"""API keys: who may call what, and what a refusal looks like."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from api.http import ApiKeys, security_warnings, to_jsonable

READ = "read-key"
WRITE = "write-key"


@pytest.mark.parametrize(
    ("given", "write", "expected"),
    [
        (None, False, 401),
        ("", False, 401),
        ("wrong", False, 401),
        (READ, False, None),
        (WRITE, False, None),
        (None, True, 401),
        ("wrong", True, 401),
        (READ, True, 403),
        (WRITE, True, None),
        (READ + "x", False, 401),
        (READ[:-1], False, 401),
        ("r\udcff", False, 401),
    ],
)
def test_a_key_is_refused_with_401_when_unknown_and_403_when_it_only_reads(
    given: str | None, write: bool, expected: int | None
) -> None:
    keys = ApiKeys(read_key=READ, write_key=WRITE)

    assert keys.refusal(given, write=write) == expected


def test_without_keys_reads_are_open_and_writes_are_refused_with_403_whatever_the_key() -> None:
    keys = ApiKeys(read_key=None, write_key=None)

    assert keys.refusal(None, write=False) is None
    assert keys.refusal(None, write=True) == 403
    assert keys.refusal("anything", write=True) == 403
    assert keys.writes_disabled


def test_insecure_writes_open_writes_only_when_there_is_no_write_key() -> None:
    open_for_a_demo = ApiKeys(read_key=None, write_key=None, insecure_writes=True)
    keyed = ApiKeys(read_key=None, write_key=WRITE, insecure_writes=True)

    assert open_for_a_demo.refusal(None, write=True) is None
    assert keyed.refusal(None, write=True) == 401
    assert keyed.refusal(WRITE, write=True) is None


def test_security_warnings_name_whatever_answers_without_a_key() -> None:
    hosts = frozenset({"localhost"})

    assert security_warnings(ApiKeys(READ, WRITE), hosts) == []
    reads_open = security_warnings(ApiKeys(None, WRITE), hosts)
    assert len(reads_open) == 1 and "reads are UNAUTHENTICATED" in reads_open[0]
    demo = " ".join(security_warnings(ApiKeys(None, None, insecure_writes=True), hosts))
    assert "writes are UNAUTHENTICATED" in demo
    closed = " ".join(security_warnings(ApiKeys(READ, None), hosts))
    assert "commands are refused" in closed
    assert "DNS rebinding" in " ".join(security_warnings(ApiKeys(READ, WRITE), frozenset("*")))


def test_a_write_key_alone_protects_writes_and_leaves_reads_open() -> None:
    keys = ApiKeys(read_key=None, write_key=WRITE)

    assert keys.refusal(None, write=False) is None
    assert keys.refusal(None, write=True) == 401
    assert keys.refusal(WRITE, write=True) is None


def test_one_key_for_both_reads_and_writes_allows_both() -> None:
    keys = ApiKeys(read_key=READ, write_key=READ)

    assert keys.refusal(READ, write=False) is None
    assert keys.refusal(READ, write=True) is None


def test_money_is_rendered_as_text_with_two_places_and_ratios_keep_their_places() -> None:
    rendered = to_jsonable(
        {"amount": Decimal("125000"), "ratio": Decimal("0.1234"), "day": date(2024, 3, 15)}
    )

    assert rendered == {"amount": "125000.00", "ratio": "0.1234", "day": "2024-03-15"}
