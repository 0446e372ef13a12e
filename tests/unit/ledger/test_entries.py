import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from errors import UnbalancedEntryError
from ledger.entries import (
    JournalEntry,
    JournalLine,
    SourceRef,
    assert_balanced,
    credit_line,
    debit_line,
    entry_id_for,
    from_avro_dict,
    from_json_dict,
    to_avro_dict,
    to_json_dict,
)

SCHEMA_DIR = Path(__file__).parents[3] / "schemas"
SOURCE = SourceRef(
    "2d8b4d30-6f2c-4e77-9c79-3b208dbf4c03", "crm.sales_order.completed", "crm.events", 2, 41
)


def sales_entry(**changes):
    values: dict[str, Any] = {
        "entry_id": entry_id_for(SOURCE.event_id, "2026.1"),
        "source": SOURCE,
        "rule_version": "2026.1",
        "business_date": date(2024, 3, 15),
        "period": "2024-03",
        "quarter": "2024-Q1",
        "currency": "USD",
        "lines": (
            debit_line("1100", Decimal("25000.00"), (("customer", "CUS-001"),)),
            credit_line("4000", Decimal("25000.00"), (("customer", "CUS-001"),)),
        ),
    }
    values.update(changes)
    return JournalEntry(**values)


def test_the_entry_id_is_a_uuid5_of_event_id_and_rule_version():
    entry_id = entry_id_for(SOURCE.event_id, "2026.1")
    assert UUID(entry_id).version == 5
    assert entry_id == entry_id_for(SOURCE.event_id, "2026.1")
    assert entry_id != entry_id_for(SOURCE.event_id, "2026.2")


def test_a_balanced_entry_is_built():
    entry = sales_entry()
    assert entry.total_debit == entry.total_credit == Decimal("25000.00")
    assert_balanced(entry)


def test_an_unbalanced_entry_cannot_be_built():
    with pytest.raises(UnbalancedEntryError, match=r"debits 25000\.00 != credits 24999\.99"):
        sales_entry(
            lines=(
                debit_line("1100", Decimal("25000.00")),
                credit_line("4000", Decimal("24999.99")),
            )
        )


def test_an_entry_without_lines_cannot_be_built():
    with pytest.raises(UnbalancedEntryError, match="no lines"):
        sales_entry(lines=())


def test_assert_balanced_catches_an_entry_corrupted_after_construction():
    entry = sales_entry()
    object.__setattr__(entry, "lines", entry.lines[:1])
    with pytest.raises(UnbalancedEntryError):
        assert_balanced(entry)


@pytest.mark.parametrize(
    ("debit", "credit"),
    [
        (Decimal("1.00"), Decimal("1.00")),
        (Decimal("0.00"), Decimal("0.00")),
        (Decimal("-1.00"), Decimal("0.00")),
        (Decimal("1.001"), Decimal("0.00")),
        (Decimal("1"), Decimal("0.00")),
        (1.0, Decimal("0.00")),
    ],
)
def test_a_line_has_exactly_one_positive_side_in_cents(debit, credit):
    with pytest.raises(UnbalancedEntryError):
        JournalLine("1100", debit, credit)


def test_line_dimensions_must_be_sorted_and_unique():
    with pytest.raises(UnbalancedEntryError):
        JournalLine("1100", Decimal("1.00"), Decimal("0.00"), (("b", "1"), ("a", "2")))
    with pytest.raises(UnbalancedEntryError):
        JournalLine("1100", Decimal("1.00"), Decimal("0.00"), (("a", "1"), ("a", "2")))


def test_the_period_is_derived_from_the_business_date():
    with pytest.raises(ValueError, match="period"):
        sales_entry(period="2024-04")
    with pytest.raises(ValueError, match="quarter"):
        sales_entry(quarter="2024-Q2")


def test_an_entry_round_trips_through_its_avro_and_json_forms():
    entry = sales_entry(reverses_entry_id="c76b5b13-d7b7-5738-8334-2e33ce6bbff5")
    assert from_avro_dict(to_avro_dict(entry)) == entry
    encoded = json.loads(json.dumps(to_json_dict(entry)))
    assert encoded["lines"][0]["debit"] == "25000.00"
    assert from_json_dict(encoded) == entry


def test_the_avro_form_matches_the_journal_entry_schema():
    import fastavro

    schema_path = SCHEMA_DIR / "fin_ledger_journal_entry.avsc"
    assert schema_path.exists(), f"missing {schema_path}"
    schema = fastavro.parse_schema(json.loads(schema_path.read_text()))
    entry = sales_entry()
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, to_avro_dict(entry))
    buffer.seek(0)
    decoded: Any = fastavro.schemaless_reader(buffer, schema)
    assert from_avro_dict(decoded) == entry
