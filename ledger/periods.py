"""Accounting periods: a month (``2024-03``) or a quarter (``2024-Q1``), derived from a date."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

PeriodKind = Literal["month", "quarter"]

MONTHS_PER_QUARTER = 3

# Anchored and exact: the text is a table key, so "2024-3" or " 2024-03" must not alias "2024-03".
_MONTH_PATTERN = re.compile(r"(?P<year>\d{4})-(?P<number>\d{2})")
_QUARTER_PATTERN = re.compile(r"(?P<year>\d{4})-Q(?P<number>\d)")


@dataclass(frozen=True)
class Period:
    """One month or one quarter of one year; ``str(period)`` is its canonical text."""

    kind: PeriodKind
    year: int
    number: int

    def __post_init__(self) -> None:
        number_max = 12 if self.kind == "month" else 4
        if not 1 <= self.year <= 9999:
            raise ValueError(f"period year out of range: {self.year}")
        if not 1 <= self.number <= number_max:
            raise ValueError(f"{self.kind} number out of range: {self.number}")

    def __str__(self) -> str:
        if self.kind == "month":
            return f"{self.year:04d}-{self.number:02d}"
        return f"{self.year:04d}-Q{self.number}"

    @property
    def text(self) -> str:
        return str(self)

    @property
    def first_day(self) -> date:
        first_month = self.number if self.kind == "month" else (self.number - 1) * 3 + 1
        return date(self.year, first_month, 1)

    def contains(self, day: date) -> bool:
        return month_period(day) in months_in(self)


def month_period(day: date) -> Period:
    return Period("month", day.year, day.month)


def quarter_period(day: date) -> Period:
    return Period("quarter", day.year, (day.month - 1) // MONTHS_PER_QUARTER + 1)


def month_of(day: date) -> str:
    """``2024-03`` for any day of March 2024."""
    # str(month_period(day)) without building and checking a Period: a date's year and month
    # are always in range. Several calls per posting.
    return f"{day.year:04d}-{day.month:02d}"


def quarter_of(day: date) -> str:
    """``2024-Q1`` for any day of January to March 2024."""
    return f"{day.year:04d}-Q{(day.month - 1) // MONTHS_PER_QUARTER + 1}"


def parse_period(text: str) -> Period:
    """Parse canonical period text; anything else raises ``ValueError`` naming the text."""
    if not isinstance(text, str):
        raise ValueError(f"period must be text, got {type(text).__name__}")
    month_match = _MONTH_PATTERN.fullmatch(text)
    quarter_match = _QUARTER_PATTERN.fullmatch(text)
    match = month_match or quarter_match
    if match is None:
        raise ValueError(f"period {text!r} is neither a month (2024-03) nor a quarter (2024-Q1)")
    kind: PeriodKind = "month" if month_match is not None else "quarter"
    try:
        return Period(kind, int(match["year"]), int(match["number"]))
    except ValueError as exc:
        raise ValueError(f"period {text!r}: {exc}") from exc


def months_in(period: Period) -> tuple[Period, ...]:
    """The months a period covers: itself for a month, three for a quarter."""
    if period.kind == "month":
        return (period,)
    first_month = (period.number - 1) * MONTHS_PER_QUARTER + 1
    return tuple(
        Period("month", period.year, month)
        for month in range(first_month, first_month + MONTHS_PER_QUARTER)
    )


def quarter_of_period(period: Period) -> Period:
    """The quarter a month belongs to (a quarter is its own quarter)."""
    if period.kind == "quarter":
        return period
    return Period("quarter", period.year, (period.number - 1) // MONTHS_PER_QUARTER + 1)
