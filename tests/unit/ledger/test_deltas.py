import json
from datetime import date
from decimal import Decimal

import pytest

from ledger import deltas
from ledger.deltas import NotReversibleError, from_json_dict, negate, to_json_dict

D = Decimal

EVERY_DELTA: list[deltas.Delta] = [
    deltas.BudgetActual("ENG-001", "SALARY", "2024-03", D("125000.00")),
    deltas.BudgetSet("ENG-001", "SALARY", "2024-Q1", D("500000.00")),
    deltas.CustomerExposure("CUS-001", D("25000.00")),
    deltas.CustomerExposure("CUS-001", D("-25000.00"), "RCPT-001", date(2024, 3, 22)),
    deltas.CreditLimitSet("CUS-001", D("30000.00")),
    deltas.VendorInvoice(
        "VEN-001", "item-1", D("15750.00"), date(2024, 3, 15), date(2024, 4, 14), "PO-2024-001234"
    ),
    deltas.VendorPayment("VEN-001", "PAY-1", D("15750.00"), date(2024, 3, 20)),
    deltas.PeriodPosting(
        "2024-Q1", (("1100", D("25000.00"), D("0.00")), ("4000", D("0.00"), D("25000.00")))
    ),
    deltas.ProjectTime("PROJ-CLIENT-A-001", D("8.00"), D("1125.00")),
    deltas.ProductionCost("WIDGET-A", 1000, D("45000.00")),
]


@pytest.mark.parametrize("delta", EVERY_DELTA, ids=lambda delta: type(delta).__name__)
def test_every_delta_round_trips_through_tagged_json(delta):
    encoded = json.loads(json.dumps(to_json_dict(delta)))
    assert encoded["type"] == type(delta).__name__
    assert from_json_dict(encoded) == delta


def test_each_delta_names_its_table_and_row_key():
    keys = {(delta.table, delta.key) for delta in EVERY_DELTA}
    assert ("budgets", "ENG-001|SALARY|2024-03") in keys
    assert ("budgets", "ENG-001|SALARY|2024-Q1") in keys
    assert ("customers", "CUS-001") in keys
    assert ("vendors", "VEN-001") in keys
    assert ("periods", "2024-Q1") in keys
    assert ("projects", "PROJ-CLIENT-A-001") in keys
    assert ("products", "WIDGET-A") in keys
    assert {delta.table for delta in EVERY_DELTA} == set(deltas.TABLES)


@pytest.mark.parametrize(
    "delta",
    [delta for delta in EVERY_DELTA if deltas.is_negatable(delta)],
    ids=lambda delta: type(delta).__name__,
)
def test_negating_twice_gives_the_delta_back(delta):
    assert negate(negate(delta)) == delta
    assert negate(delta) != delta


def test_negation_flips_amounts_and_swaps_period_sides():
    assert negate(deltas.ProductionCost("WIDGET-A", 1000, D("45000.00"))) == (
        deltas.ProductionCost("WIDGET-A", -1000, D("-45000.00"))
    )
    assert negate(deltas.PeriodPosting("2024-03", (("1100", D("1.00"), D("0.00")),))) == (
        deltas.PeriodPosting("2024-03", (("1100", D("0.00"), D("1.00")),))
    )


@pytest.mark.parametrize(
    "delta",
    [
        deltas.BudgetSet("ENG-001", "SALARY", "2024-Q1", D("1.00")),
        deltas.CreditLimitSet("CUS-001", D("1.00")),
    ],
    ids=lambda delta: type(delta).__name__,
)
def test_a_set_cannot_be_negated(delta):
    assert not deltas.is_negatable(delta)
    with pytest.raises(NotReversibleError):
        negate(delta)


def test_delta_amounts_must_be_cents():
    with pytest.raises(ValueError):
        deltas.BudgetActual("ENG-001", "SALARY", "2024-03", D("1.5"))
    with pytest.raises(ValueError):
        deltas.CustomerExposure("CUS-001", 1.5)  # type: ignore[arg-type]
