"""Master data FIN owns that changes by command: departments (issue 16, item 2).

A department is registered, renamed and retired by ``fin.department.changed`` commands. The
posting stage turns each command it posts into a *change* on the master-data topic, keyed by
``department|<id>|<event id>`` (so compaction keeps every change, not only the last one
written); every worker reads that topic into a ``DepartmentRegister``, which validation asks.
Changes of one department may reach the topic in any order (their commands travel through
different by-event-id partitions), so the register folds them in the order of their command
timestamps (event id breaking ties), never in the order of arrival: every worker ends with the
same state whatever it read first.

The register is seeded from the chart (``[departments] known``): those are active from the
start (a change of theirs, a rename or a retirement, applies over the seed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

DepartmentAction = Literal["REGISTER", "RENAME", "RETIRE"]
DEPARTMENT_ACTIONS: tuple[DepartmentAction, ...] = ("REGISTER", "RENAME", "RETIRE")
SEED_SOURCE = "config"


@dataclass(frozen=True)
class DepartmentChange:
    """One posted command about a department, as the master-data topic carries it."""

    department_id: str
    action: DepartmentAction
    name: str
    requested_by: str
    reason: str
    at_ms: int  # the command's timestamp: the order changes are folded in
    event_id: str

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_ms, self.event_id)

    @property
    def key(self) -> str:
        return f"department|{self.department_id}|{self.event_id}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": "department",
            "department_id": self.department_id,
            "action": self.action,
            "name": self.name,
            "requested_by": self.requested_by,
            "reason": self.reason,
            "at_ms": self.at_ms,
            "event_id": self.event_id,
        }

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> DepartmentChange:
        action = str(encoded["action"])
        if action not in DEPARTMENT_ACTIONS:
            raise ValueError(f"unknown department action {action!r}")
        return cls(
            department_id=str(encoded["department_id"]),
            action=action,
            name=str(encoded.get("name", "")),
            requested_by=str(encoded.get("requested_by", "")),
            reason=str(encoded.get("reason", "")),
            at_ms=int(encoded["at_ms"]),
            event_id=str(encoded["event_id"]),
        )


@dataclass(frozen=True)
class Department:
    """A department's state after every change known here."""

    department_id: str
    name: str
    active: bool
    changed_by: str
    reason: str
    changed_at_ms: int
    changes: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "department_id": self.department_id,
            "name": self.name,
            "status": "active" if self.active else "retired",
            "changed_by": self.changed_by,
            "reason": self.reason,
            "changed_at_ms": self.changed_at_ms,
            "changes": self.changes,
        }


def fold(
    department_id: str, seeded: bool, changes: Iterable[DepartmentChange]
) -> Department | None:
    """The department after ``changes`` in their order; None if never registered.

    REGISTER makes it active (a name given replaces the old one); RENAME changes the name of a
    department that exists (retired or not) and leaves its status; RETIRE makes it inactive.
    """
    state: Department | None = (
        Department(department_id, department_id, True, SEED_SOURCE, "", 0, 0) if seeded else None
    )
    for change in sorted(changes, key=lambda c: c.order):
        count = 1 if state is None else state.changes + 1
        if change.action == "REGISTER":
            name = change.name or (state.name if state is not None else department_id)
            state = Department(
                department_id, name, True, change.requested_by, change.reason, change.at_ms, count
            )
        elif state is None:
            continue  # a rename or retirement of a department never registered: nothing
        elif change.action == "RENAME":
            state = Department(
                department_id,
                change.name or state.name,
                state.active,
                change.requested_by,
                change.reason,
                change.at_ms,
                count,
            )
        else:
            state = Department(
                department_id,
                state.name,
                False,
                change.requested_by,
                change.reason,
                change.at_ms,
                count,
            )
    return state


class DepartmentRegister:
    """Every department's changes and its current state; seeded from the chart.

    Mutated only by ``apply`` (the worker's reader of the master-data topic, one task); read by
    validation on the same event loop, so no lock is needed.
    """

    def __init__(self, seed: Iterable[str] = ()) -> None:
        self._seed = frozenset(seed)
        self._changes: dict[str, dict[str, DepartmentChange]] = {}
        self._state: dict[str, Department] = {}
        for department_id in self._seed:
            state = fold(department_id, True, ())
            assert state is not None
            self._state[department_id] = state

    def apply(self, change: DepartmentChange) -> bool:
        """Take one change in (a repeat of a known one changes nothing); True if it was new."""
        known = self._changes.setdefault(change.department_id, {})
        if change.event_id in known:
            return False
        known[change.event_id] = change
        state = fold(change.department_id, change.department_id in self._seed, known.values())
        if state is None:
            self._state.pop(change.department_id, None)
        else:
            self._state[change.department_id] = state
        return True

    def is_active(self, department_id: str) -> bool:
        state = self._state.get(department_id)
        return state is not None and state.active

    def get(self, department_id: str) -> Department | None:
        return self._state.get(department_id)

    def all(self) -> list[Department]:
        return [self._state[key] for key in sorted(self._state)]


def change_of(
    department_id: str,
    action: str,
    *,
    name: str,
    requested_by: str,
    reason: str,
    at_ms: int,
    event_id: str,
) -> DepartmentChange:
    """The change a posted ``fin.department.changed`` command makes."""
    if action not in DEPARTMENT_ACTIONS:
        raise ValueError(f"unknown department action {action!r}")
    return DepartmentChange(
        department_id=department_id,
        action=action,
        name=name,
        requested_by=requested_by,
        reason=reason,
        at_ms=at_ms,
        event_id=event_id,
    )


# --- accounting periods (issue 16, item 1) ---------------------------------------------------

PeriodAction = Literal["CLOSE", "REOPEN"]
PERIOD_ACTIONS: tuple[PeriodAction, ...] = ("CLOSE", "REOPEN")
CLOSED_POLICIES = ("late", "reject")
MONTHS_AHEAD_MAX = 1200  # a hundred years of closed months ahead would be a mistake, not a plan


@dataclass(frozen=True)
class PeriodChange:
    """A month closed or re-opened by command, as the master-data topic carries it."""

    period: str  # a month, 2024-03
    action: PeriodAction
    requested_by: str
    reason: str
    at_ms: int
    event_id: str

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_ms, self.event_id)

    @property
    def key(self) -> str:
        return f"period|{self.period}|{self.event_id}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "kind": "period",
            "period": self.period,
            "action": self.action,
            "requested_by": self.requested_by,
            "reason": self.reason,
            "at_ms": self.at_ms,
            "event_id": self.event_id,
        }

    @classmethod
    def from_json_dict(cls, encoded: Mapping[str, Any]) -> PeriodChange:
        action = str(encoded["action"])
        if action not in PERIOD_ACTIONS:
            raise ValueError(f"unknown period action {action!r}")
        return cls(
            period=str(encoded["period"]),
            action=action,
            requested_by=str(encoded.get("requested_by", "")),
            reason=str(encoded.get("reason", "")),
            at_ms=int(encoded["at_ms"]),
            event_id=str(encoded["event_id"]),
        )


def _month_parts(month: str) -> tuple[int, int]:
    year, number = month.split("-")
    return int(year), int(number)


def next_month(month: str) -> str:
    year, number = _month_parts(month)
    return f"{year + number // 12}-{number % 12 + 1:02d}"


def quarter_end_of(month: str) -> str:
    """The last month of ``month``'s quarter (2024-02 -> 2024-03)."""
    year, number = _month_parts(month)
    return f"{year}-{(number - 1) // 3 * 3 + 3:02d}"


def quarter_of_month(month: str) -> str:
    year, number = _month_parts(month)
    return f"{year}-Q{(number - 1) // 3 + 1}"


class PeriodRegister:
    """Which months are closed, folded from their changes in command order (like departments).

    A month is closed when its last change closed it; closing a quarter's last month closes the
    quarter, and with it every month of that quarter (``is_closed``), since an entry in any of
    them would change the quarter's totals.
    """

    def __init__(self) -> None:
        self._changes: dict[str, dict[str, PeriodChange]] = {}
        self._last: dict[str, PeriodChange] = {}

    def apply(self, change: PeriodChange) -> bool:
        known = self._changes.setdefault(change.period, {})
        if change.event_id in known:
            return False
        known[change.event_id] = change
        self._last[change.period] = max(known.values(), key=lambda c: c.order)
        return True

    def _closed_itself(self, month: str) -> bool:
        last = self._last.get(month)
        return last is not None and last.action == "CLOSE"

    def is_closed(self, month: str) -> bool:
        """Closed by its own close, or by the close of its quarter's last month."""
        return self._closed_itself(month) or self._closed_itself(quarter_end_of(month))

    def is_quarter_closed(self, month: str) -> bool:
        return self._closed_itself(quarter_end_of(month))

    def first_open_from(self, month: str) -> str:
        """``month`` if open, else the first open month after it."""
        candidate = month
        for _ in range(MONTHS_AHEAD_MAX):
            if not self.is_closed(candidate):
                return candidate
            candidate = next_month(candidate)
        raise ValueError(f"no open period within {MONTHS_AHEAD_MAX} months after {month}")

    def state(self, month: str) -> dict[str, Any]:
        last = self._last.get(month)
        return {
            "period": month,
            "closed": self.is_closed(month),
            "closed_by_quarter": not self._closed_itself(month) and self.is_closed(month),
            "quarter": quarter_of_month(month),
            "quarter_closed": self.is_quarter_closed(month),
            "last_change": None
            if last is None
            else {
                "action": last.action,
                "requested_by": last.requested_by,
                "reason": last.reason,
                "at_ms": last.at_ms,
                "event_id": last.event_id,
            },
        }

    def all(self) -> list[dict[str, Any]]:
        return [self.state(month) for month in sorted(self._last)]
