"""Issue 4, done when: a mixed stream through real Kafka and two workers ends equal to the
reference ledger, read the way clients read it — over REST, from either worker.

One run (module fixture) publishes a few thousand seeded synthetic events spread over nine
months, with duplicates (re-sent unchanged, and re-sent under another key so they land on
another partition) and hand-built bad records. Once that is fully posted it publishes the
compensations, copies and repeats of some of them, and conflicting copies of some events, so
no compensation races its target. Each test then checks one face of the result against
``tests/unit/ledger/reference.py``, which computes the books from the raw records by itself.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from schemas.catalog import SchemaCatalog
from schemas.codec import Decoded, Decoder, Encoder
from schemas.registry import RegistryClient, SchemaIds
from streams.deadletter import HEADER_EVENT_ID, HEADER_REASON, header_map
from tests.fixtures import Deployment, Infra, Worker
from tests.integration.ledger_helpers import (
    Answer,
    Cluster,
    Publisher,
    Request,
    Scenario,
    as_decimal_pairs,
    ask_every_worker,
    build_scenario,
    metric_by_label,
    metric_sum,
    months_in,
    read_topic,
    register_schemas,
    wait_for_stable_group,
    wait_until_settled,
    without_clock,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SEED = 4
SYNTHETIC_EVENTS = 4000
WORKERS = 2
PREFIX = "/api/v1/fin"
AR_CONTROL = "1100"
AP_CONTROL = "2000"
ENTRIES_READ_BY_ID = 60
ZERO = Decimal("0.00")


@dataclass
class Observed:
    """What the run left behind, read once while both workers were still up."""

    scenario: Scenario
    workers: list[Worker]
    answers: dict[tuple[str, Any], tuple[Answer, ...]]
    entries: list[dict[str, Any]]  # every record of fin.ledger.postings, decoded, copies kept
    dead_letters: list[ConsumerRecord]
    metrics: dict[str, int]
    rejections: Counter[str]
    seconds: dict[str, float]

    def of_kind(self, kind: str) -> dict[Any, tuple[Answer, ...]]:
        return {key: answers for (k, key), answers in self.answers.items() if k == kind}


def requests_for(scenario: Scenario, entry_ids: list[str]) -> dict[tuple[str, Any], Request]:
    reference = scenario.reference
    wanted: dict[tuple[str, Any], Request] = {}
    for key in set(reference.budgets) | set(reference.budget_actuals):
        department, category, period = key.split("|")
        wanted[("budget", key)] = Request(
            f"{PREFIX}/budgets/department/{department}",
            {"category": category, "period": period},
        )
    for customer in set(reference.exposures) | set(reference.credit_limits):
        wanted[("customer", customer)] = Request(f"{PREFIX}/ar/customers/{customer}/credit-status")
    for vendor in set(reference.vendor_open) | set(reference.vendor_paid):
        wanted[("vendor", vendor)] = Request(f"{PREFIX}/ap/vendors/{vendor}/payment-status")
    for period in reference.periods():
        wanted[("period", period)] = Request(f"{PREFIX}/ledger/trial-balance", {"period": period})
    for month in months_in(reference.periods()):
        for account in (AR_CONTROL, AP_CONTROL):
            wanted[("account", (account, month))] = Request(
                f"{PREFIX}/ledger/accounts/{account}", {"period": month}
            )
    for entry_id in entry_ids:
        wanted[("entry", entry_id)] = Request(f"{PREFIX}/ledger/entries/{entry_id}")
    wanted[("integrity", "all")] = Request(f"{PREFIX}/ledger/integrity")
    # Keys no event ever touched: every worker must say so, not invent an empty row.
    never = {
        ("budget", "ENG-001|SALARY|2024-12"): Request(
            f"{PREFIX}/budgets/department/ENG-001", {"category": "SALARY", "period": "2024-12"}
        ),
        ("budget", "HR-001|TRAVEL|2024-Q2"): Request(
            f"{PREFIX}/budgets/department/HR-001", {"category": "TRAVEL", "period": "2024-Q2"}
        ),
        ("customer", "CUS-NEVER"): Request(f"{PREFIX}/ar/customers/CUS-NEVER/credit-status"),
        ("vendor", "VEN-NEVER"): Request(f"{PREFIX}/ap/vendors/VEN-NEVER/payment-status"),
        ("period", "2023-12"): Request(f"{PREFIX}/ledger/trial-balance", {"period": "2023-12"}),
    }
    assert not set(never) & set(wanted), "a probe for an absent key names a booked one"
    return {**wanted, **{("never", key): request for key, request in never.items()}}


def decode_entries(infra: Infra, records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    client = RegistryClient(infra.registry_url)
    decoder = Decoder(SchemaCatalog.load(), client.get_schema)
    try:
        decoded = [decoder.decode("fin.ledger.postings", record.value) for record in records]
    finally:
        client.close()
    assert all(isinstance(entry, Decoded) for entry in decoded), decoded
    return [entry.record for entry in decoded if isinstance(entry, Decoded)]


@pytest.fixture(scope="module")
def run(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    seconds: dict[str, float] = {}
    started = time.monotonic()
    root: Path = tmp_path_factory.mktemp("ledger-end-to-end")
    deployment = Deployment(infra=infra, root=root)
    deployment.create_topics()
    register_schemas(deployment)
    cluster = Cluster(deployment)
    publisher = Publisher(deployment)
    client = RegistryClient(infra.registry_url)
    try:
        workers = [deployment.add_worker() for _ in range(WORKERS)]
        for worker in workers:
            worker.wait_ready()
        wait_for_stable_group(cluster, WORKERS, timeout_s=120)
        for worker in workers:
            worker.wait_ready()
        seconds["workers ready"] = time.monotonic() - started

        catalog = SchemaCatalog.load()
        schema_ids = SchemaIds(catalog, client, topic_prefix=deployment.prefix)
        encoder = Encoder(catalog, schema_ids)
        scenario = build_scenario(
            seed=SEED,
            count=SYNTHETIC_EVENTS,
            partitions=deployment.partitions,
            encode=encoder.encode,
            schema_id_for=schema_ids,
        )

        mark = time.monotonic()
        publisher.publish(scenario.main)
        wait_until_settled(
            cluster,
            workers,
            consumed=len(scenario.main),
            entries=scenario.reference_main.entries,
            timeout_s=150,
        )
        seconds["main stream"] = time.monotonic() - mark

        mark = time.monotonic()
        publisher.publish(scenario.follow_up)
        wait_until_settled(
            cluster,
            workers,
            consumed=scenario.sent,
            entries=scenario.reference.entries,
            timeout_s=60,
        )
        seconds["follow-up"] = time.monotonic() - mark

        mark = time.monotonic()
        ledger_records = read_topic(cluster, "fin.ledger.postings")
        entries = decode_entries(infra, ledger_records)
        sample = random.Random(SEED).sample(entries, ENTRIES_READ_BY_ID)
        entry_ids = sorted(
            {entry["entry_id"] for entry in sample}
            | {entry["entry_id"] for entry in entries if entry["reverses_entry_id"] is not None}
        )
        answers = ask_every_worker(workers, requests_for(scenario, entry_ids))
        metrics = {
            name: metric_sum(workers, f"fin_{name}_total")
            for name in (
                "events_consumed",
                "events_posted",
                "events_duplicate",
                "events_rejected",
                "dead_letters",
                "replayed_records",
            )
        }
        observed = Observed(
            scenario=scenario,
            workers=workers,
            answers=answers,
            entries=entries,
            dead_letters=read_topic(cluster, "fin.dlq"),
            metrics=metrics,
            rejections=metric_by_label(workers, "fin_dead_letters_total", "reason"),
            seconds=seconds,
        )
        seconds["reading"] = time.monotonic() - mark
        print("ledger end-to-end timings (s):", {k: round(v, 1) for k, v in seconds.items()})
        yield observed
    finally:
        deployment.stop_all()
        publisher.close()
        cluster.close()
        client.close()


def one_answer(answers: tuple[Answer, ...], status: int = 200) -> Answer:
    """The answer both workers gave; they must agree (each routes the key to its owner)."""
    first = answers[0]
    assert all(answer.status == status for answer in answers), answers
    assert all(without_clock(answer.body) == without_clock(first.body) for answer in answers), (
        answers
    )
    return first


def agreed(run: Observed, kind: str) -> dict[Any, Answer]:
    """Per key of ``kind``, the one answer every worker gave."""
    return {key: one_answer(answers) for key, answers in run.of_kind(kind).items()}


# --- REST ----------------------------------------------------------------------------------


def test_both_workers_answer_every_key_alike_from_the_worker_that_owns_it(run: Observed) -> None:
    owners: Counter[str] = Counter()
    for (kind, key), answers in run.answers.items():
        statuses = {answer.status for answer in answers}
        assert len(statuses) == 1, (kind, key, answers)
        one_answer(answers, statuses.pop())
        body = answers[0].body
        if isinstance(body, Mapping) and "freshness" in body:
            owners[body["freshness"]["worker"]] += 1
    # Both workers own some keys, so half the reads above really were forwarded.
    assert set(owners) == {worker.url for worker in run.workers}, owners


def test_every_budget_row_has_the_reference_budget_and_actual(run: Observed) -> None:
    reference = run.scenario.reference
    found = {
        key: (answer.money("budget"), answer.money("actual"))
        for key, answer in agreed(run, "budget").items()
    }
    expected = {
        key: (reference.budgets.get(key), reference.budget_actuals.get(key, ZERO))
        for key in set(reference.budgets) | set(reference.budget_actuals)
    }
    assert found == expected
    assert len(found) > 50
    assert any(budget is None for budget, _ in found.values())
    assert any(budget is not None and actual == 0 for budget, actual in found.values())


def test_every_customer_has_the_reference_credit_limit_and_exposure(run: Observed) -> None:
    reference = run.scenario.reference
    found = {
        customer: (answer.money("limit"), answer.money("exposure"))
        for customer, answer in agreed(run, "customer").items()
    }
    expected = {
        customer: (reference.credit_limits.get(customer), reference.exposures.get(customer, ZERO))
        for customer in set(reference.exposures) | set(reference.credit_limits)
    }
    assert found == expected
    assert len(found) > 100


def test_every_vendor_has_the_reference_open_and_paid_totals(run: Observed) -> None:
    reference = run.scenario.reference
    found = {
        vendor: (answer.money("open"), answer.money("paid"))
        for vendor, answer in agreed(run, "vendor").items()
    }
    expected = {
        vendor: (reference.vendor_open.get(vendor, ZERO), reference.vendor_paid.get(vendor, ZERO))
        for vendor in set(reference.vendor_open) | set(reference.vendor_paid)
    }
    assert found == expected
    assert len(found) > 50


def test_every_month_and_quarter_has_the_reference_trial_balance_netting_to_zero(
    run: Observed,
) -> None:
    reference = run.scenario.reference
    periods = agreed(run, "period")
    found = {period: as_decimal_pairs(answer.field("lines")) for period, answer in periods.items()}
    assert found == {period: reference.trial_balance(period) for period in reference.periods()}
    entry_counts = {period: answer.field("entry_count") for period, answer in periods.items()}
    assert entry_counts == dict(reference.period_entries)
    for period, answer in periods.items():
        lines = answer.field("lines")
        assert answer.money("total_debit") == answer.money("total_credit"), period
        assert answer.field("balanced") is True, period
        assert sum((Decimal(line["balance"]) for line in lines), ZERO) == 0, period
    months = months_in(periods)
    assert len(months) >= 9 and len(set(periods) - set(months)) >= 3


def test_keys_no_event_touched_are_not_found_on_either_worker(run: Observed) -> None:
    never = run.of_kind("never")
    assert len(never) == 5
    for key, answers in never.items():
        assert one_answer(answers, status=404).field("status") == 404, key


def test_the_ar_and_ap_sub_ledgers_equal_their_control_accounts(run: Observed) -> None:
    reference = run.scenario.reference
    control = {AR_CONTROL: ZERO, AP_CONTROL: ZERO}
    for (account, month), answers in run.of_kind("account").items():
        if answers[0].status == 404:
            one_answer(answers, status=404)
            assert (month, account) not in reference.turnover, (account, month)
            continue
        answer = one_answer(answers)
        balance = answer.money("balance")
        assert balance is not None
        assert balance == answer.money("debit") - answer.money("credit")  # type: ignore[operator]
        control[account] += balance
    exposures = sum((a.money("exposure") or ZERO for a in agreed(run, "customer").values()), ZERO)
    vendor_open = sum((a.money("open") or ZERO for a in agreed(run, "vendor").values()), ZERO)
    assert exposures == control[AR_CONTROL] == sum(reference.exposures.values(), ZERO)
    # Accounts payable is a liability: its debit-normal balance is minus what is owed.
    assert vendor_open == -control[AP_CONTROL] == sum(reference.vendor_open.values(), ZERO)
    assert exposures > 0 and vendor_open > 0


# --- the ledger topic ----------------------------------------------------------------------


def test_the_ledger_topic_holds_one_balanced_entry_per_reference_posting(run: Observed) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    for entry in run.entries:
        by_id.setdefault(entry["entry_id"], entry)
    reemitted = len(run.entries) - len(by_id)
    assert reemitted == 0, f"{reemitted} entries re-emitted in a run without crash or rebalance"
    assert len(by_id) == run.scenario.reference.entries
    balances: dict[tuple[str, str], Decimal] = {}
    for entry in by_id.values():
        debits = sum((line["debit"] for line in entry["lines"]), ZERO)
        credits = sum((line["credit"] for line in entry["lines"]), ZERO)
        assert debits == credits > 0, entry
        for line in entry["lines"]:
            key = (entry["period"], line["account"])
            balances[key] = balances.get(key, ZERO) + line["debit"] - line["credit"]
    nonzero = {key: value for key, value in balances.items() if value != 0}
    assert nonzero == run.scenario.reference.account_balances()
    originals = {e["source_event_id"] for e in by_id.values() if e["reverses_entry_id"] is None}
    assert originals == run.scenario.posting_event_ids


def test_every_reversal_reverses_the_entry_of_its_compensation_target(run: Observed) -> None:
    by_id = {entry["entry_id"]: entry for entry in run.entries}
    reversals = [entry for entry in by_id.values() if entry["reverses_entry_id"] is not None]
    assert {r["source_event_id"] for r in reversals} == set(run.scenario.compensations)
    for reversal in reversals:
        original = by_id[reversal["reverses_entry_id"]]
        assert (
            original["source_event_id"] == run.scenario.compensations[reversal["source_event_id"]]
        )
        assert reversal["period"] == original["period"]
        swapped = [(line["account"], line["credit"], line["debit"]) for line in original["lines"]]
        assert [(line["account"], line["debit"], line["credit"]) for line in reversal["lines"]] == (
            swapped
        )


def test_entries_read_by_id_from_either_worker_equal_the_ledger_topic(run: Observed) -> None:
    by_id = {entry["entry_id"]: entry for entry in run.entries}
    read = run.of_kind("entry")
    assert len(read) >= ENTRIES_READ_BY_ID
    for entry_id, answers in read.items():
        body = one_answer(answers).body
        expected = by_id[entry_id]
        assert body["source_event_id"] == expected["source_event_id"]
        assert body["reverses_entry_id"] == expected["reverses_entry_id"]
        assert [
            (line["account"], Decimal(line["debit"]), Decimal(line["credit"]))
            for line in body["lines"]
        ] == [(line["account"], line["debit"], line["credit"]) for line in expected["lines"]]


# --- outcomes ------------------------------------------------------------------------------


def test_every_bad_record_and_refused_command_is_dead_lettered_once_with_its_reason(
    run: Observed,
) -> None:
    found: Counter[tuple[bytes | None, bytes | None, str]] = Counter(
        (record.key, record.value, header_map(record.headers)[HEADER_REASON])
        for record in run.dead_letters
    )
    expected = Counter((d.key, d.value, d.reason) for d in run.scenario.dead_letters)
    assert found == expected
    assert run.rejections == Counter(d.reason for d in run.scenario.dead_letters)
    # A refusal by the posting agent names the event it refused.
    refused = {
        (record.key, record.value): header_map(record.headers).get(HEADER_EVENT_ID)
        for record in run.dead_letters
    }
    made_up = [d for d in run.scenario.dead_letters if d.event_id is not None]
    assert len(made_up) == 8
    assert {(d.key, d.value): d.event_id for d in made_up}.items() <= refused.items()


def test_the_integrity_query_of_either_worker_finds_the_books_whole(run: Observed) -> None:
    report = agreed(run, "integrity")["all"]
    scenario = run.scenario
    assert report.field("errors") == []
    assert report.field("ok") is True
    assert report.field("workers") == len(run.workers)
    assert report.field("periods_checked") == len(scenario.reference.periods())
    assert report.field("counts") == {
        "events_in": scenario.sent,
        "postings": scenario.posted,
        "rejections": len(scenario.dead_letters),
        "duplicates": scenario.duplicates,
    }


def test_records_in_equal_postings_plus_dead_letters_plus_duplicates(run: Observed) -> None:
    metrics = run.metrics
    scenario = run.scenario
    assert metrics["events_consumed"] == scenario.sent
    assert metrics["events_posted"] == scenario.posted
    assert metrics["events_duplicate"] == scenario.duplicates
    assert metrics["dead_letters"] == len(scenario.dead_letters) == len(run.dead_letters)
    assert metrics["replayed_records"] == 0
    assert metrics["events_consumed"] == (
        metrics["events_posted"] + metrics["dead_letters"] + metrics["events_duplicate"]
    )
    assert scenario.sent > SYNTHETIC_EVENTS and scenario.duplicates > 100
