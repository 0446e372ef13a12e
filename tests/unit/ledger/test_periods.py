from datetime import date

import pytest

from ledger.periods import Period, month_of, months_in, parse_period, quarter_of


@pytest.mark.parametrize(
    ("day", "month", "quarter"),
    [
        (date(2024, 3, 15), "2024-03", "2024-Q1"),
        (date(2024, 1, 1), "2024-01", "2024-Q1"),
        (date(2024, 4, 1), "2024-04", "2024-Q2"),
        (date(2024, 12, 31), "2024-12", "2024-Q4"),
    ],
)
def test_a_date_belongs_to_one_month_and_one_quarter(day, month, quarter):
    assert month_of(day) == month
    assert quarter_of(day) == quarter


def test_parse_period_reads_months_and_quarters():
    assert parse_period("2024-03") == Period("month", 2024, 3)
    assert parse_period("2024-Q1") == Period("quarter", 2024, 1)
    assert str(parse_period("2024-Q4")) == "2024-Q4"


@pytest.mark.parametrize(
    "text",
    [
        "2024-13",
        "2024-00",
        "2024-Q5",
        "2024-Q0",
        "2024-3",
        "24-03",
        " 2024-03",
        "2024-q1",
        "2024/03",
        "",
        "2024-03-01",
        "0000-01",
    ],
)
def test_parse_period_refuses_anything_but_canonical_text(text):
    with pytest.raises(ValueError):
        parse_period(text)


def test_a_quarter_covers_three_months_and_a_month_itself():
    assert [str(month) for month in months_in(parse_period("2024-Q2"))] == [
        "2024-04",
        "2024-05",
        "2024-06",
    ]
    assert months_in(parse_period("2024-03")) == (parse_period("2024-03"),)


def test_a_period_knows_the_days_it_contains():
    assert parse_period("2024-Q1").contains(date(2024, 3, 31))
    assert not parse_period("2024-Q1").contains(date(2024, 4, 1))
    assert parse_period("2024-Q2").first_day == date(2024, 4, 1)
