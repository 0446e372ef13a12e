"""API keys: who may call what, and what a refusal looks like."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from api.http import ApiKeys, to_jsonable

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


def test_without_keys_every_endpoint_is_open() -> None:
    keys = ApiKeys(read_key=None, write_key=None)

    assert keys.refusal(None, write=False) is None
    assert keys.refusal("anything", write=True) is None


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
