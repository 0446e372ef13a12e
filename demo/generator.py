"""Events for demos, load tests and integration tests, as Avro record dicts.

`specification_samples` are the five sample events of the specification with the FIN commands
that make them meaningful (a budget for ENG-001, a credit limit for CUS-001). `synthetic_events`
is an endless, seeded, realistic mix. Money is built from whole cents (`Decimal(cents) / 100`
exactly), never from a float.
"""

import datetime as dt
import itertools
import random
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from ledger.event_json import envelope

UTC = dt.UTC
SYNTHETIC_START = dt.datetime(2024, 1, 1, tzinfo=UTC)
DEPARTMENTS = ("ENG-001", "SALES-001", "OPS-001", "FIN-001", "HR-001")
CUSTOMER_COUNT = 300
VENDOR_COUNT = 200
PROJECT_COUNT = 150
PRODUCT_COUNT = 80
EMPLOYEE_COUNT = 600
ZIPF_EXPONENT = 1.1

# Share of each source event type among source events (per mille).
EVENT_WEIGHTS = {
    "hr.payroll.processed": 20,
    "scm.goods.received": 250,
    "crm.sales_order.completed": 300,
    "mfg.production_order.completed": 130,
    "pm.time.logged": 300,
}
# Chance per step (per mille) of a FIN command instead of a source event, when one applies.
CUSTOMER_PAYMENT_PER_MILLE = 40
VENDOR_PAYMENT_PER_MILLE = 35
COMPENSATION_PER_MILLE = 3
EVENT_GAP_MS_MAX = 6_000  # mean gap 3 s: a million events span about five weeks
COMPENSABLE_MEMORY = 1_000
SOURCES = {
    "hr": "hr-service",
    "scm": "scm-service",
    "crm": "crm-service",
    "mfg": "mfg-service",
    "pm": "pm-service",
    "fin": "fin-demo",
}
COMPENSATION_REASONS = (
    "entered twice",
    "logged against the wrong project",
    "order cancelled after completion",
    "quantity corrected by a recount",
)


def money_from_cents(cents: int) -> Decimal:
    """Exact two-place Decimal of a whole number of cents."""
    return Decimal(cents).scaleb(-2)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


# --- the specification's samples -----------------------------------------------------------

SAMPLE_EVENT_IDS = {
    "fin.budget.set": "5a3c1e6e-0b1f-4c55-9d7a-000000000001",
    "fin.credit_limit.set": "5a3c1e6e-0b1f-4c55-9d7a-000000000002",
    "hr.payroll.processed": "5a3c1e6e-0b1f-4c55-9d7a-000000000003",
    "scm.goods.received": "5a3c1e6e-0b1f-4c55-9d7a-000000000004",
    "crm.sales_order.completed": "5a3c1e6e-0b1f-4c55-9d7a-000000000005",
    "mfg.production_order.completed": "5a3c1e6e-0b1f-4c55-9d7a-000000000006",
    "pm.time.logged": "5a3c1e6e-0b1f-4c55-9d7a-000000000007",
}


def specification_samples() -> list[dict[str, Any]]:
    """The sample events of the specification, preceded by the commands they rely on.

    Fields the specification leaves out take their schema defaults; the payroll run is charged
    to department ENG-001 so the SALARY budget of 2024-Q1 has an actual. Every call builds new
    records, which the caller may change.
    """
    budget = {
        "department_id": "ENG-001",
        "category": "SALARY",
        "period": "2024-Q1",
        "amount": Decimal("500000.00"),
    }
    payroll = {
        "payroll_id": "PAY-2024-003",
        "pay_period_start": dt.date(2024, 3, 1),
        "pay_period_end": dt.date(2024, 3, 15),
        "total_gross_pay": Decimal("125000.00"),
        "currency": "USD",
        "department_id": "ENG-001",
        "department_lines": [],
    }
    goods = {
        "purchase_order_id": "PO-2024-001234",
        "vendor_id": "VEN-001",
        "total_amount": Decimal("15750.00"),
        "currency": "USD",
        "payment_terms_days": 30,
        "business_date": None,
    }
    sales = {
        "sales_order_id": "SO-2024-001234",
        "customer_id": "CUS-001",
        "total_amount": Decimal("25000.00"),
        "currency": "USD",
        "business_date": None,
    }
    production = {
        "production_order_id": "PO-MFG-2024-001",
        "product_code": "WIDGET-A",
        "quantity_produced": 1000,
        "total_cost": Decimal("45000.00"),
        "currency": "USD",
        "business_date": None,
    }
    time_logged = {
        "project_id": "PROJ-CLIENT-A-001",
        "employee_id": "EMP-001",
        "hours": Decimal("8.00"),
        "billable_amount": Decimal("1125.00"),
        "currency": "USD",
        "business_date": None,
    }
    credit_limit = {"customer_id": "CUS-001", "credit_limit": Decimal("100000.00")}
    return [
        _sample("fin.budget.set", "2024-03-01T09:00:00Z", budget, "fin-demo"),
        _sample("fin.credit_limit.set", "2024-03-01T09:05:00Z", credit_limit, "fin-demo"),
        _sample("hr.payroll.processed", "2024-03-15T10:00:00Z", payroll, "hr-service"),
        _sample("scm.goods.received", "2024-03-15T14:30:00Z", goods),
        _sample("crm.sales_order.completed", "2024-03-15T11:00:00Z", sales),
        _sample("mfg.production_order.completed", "2024-03-15T18:00:00Z", production),
        _sample("pm.time.logged", "2024-03-15T17:00:00Z", time_logged),
    ]


def _sample(event_type: str, moment: str, data: dict[str, Any], source: str = "") -> dict[str, Any]:
    return envelope(event_type, SAMPLE_EVENT_IDS[event_type], utc(moment), data, source)


def specification_sample(event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
    """A new copy of the specification's sample of ``event_type`` with its own ``event_id`` and
    the data fields in ``data`` changed (for tests and hand-built bad records)."""
    (record,) = (sample for sample in specification_samples() if sample["event_type"] == event_type)
    record["event_id"] = event_id
    record["data"].update(data)
    return record


# --- synthetic traffic -----------------------------------------------------------------------


def synthetic_events(seed: int, count: int | None = None) -> Iterator[dict[str, Any]]:
    """A deterministic, realistic stream of events and commands; endless when `count` is None.

    Keys are skewed (a few customers, vendors, projects and products get most traffic);
    timestamps increase from 2024-01-01; every quarter starts with SALARY budgets for each
    department, every customer gets a credit limit before its first order, and payments settle
    invoices and payables that earlier events opened (oldest first).
    """
    assert count is None or count >= 0
    records = _SyntheticWorld(seed).records()
    return records if count is None else itertools.islice(records, count)


class _Population:
    """Entity ids drawn with a Zipf-like skew: rank k has weight 1 / k**ZIPF_EXPONENT."""

    def __init__(self, prefix: str, size: int, width: int = 3) -> None:
        self.ids = tuple(f"{prefix}-{number:0{width}d}" for number in range(1, size + 1))
        weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, size + 1)]
        self.cumulative_weights = tuple(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.ids, cum_weights=self.cumulative_weights)[0]


class _SyntheticWorld:
    """The state a believable stream needs: open invoices and payables, limits, budgets."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = SYNTHETIC_START
        self.customers = _Population("CUS", CUSTOMER_COUNT)
        self.vendors = _Population("VEN", VENDOR_COUNT)
        self.projects = _Population("PROJ", PROJECT_COUNT, width=4)
        self.products = _Population("PRD", PRODUCT_COUNT)
        self.employees = _Population("EMP", EMPLOYEE_COUNT)
        self.open_receivables: deque[tuple[str, int]] = deque()  # (customer, cents)
        self.open_payables: deque[tuple[str, int]] = deque()  # (vendor, cents)
        self.compensable: list[str] = []
        self.customers_with_limit: set[str] = set()
        self.budgeted_quarters: set[str] = set()
        self.sequence = itertools.count(1)
        self.event_types = tuple(EVENT_WEIGHTS)
        self.event_cumulative_weights = tuple(itertools.accumulate(EVENT_WEIGHTS.values()))

    def records(self) -> Iterator[dict[str, Any]]:
        while True:
            self.now += dt.timedelta(milliseconds=self.rng.randint(1, EVENT_GAP_MS_MAX))
            quarter = _quarter_of(self.now.date())
            if quarter not in self.budgeted_quarters:
                self.budgeted_quarters.add(quarter)
                yield from self.budgets(quarter)
            yield from self.step()

    def step(self) -> Iterator[dict[str, Any]]:
        draw = self.rng.randrange(1000)
        if draw < CUSTOMER_PAYMENT_PER_MILLE and self.open_receivables:
            yield self.customer_payment()
            return
        draw -= CUSTOMER_PAYMENT_PER_MILLE
        if draw < VENDOR_PAYMENT_PER_MILLE and self.open_payables:
            yield self.vendor_payment()
            return
        draw -= VENDOR_PAYMENT_PER_MILLE
        if draw < COMPENSATION_PER_MILLE and self.compensable:
            yield self.compensation()
            return
        weights = self.event_cumulative_weights
        event_type = self.rng.choices(self.event_types, cum_weights=weights)[0]
        if event_type == "hr.payroll.processed":
            yield self.payroll()
        elif event_type == "scm.goods.received":
            yield self.goods_received()
        elif event_type == "crm.sales_order.completed":
            yield from self.sales_order()
        elif event_type == "mfg.production_order.completed":
            yield self.production_order()
        else:
            yield self.time_logged()

    # -- helpers --

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def number(self) -> int:
        return next(self.sequence)

    def record(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        source = SOURCES[event_type.split(".", maxsplit=1)[0]]
        return envelope(event_type, self.uuid(), self.now, data, source)

    def amount_cents(self, tiers: Sequence[tuple[int, int, int]]) -> int:
        """Cents from one of (weight, low dollars, high dollars) tiers: mostly small, some big."""
        weights = [weight for weight, _, _ in tiers]
        _, low, high = self.rng.choices(tiers, weights=weights)[0]
        return self.rng.randint(low * 100, high * 100)

    def business_date(self) -> dt.date | None:
        """Usually unstated (the timestamp's date); sometimes a day or two back."""
        if self.rng.randrange(10) != 0:
            return None
        stated = self.now.date() - dt.timedelta(days=self.rng.randint(0, 2))
        return max(stated, SYNTHETIC_START.date())

    # -- FIN commands --

    def budgets(self, quarter: str) -> Iterator[dict[str, Any]]:
        for department in DEPARTMENTS:
            yield self.record(
                "fin.budget.set",
                {
                    "department_id": department,
                    "category": "SALARY",
                    "period": quarter,
                    "amount": money_from_cents(self.rng.randint(20_000, 60_000) * 100_000),
                },
            )

    def credit_limit(self, customer: str) -> dict[str, Any]:
        self.customers_with_limit.add(customer)
        limit_cents = self.rng.choice((50_000, 100_000, 250_000, 500_000, 1_000_000)) * 100
        return self.record(
            "fin.credit_limit.set",
            {"customer_id": customer, "credit_limit": money_from_cents(limit_cents)},
        )

    def customer_payment(self) -> dict[str, Any]:
        customer, cents = self.open_receivables.popleft()
        paid = cents if self.rng.randrange(10) else cents // 2
        if paid < cents:
            self.open_receivables.append((customer, cents - paid))
        return self.record(
            "fin.customer_payment.received",
            {
                "customer_id": customer,
                "payment_id": f"CP-{self.number():07d}",
                "amount": money_from_cents(paid),
                "currency": "USD",
                "business_date": None,
            },
        )

    def vendor_payment(self) -> dict[str, Any]:
        vendor, cents = self.open_payables.popleft()
        paid = cents if self.rng.randrange(10) else cents // 2
        if paid < cents:
            self.open_payables.append((vendor, cents - paid))
        return self.record(
            "fin.vendor_payment.made",
            {
                "vendor_id": vendor,
                "payment_id": f"VP-{self.number():07d}",
                "amount": money_from_cents(paid),
                "currency": "USD",
                "business_date": None,
            },
        )

    def compensation(self) -> dict[str, Any]:
        target = self.compensable.pop(self.rng.randrange(len(self.compensable)))
        return self.record(
            "fin.compensation.requested",
            {"target_event_id": target, "reason": self.rng.choice(COMPENSATION_REASONS)},
        )

    # -- source events --

    def payroll(self) -> dict[str, Any]:
        today = self.now.date()
        if today.day <= 15:
            start, end = today.replace(day=1), today.replace(day=15)
        else:
            start, end = today.replace(day=16), _last_day_of_month(today)
        split = self.rng.randrange(2) == 0
        departments = self.rng.sample(DEPARTMENTS, self.rng.randint(2, 3)) if split else []
        amounts = [money_from_cents(self.rng.randint(5_000, 60_000) * 100) for _ in departments]
        lines = [
            {"department_id": department, "category": "SALARY", "amount": amount}
            for department, amount in zip(departments, amounts, strict=True)
        ]
        if lines:
            total = sum(amounts, Decimal("0.00"))
        else:
            total = money_from_cents(self.rng.randint(5_000, 60_000) * 100)
        return self.record(
            "hr.payroll.processed",
            {
                "payroll_id": f"PAY-{today.year}-{self.number():06d}",
                "pay_period_start": start,
                "pay_period_end": end,
                "total_gross_pay": total,
                "currency": "USD",
                "department_id": None if split else self.rng.choice(DEPARTMENTS),
                "department_lines": lines,
            },
        )

    def goods_received(self) -> dict[str, Any]:
        vendor = self.vendors.draw(self.rng)
        cents = self.amount_cents(((70, 200, 5_000), (25, 5_000, 50_000), (5, 50_000, 400_000)))
        self.open_payables.append((vendor, cents))
        return self.record(
            "scm.goods.received",
            {
                "purchase_order_id": f"PO-{self.now.year}-{self.number():07d}",
                "vendor_id": vendor,
                "total_amount": money_from_cents(cents),
                "currency": "USD",
                "payment_terms_days": self.rng.choice((15, 30, 30, 30, 45, 60)),
                "business_date": self.business_date(),
            },
        )

    def sales_order(self) -> Iterator[dict[str, Any]]:
        customer = self.customers.draw(self.rng)
        if customer not in self.customers_with_limit:
            yield self.credit_limit(customer)
        cents = self.amount_cents(((70, 100, 5_000), (25, 5_000, 50_000), (5, 50_000, 250_000)))
        self.open_receivables.append((customer, cents))
        yield self.record(
            "crm.sales_order.completed",
            {
                "sales_order_id": f"SO-{self.now.year}-{self.number():07d}",
                "customer_id": customer,
                "total_amount": money_from_cents(cents),
                "currency": "USD",
                "business_date": self.business_date(),
            },
        )

    def production_order(self) -> dict[str, Any]:
        quantity = self.rng.randint(10, 5_000)
        unit_cost_cents = self.rng.randint(50, 20_000)
        record = self.record(
            "mfg.production_order.completed",
            {
                "production_order_id": f"MO-{self.now.year}-{self.number():07d}",
                "product_code": self.products.draw(self.rng),
                "quantity_produced": quantity,
                "total_cost": money_from_cents(quantity * unit_cost_cents),
                "currency": "USD",
                "business_date": self.business_date(),
            },
        )
        self.remember_compensable(record["event_id"])
        return record

    def time_logged(self) -> dict[str, Any]:
        quarter_hours = self.rng.randint(1, 40)  # 0.25 .. 10.00 hours
        hourly_rate_dollars = self.rng.choice((75, 95, 120, 140, 180, 225))
        record = self.record(
            "pm.time.logged",
            {
                "project_id": self.projects.draw(self.rng),
                "employee_id": self.employees.draw(self.rng),
                "hours": money_from_cents(quarter_hours * 25),
                "billable_amount": money_from_cents(quarter_hours * 25 * hourly_rate_dollars),
                "currency": "USD",
                "business_date": self.business_date(),
            },
        )
        self.remember_compensable(record["event_id"])
        return record

    def remember_compensable(self, event_id: str) -> None:
        self.compensable.append(event_id)
        if len(self.compensable) > COMPENSABLE_MEMORY:
            self.compensable.pop(0)


def _quarter_of(day: dt.date) -> str:
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def _last_day_of_month(day: dt.date) -> dt.date:
    first_of_next = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first_of_next - dt.timedelta(days=1)
