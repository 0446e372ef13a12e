"""The JSON form of a table row, as stored in the tables and their changelogs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from ledger import deltas
from ledger.money import ZERO, money
from ledger.rows import (
    BudgetRow,
    CustomerRow,
    OpenItem,
    Payment,
    PeriodRow,
    ProductRow,
    ProjectRow,
    Row,
    VendorRow,
    Watermarks,
    frozen_mapping,
)

# --- JSON ----------------------------------------------------------------------------------


def _money_or_none(value: Any) -> Decimal | None:
    return None if value is None else money(value)


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _watermarks_to_json(watermarks: Watermarks) -> dict[str, list[int]]:
    # JSON object keys are text; the partition number is restored on the way back.
    return {
        str(partition): [offset, index] for partition, (offset, index) in sorted(watermarks.items())
    }


def _watermarks_from_json(encoded: Mapping[str, Any]) -> Watermarks:
    return frozen_mapping(
        {int(partition): (int(pair[0]), int(pair[1])) for partition, pair in encoded.items()}
    )


def _payment_to_json(payment: Payment | None) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {
        "payment_id": payment.payment_id,
        "amount": str(payment.amount),
        "business_date": None
        if payment.business_date is None
        else payment.business_date.isoformat(),
    }


def _payment_from_json(encoded: Mapping[str, Any] | None) -> Payment | None:
    if encoded is None:
        return None
    business_date = encoded.get("business_date")
    return Payment(
        payment_id=encoded["payment_id"],
        amount=money(encoded["amount"]),
        business_date=None if business_date is None else date.fromisoformat(business_date),
    )


def _item_json(item: OpenItem) -> dict[str, str]:
    """An open item's JSON form, made once per item: a vendor row is written again after every
    batch that touches it, and its items (all but the changed one) are the same objects."""
    kept: dict[str, str] | None = item.__dict__.get(_ITEM_JSON)
    if kept is None:
        kept = {
            "amount": str(item.amount),
            "business_date": item.business_date.isoformat(),
            "due_date": item.due_date.isoformat(),
            "document_id": item.document_id,
        }
        object.__setattr__(item, _ITEM_JSON, kept)  # a frozen dataclass; not one of its fields
    return kept


_ITEM_JSON = "_json_form"


def row_to_json_dict(row: Row) -> dict[str, Any]:
    """JSON-safe form of any row, tagged with its table; Decimals and dates as text."""
    body: dict[str, Any]
    match row:
        case BudgetRow():
            body = {"amount": _text_or_none(row.amount), "actual": str(row.actual)}
        case CustomerRow():
            body = {
                "credit_limit": _text_or_none(row.credit_limit),
                "exposure": str(row.exposure),
                "payments_total": str(row.payments_total),
                "last_payment": _payment_to_json(row.last_payment),
            }
        case VendorRow():
            body = {
                "items": {item_id: _item_json(item) for item_id, item in sorted(row.items.items())},
                "paid_total": str(row.paid_total),
                "last_payment": _payment_to_json(row.last_payment),
            }
            # Left out until the row has them, so older rows read and write as before.
            if row.latest_date is not None:
                body["latest_date"] = row.latest_date.isoformat()
            if row.settled_due is not None:
                body["settled_total"] = str(row.settled_total)
                body["settled_due"] = row.settled_due.isoformat()
        case PeriodRow():
            body = {
                "accounts": {
                    account: [str(debit), str(credit)]
                    for account, (debit, credit) in sorted(row.accounts.items())
                },
                "entry_count": row.entry_count,
            }
            # Left out while unused, so a row's bytes change only when its content does.
            if row.closed:
                body["closed"] = True
            if row.closed_totals is not None:
                body["closed_totals"] = {
                    account: [str(debit), str(credit)]
                    for account, (debit, credit) in sorted(row.closed_totals.items())
                }
            if row.late_entries_out:
                body["late_entries_out"] = row.late_entries_out
        case ProjectRow():
            body = {"hours": str(row.hours), "billable_amount": str(row.billable_amount)}
        case ProductRow():
            body = {"quantity": row.quantity, "cost": str(row.cost)}
    return {"table": row.table, **body, "watermarks": _watermarks_to_json(row.watermarks)}


def _budget_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return BudgetRow(
        amount=_money_or_none(encoded.get("amount")),
        actual=money(encoded["actual"]),
        watermarks=watermarks,
    )


def _customer_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return CustomerRow(
        credit_limit=_money_or_none(encoded.get("credit_limit")),
        exposure=money(encoded["exposure"]),
        payments_total=money(encoded["payments_total"]),
        last_payment=_payment_from_json(encoded.get("last_payment")),
        watermarks=watermarks,
    )


def _vendor_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    items = {
        item_id: OpenItem(
            amount=money(item["amount"]),
            business_date=date.fromisoformat(item["business_date"]),
            due_date=date.fromisoformat(item["due_date"]),
            document_id=item.get("document_id", ""),
        )
        for item_id, item in encoded["items"].items()
    }
    return VendorRow(
        items=frozen_mapping(items),
        paid_total=money(encoded["paid_total"]),
        last_payment=_payment_from_json(encoded.get("last_payment")),
        watermarks=watermarks,
        settled_total=money(encoded["settled_total"]) if "settled_total" in encoded else ZERO,
        settled_due=_date_or_none(encoded.get("settled_due")),
        latest_date=_date_or_none(encoded.get("latest_date")),
    )


def _date_or_none(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _period_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    accounts = {
        account: (money(pair[0]), money(pair[1])) for account, pair in encoded["accounts"].items()
    }
    totals = encoded.get("closed_totals")
    return PeriodRow(
        accounts=frozen_mapping(accounts),
        entry_count=int(encoded["entry_count"]),
        watermarks=watermarks,
        closed=bool(encoded.get("closed", False)),
        closed_totals=None
        if totals is None
        else frozen_mapping(
            {account: (money(pair[0]), money(pair[1])) for account, pair in totals.items()}
        ),
        late_entries_out=int(encoded.get("late_entries_out", 0)),
    )


def _project_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return ProjectRow(
        hours=money(encoded["hours"]),
        billable_amount=money(encoded["billable_amount"]),
        watermarks=watermarks,
    )


def _product_from(encoded: Mapping[str, Any], watermarks: Watermarks) -> Row:
    return ProductRow(
        quantity=int(encoded["quantity"]), cost=money(encoded["cost"]), watermarks=watermarks
    )


_ROW_READERS: Mapping[str, Callable[[Mapping[str, Any], Watermarks], Row]] = {
    deltas.BUDGETS: _budget_from,
    deltas.CUSTOMERS: _customer_from,
    deltas.VENDORS: _vendor_from,
    deltas.PERIODS: _period_from,
    deltas.PROJECTS: _project_from,
    deltas.PRODUCTS: _product_from,
}


def row_from_json_dict(table: str, encoded: Mapping[str, Any]) -> Row:
    """Read a row of ``table`` from its JSON form (the form's own tag must agree if present)."""
    reader = _ROW_READERS.get(table)
    if reader is None:
        raise ValueError(f"unknown table {table!r}")
    tag = encoded.get("table", table)
    if tag != table:
        raise ValueError(f"a {tag!r} row cannot be read as a {table!r} row")
    return reader(encoded, _watermarks_from_json(encoded.get("watermarks", {})))
