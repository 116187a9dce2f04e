"""Finance store: green loans, facility allocations, savings, campaign awards, draws.

`process_green_loans` is the entry point of the batch run. It awards loans in
chunks of AWARD_CHUNK loans, one transaction per chunk, and allocates each
facility in one transaction, so a process killed in the middle leaves each
chunk and each facility either fully written or untouched. `award`, used by the
online checkout path, takes one transaction per award. Idempotency rests on
unique keys: one loan row per purchase id, one allocation per facility and
purchase id (and at most one active allocation per purchase), one savings row
per facility and day, one award per campaign and purchase id.

Budgets are enforced by conditional updates (`spent + amount <= limit` in the
WHERE clause). PostgreSQL re-checks the condition on the latest row version
after waiting for a concurrent writer, and SQLite serialises writers, so
concurrent awards never push a counter past its limit on either database.
Money is stored as integer fen (BIGINT).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    cast,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from greenloop.collector import collector_paused
from greenloop.funding.allocation import (
    LoanPosition,
    LoanStatus,
    allocate,
    financing_share_of,
)
from greenloop.funding.config import FacilitiesFile, FacilityConfig, load_facilities
from greenloop.funding.reconciliation import Reconciliation, reconcile
from greenloop.funding.savings import accrue_savings
from greenloop.incentives.config import (
    CampaignConfig,
    CampaignsFile,
    InterestFree,
    LotteryRedEnvelope,
    load_campaigns,
)
from greenloop.incentives.draws import (
    DrawCommitment,
    DrawRecord,
    commit_seed_digest,
    commitment_to_dict,
    reveal,
)
from greenloop.incentives.rules import (
    CampaignRules,
    benefit_cost_fen,
    report_group,
)
from greenloop.lending import batch
from greenloop.lending.adjustments import apply_refund
from greenloop.lending.configfile import ConfigError
from greenloop.lending.loans import GreenLoan
from greenloop.lending.money import ZERO, fen_to_yuan, yuan_to_fen
from greenloop.lending.plans import InstallmentPlan, fee_plan, interest_plan
from greenloop.lending.schedules import FeeSchedule, load_fee_schedules
from greenloop.store.base import (
    Identifier,
    copy_rows,
    dialect_insert,
    is_unique_violation,
    metadata,
)

__all__ = [
    "AwardSummary",
    "FinanceOutcome",
    "GreenLoan",
    "LoanResult",
    "SubstitutionReport",
    "apply_partial_refund",
    "award",
    "build_allocation_report",
    "build_incentive_report",
    "commit_campaign_draw",
    "create_finance_tables",
    "process_green_loans",
    "reconcile_facility",
    "refund_purchases",
    "repay_loans",
    "reveal_campaign_draw",
    "revoke_loans",
]

logger = logging.getLogger(__name__)


# A same-day call with at most this many loans allocates incrementally; larger
# batches take the full pass, which also keeps IN lists short.
INCREMENTAL_LIMIT = 500
# Purchase ids per IN list, well below SQLite's default limit of 32,766 bound
# parameters.
CHUNK = 1000
# Batches of at least this many loans run with the cyclic garbage collector
# paused: at 100,000 loans its full collections took about two thirds of the
# step's time.
GC_PAUSE_MIN_LOANS = 1000
# Inserts of at least this many rows use COPY on PostgreSQL. Smaller ones,
# such as a checkout's single loan, skip its temporary table.
COPY_MIN_ROWS = 1000
# Loans per insert of new loan rows.
INSERT_BLOCK = 5000
# Loans whose results are read back and priced together.
RESULT_BLOCK = 20_000
# Loans per batch award transaction. A larger chunk makes fewer transactions
# but holds the budget rows locked longer against the online checkout path.
AWARD_CHUNK = 2000
# Conflicting attempts of one chunk before it falls back to one transaction per
# award.
AWARD_ATTEMPTS = 3
# Attempts of one facility's allocation when a concurrent run allocates one of
# its new loans to another facility first.
ALLOCATION_ATTEMPTS = 3
# Price fee-based plans of many loans at once with `greenloop.lending.batch`.
# When false, every loan's plan is built with Decimal arithmetic, one loan at a
# time, and the tests compare both paths.
BATCH_PRICING = True
# Distinct plan terms whose figures are kept between blocks, facilities and
# calls when BATCH_PRICING is on. An entry contains one integer per period plus
# one, about 5 KB at 120 periods, so a full cache takes at most about 40 MB.
PLAN_CACHE_SIZE = 8192
MILLIGRAMS_PER_KG = 1_000_000

finance_loans = Table(
    "finance_loans",
    metadata,
    Column("purchase_id", String(128), primary_key=True),
    Column("user_key", String(128), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("principal_fen", BigInteger, nullable=False),
    Column("periods", Integer, nullable=False),
    Column("category", String(40), nullable=False),
    Column("region", String(16), nullable=True),
    Column("merchant_id", String(128), nullable=True),
    Column("kg_co2e_lifetime", Float, nullable=True),
    # "fee": fee_rate is the total fee share; "interest": fee_rate is the
    # nominal annual interest rate of a declining-balance plan.
    Column("plan_kind", String(16), nullable=False),
    Column("fee_rate", String(20), nullable=False),
    Column("fee_schedule", String(80), nullable=False),
    Column("consumer_fee_waived", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default=LoanStatus.ACTIVE.value),
    Column("status_reason", Text, nullable=True),
    Column("status_on", Date, nullable=True),
    # Partial refunds in the order applied: [{"on": ISO date, "fen": amount}].
    Column("partial_refunds", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

finance_facilities = Table(
    "finance_facilities",
    metadata,
    Column("facility_id", String(80), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("drawn_fen", BigInteger, nullable=False, default=0),
    Column("unallocated_fen", BigInteger, nullable=False, default=0),
    Column("accrued_fen", BigInteger, nullable=False, default=0),
    Column("savings_spent_fen", BigInteger, nullable=False, default=0),
    Column("accrued_through", Date, nullable=True),
    Column("allocated_as_of", Date, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

finance_allocations = Table(
    "finance_allocations",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("facility_id", String(80), nullable=False),
    Column("purchase_id", String(128), nullable=False),
    Column("allocated_fen", BigInteger, nullable=False),
    Column("outstanding_fen", BigInteger, nullable=False),
    Column("allocated_on", Date, nullable=False),
    Column("measured_on", Date, nullable=False),
    Column("released_on", Date, nullable=True),
    Column("release_reason", Text, nullable=True),
    UniqueConstraint("facility_id", "purchase_id"),
    # A loan funds at most one facility at a time.
    Index(
        "uq_finance_allocations_active_purchase",
        "purchase_id",
        unique=True,
        sqlite_where=Column("released_on").is_(None),
        postgresql_where=Column("released_on").is_(None),
    ),
)

finance_savings_days = Table(
    "finance_savings_days",
    metadata,
    Column("facility_id", String(80), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("drawn_fen", BigInteger, nullable=False),
    Column("savings_fen", BigInteger, nullable=False),
)

finance_campaigns = Table(
    "finance_campaigns",
    metadata,
    Column("campaign_id", String(80), primary_key=True),
    Column("config", JSON, nullable=False),
    Column("facility_id", String(80), nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("spent_fen", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

finance_campaign_users = Table(
    "finance_campaign_users",
    metadata,
    Column("campaign_id", String(80), primary_key=True),
    Column("user_key", String(128), primary_key=True),
    Column("spent_fen", BigInteger, nullable=False, default=0),
    Column("awards", Integer, nullable=False, default=0),
)

finance_campaign_days = Table(
    "finance_campaign_days",
    metadata,
    Column("campaign_id", String(80), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("spent_fen", BigInteger, nullable=False, default=0),
)

finance_awards = Table(
    "finance_awards",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("campaign_id", String(80), nullable=False),
    Column("purchase_id", String(128), nullable=False),
    Column("user_key", String(128), nullable=False),
    Column("benefit_kind", String(40), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("facility_id", String(80), nullable=False),
    # The facility savings consumed by this award, and the facility's savings
    # balance (accrued minus spent) left after it.
    Column("savings_fen", BigInteger, nullable=False),
    Column("savings_balance_after_fen", BigInteger, nullable=True),
    Column("category", String(40), nullable=False),
    Column("day", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("awarded_at", DateTime(timezone=True), nullable=False),
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    Column("draw_id", String(80), nullable=True),
    UniqueConstraint("campaign_id", "purchase_id"),
)

finance_draws = Table(
    "finance_draws",
    metadata,
    Column("draw_id", String(80), primary_key=True),
    Column("campaign_id", String(80), nullable=False, unique=True),
    Column("commitment", JSON, nullable=False),
    Column("entries", JSON, nullable=False),
    Column("seed_hex", String(128), nullable=True),
    Column("winners", JSON, nullable=True),
    Column("revealed_at", DateTime(timezone=True), nullable=True),
)

FINANCE_TABLES = (
    finance_loans,
    finance_facilities,
    finance_allocations,
    finance_savings_days,
    finance_campaigns,
    finance_campaign_users,
    finance_campaign_days,
    finance_awards,
    finance_draws,
)

# Award states. An entry waits for a lottery draw; a refunded award has given
# its amount back to every budget it was charged to.
AWARDED = "awarded"
ENTERED = "entered"
WON = "won"
LOST = "lost"
WON_UNPAID = "won_unpaid"
REFUNDED = "refunded"
PAID_STATES = (AWARDED, WON)


@dataclass(frozen=True, slots=True)
class AwardSummary:
    """One campaign benefit given to a loan."""

    campaign_id: str
    benefit: str
    amount_fen: int
    status: str


@dataclass(frozen=True, slots=True)
class LoanResult:
    """The plan, facility and awards of one loan after the run."""

    purchase_id: str
    fee_fen: int | None
    apr: Decimal | None
    effective_annual_rate: Decimal | None
    consumer_fee_waived: bool
    facility_id: str | None
    awards: tuple[AwardSummary, ...] = ()
    # Why the loan was rejected or not found. Its figures are then None.
    error: str | None = None
    # Why a stored loan has no APR, because no internal rate of return fits its
    # installments. Its `apr` and `effective_annual_rate` are then None.
    rate_error: str | None = None


@dataclass(frozen=True, slots=True)
class FinanceOutcome:
    """Per-loan results and the allocation and incentive reports of one run."""

    loans: dict[str, LoanResult]
    allocation_report: dict[str, Any]
    incentive_report: dict[str, Any]
    processed: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class SubstitutionReport:
    """Allocations released when loans end early, and the loans that replaced them."""

    purchase_ids: tuple[str, ...]
    not_found: tuple[str, ...]
    released: dict[str, dict[str, int]] = field(default_factory=dict)
    added: dict[str, dict[str, int]] = field(default_factory=dict)
    unallocated_fen: dict[str, int] = field(default_factory=dict)
    pool_covers_drawn: dict[str, bool] = field(default_factory=dict)
    awards_refunded: int = 0


def create_finance_tables(engine: Engine) -> None:
    """Create the finance tables that do not exist yet."""
    metadata.create_all(engine, tables=list(FINANCE_TABLES), checkfirst=True)


# ---------------------------------------------------------------------------
# The batch entry point


# The phases of `process_green_loans`, in order, as `on_phase` receives them.
FINANCE_PHASES = (
    "record loans",
    "accrue savings",
    "award incentives",
    "allocate loans",
    "build reports",
)


def process_green_loans(
    engine: Engine,
    loans: Sequence[GreenLoan],
    facilities_path: Path,
    campaigns_path: Path,
    as_of: date,
    *,
    per_loan: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> FinanceOutcome:
    """Record loans, allocate them to facilities, accrue savings, award incentives.

    Safe to call again with the same loans: nothing is allocated or awarded twice.
    Raises ConfigError when a configuration file is invalid. With
    `per_loan=False` the outcome's `loans` is empty: reading every loan's
    figures back is skipped when only the counts and reports are needed.
    `on_phase(name)` is called as each of FINANCE_PHASES ends, for progress.
    """
    arguments = (
        engine,
        loans,
        facilities_path,
        campaigns_path,
        as_of,
        per_loan,
        on_phase or _ignore_phase,
    )
    if len(loans) < GC_PAUSE_MIN_LOANS:
        return _process(*arguments)
    with collector_paused():
        return _process(*arguments)


def _ignore_phase(name: str) -> None:
    """Accept the end of a phase when no one follows the progress."""


def _process(
    engine: Engine,
    loans: Sequence[GreenLoan],
    facilities_path: Path,
    campaigns_path: Path,
    as_of: date,
    per_loan: bool,
    on_phase: Callable[[str], None],
) -> FinanceOutcome:
    facilities = load_facilities(facilities_path)
    campaigns = load_campaigns(campaigns_path)
    _check_campaign_funding(campaigns, facilities, campaigns_path)
    create_finance_tables(engine)
    record, accrue, award, allocate, report = FINANCE_PHASES

    errors = _record_loans(engine, loans)
    valid = [loan for loan in loans if loan.purchase_id not in errors]
    on_phase(record)
    for facility in facilities.facilities:
        _accrue_facility(engine, facility, as_of)
    on_phase(accrue)
    _sync_campaigns(engine, campaigns)
    # Awards come before allocation, because an interest-free award changes the
    # plan and so the outstanding principal that the allocation measures.
    run_outcomes = _award_incentives(engine, valid, campaigns, facilities)
    on_phase(award)
    batch_ids = [loan.purchase_id for loan in valid]
    for facility in facilities.facilities:
        _allocate_facility(engine, facility, as_of, batch_ids)
    on_phase(allocate)

    results = _loan_results(engine, loans, errors) if per_loan else {}
    allocation_report = build_allocation_report(engine, facilities, as_of)
    incentive_report = build_incentive_report(engine, campaigns)
    for campaign_id, counts in run_outcomes.items():
        incentive_report["campaigns"][campaign_id]["this_run"] = counts
    on_phase(report)
    logger.info(
        "processed %d green loans (%d rejected) for %s",
        len(loans),
        len(errors),
        as_of.isoformat(),
    )
    return FinanceOutcome(
        results, allocation_report, incentive_report, len(loans), len(errors)
    )


def _check_campaign_funding(
    campaigns: CampaignsFile, facilities: FacilitiesFile, campaigns_path: Path
) -> None:
    known = {item.id for item in facilities.facilities}
    problems = [
        f"field campaigns[{index}].funding.facility_id: unknown facility"
        f" {campaign.funding.facility_id!r}; expected one of {', '.join(sorted(known))}"
        for index, campaign in enumerate(campaigns.campaigns)
        if campaign.funding.facility_id not in known
    ]
    if problems:
        raise ConfigError(campaigns_path, problems)


# ---------------------------------------------------------------------------
# Loans


def _price(loan: GreenLoan) -> tuple[str, str, Decimal] | str:
    """Return (schedule id, plan kind, rate) for the loan, or why it is invalid.

    The plan kind is "fee" (the rate is a fee share) or "interest" (the rate is
    a nominal annual rate on the declining balance).
    """
    if loan.principal_fen <= 0:
        return f"invalid principal_fen {loan.principal_fen}: expected a positive amount"
    if loan.periods < 2:
        return f"invalid periods {loan.periods}: an installment loan has 2 or more"
    schedule = load_fee_schedules().get()
    try:
        kind, rate = schedule.pricing(loan.periods)
    except KeyError as error:
        return str(error.args[0])
    return schedule.id, kind, rate


LOAN_INSERT_COLUMNS = (
    "purchase_id",
    "user_key",
    "occurred_at",
    "principal_fen",
    "periods",
    "category",
    "region",
    "merchant_id",
    "kg_co2e_lifetime",
    "plan_kind",
    "fee_rate",
    "fee_schedule",
    "consumer_fee_waived",
    "status",
    "created_at",
)


def _record_loans(engine: Engine, loans: Sequence[GreenLoan]) -> dict[str, str]:
    """Insert loans not yet stored; return purchase id -> reason for invalid loans.

    The rows are built and inserted INSERT_BLOCK at a time, so memory does not
    grow with the batch.
    """
    errors: dict[str, str] = {}
    now = datetime.now(UTC)
    # A valid loan's pricing depends only on its number of periods.
    pricing: dict[int, tuple[str, str, Decimal] | str] = {}
    active = LoanStatus.ACTIVE.value
    with engine.begin() as connection:
        for start in range(0, len(loans), INSERT_BLOCK):
            rows = []
            for loan in loans[start : start + INSERT_BLOCK]:
                if loan.principal_fen <= 0 or loan.periods < 2:
                    priced = _price(loan)
                else:
                    priced = pricing.get(loan.periods) or pricing.setdefault(
                        loan.periods, _price(loan)
                    )
                if isinstance(priced, str):
                    errors[loan.purchase_id] = priced
                    logger.warning(
                        "green loan %s rejected: %s", loan.purchase_id, priced
                    )
                    continue
                schedule_id, plan_kind, rate = priced
                rows.append(
                    (
                        loan.purchase_id,
                        loan.user_key,
                        loan.occurred_at,
                        loan.principal_fen,
                        loan.periods,
                        loan.category,
                        loan.region,
                        loan.merchant_id,
                        loan.kg_co2e_lifetime,
                        plan_kind,
                        str(rate),
                        schedule_id,
                        0,
                        active,
                        now,
                    )
                )
            _insert_rows(
                connection, finance_loans, LOAN_INSERT_COLUMNS, rows, ["purchase_id"]
            )
    return errors


def _plan_of(row: Any) -> InstallmentPlan:
    """Rebuild the stored loan's plan, with its waived fee and partial refunds."""
    start = _as_date(row.occurred_at)
    plan = _base_plan(_terms_of(row), start)
    for refund in row.partial_refunds or ():
        refunded_on = date.fromisoformat(refund["on"])
        paid = sum(
            1
            for item in plan.installments
            if item.due_on is not None and item.due_on <= refunded_on
        )
        adjusted = apply_refund(plan, Decimal(refund["fen"]), paid).plan
        if adjusted is None:
            break
        plan = adjusted
    return plan


# The stored values that fix the amounts of a loan's plan before any refund:
# principal in fen, periods, plan kind, rate as stored, and whether the fee is
# waived. The purchase date sets only the due dates.
PlanTerms = tuple[int, int, str, str, bool]


def _terms_of(row: Any) -> PlanTerms:
    return (
        row.principal_fen,
        row.periods,
        row.plan_kind,
        row.fee_rate,
        bool(row.consumer_fee_waived),
    )


def _base_plan(terms: PlanTerms, start: date | None) -> InstallmentPlan:
    """Build the plan of a stored loan before any refund."""
    principal_fen, periods, plan_kind, rate, waived = terms
    principal = Decimal(principal_fen)
    if waived:
        return fee_plan(principal, periods, ZERO, start)
    if plan_kind == "interest":
        return interest_plan(principal, periods, Decimal(rate), start)
    return fee_plan(principal, periods, Decimal(rate), start)


class _PlanFigures(NamedTuple):
    """A plan's total fee and annual rates, or why it has no rate."""

    fee_fen: int
    apr: Decimal | None
    effective_annual_rate: Decimal | None
    rate_error: str | None = None


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _repaid_after(terms: PlanTerms) -> tuple[int, ...]:
    """Return the principal repaid after 0, 1, ..., n installments of the plan."""
    repaid = [0]
    for item in _base_plan(terms, None).installments:
        repaid.append(repaid[-1] + int(item.principal_fen))
    return tuple(repaid)


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _unrefunded_figures(terms: PlanTerms) -> _PlanFigures:
    """Return the fee and annual rates of the plan of `terms`."""
    return _figures_of(_base_plan(terms, None))


def clear_plan_caches() -> None:
    """Drop the cached plan figures, for a caller about to need the memory."""
    _repaid_after.cache_clear()
    _unrefunded_figures.cache_clear()


def _figures_of(plan: InstallmentPlan) -> _PlanFigures:
    """Return the plan's fee and rates, or the reason why it has no IRR."""
    try:
        annual_rate = plan.annual_rate()
    except ValueError as error:
        return _PlanFigures(int(plan.fee_fen), None, None, f"no APR: {error}")
    return _PlanFigures(
        int(plan.fee_fen), annual_rate.nominal_annual, annual_rate.effective_annual
    )


def _as_date(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


class _StoredLoan(NamedTuple):
    """The stored loan columns that `_plan_of` and the allocation read."""

    purchase_id: str
    # The date part of the stored purchase time.
    occurred_at: date
    principal_fen: int
    periods: int
    plan_kind: str
    fee_rate: str
    consumer_fee_waived: int
    partial_refunds: list[dict[str, Any]] | None
    category: str
    status: str


STORED_LOAN_QUERY = (
    "SELECT purchase_id, occurred_at, principal_fen, periods, plan_kind, fee_rate,"
    " consumer_fee_waived, partial_refunds, category, status FROM finance_loans"
)


def _stored_loans(rows: Iterable[Sequence[Any]]) -> list[_StoredLoan]:
    """Convert raw driver rows of STORED_LOAN_QUERY.

    SQLite returns the purchase time as text and the refunds as JSON text.
    PostgreSQL returns a datetime and parsed JSON.
    """
    loans = []
    dates: dict[str, date] = {}
    for row in rows:
        start = _stored_date(row[1], dates)
        refunds = row[7]
        if isinstance(refunds, str):
            refunds = json.loads(refunds)
        loans.append(
            _StoredLoan(
                row[0],
                start,
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                refunds,
                row[8],
                row[9],
            )
        )
    return loans


def _stored_date(moment: str | date, dates: dict[str, date]) -> date:
    """Return the date part of a date or time column read through the driver.

    SQLite returns ISO text, and PostgreSQL a date or datetime. Many rows share
    a date, so `dates` keeps one date object per text.
    """
    if not isinstance(moment, str):
        return _as_date(moment)
    day_text = moment[:10]
    found = dates.get(day_text)
    if found is None:
        found = dates[day_text] = date.fromisoformat(day_text)
    return found


def _fee_plan_groups(
    rows: Sequence[Any],
) -> tuple[dict[tuple[int, Decimal], list[int]], list[int]]:
    """Group row indexes by (periods, fee rate) for batch pricing.

    A waived loan has a fee plan at rate zero. Interest plans, loans with
    partial refunds and principals outside the batch range are returned
    separately, to be priced one by one with `_plan_of`.
    """
    groups: dict[tuple[int, Decimal], list[int]] = defaultdict(list)
    one_by_one: list[int] = []
    rates: dict[str, Decimal] = {}
    supported: dict[tuple[int, Decimal], bool] = {}
    for index, row in enumerate(rows):
        if (
            not BATCH_PRICING
            or row.partial_refunds
            or not 0 < row.principal_fen <= batch.MAX_PRINCIPAL_FEN
            or (row.plan_kind != "fee" and not row.consumer_fee_waived)
        ):
            one_by_one.append(index)
            continue
        if row.consumer_fee_waived:
            rate = ZERO
        else:
            rate = rates.get(row.fee_rate) or rates.setdefault(
                row.fee_rate, Decimal(row.fee_rate)
            )
        key = (row.periods, rate)
        if key not in supported:
            supported[key] = batch.supports(rate, row.periods)
        if supported[key]:
            groups[key].append(index)
        else:
            one_by_one.append(index)
    return groups, one_by_one


def _plan_principals_and_outstanding(
    rows: Sequence[Any], as_of: date
) -> tuple[list[int], list[int]]:
    """Return each stored loan's plan principal and its outstanding on `as_of`.

    The figures equal those of `_plan_of(row)`. Fee plans are priced in batches.
    Other plans without refunds share their repaid principal per `PlanTerms`,
    and only loans with partial refunds, or all loans when BATCH_PRICING is
    off, rebuild their own plan.
    """
    principals = [0] * len(rows)
    outstanding = [0] * len(rows)
    groups, one_by_one = _fee_plan_groups(rows)
    for (periods, rate), indexes in groups.items():
        amounts = np.fromiter(
            (rows[index].principal_fen for index in indexes), np.int64, len(indexes)
        )
        starts = batch.date_numbers(
            [_as_date(rows[index].occurred_at) for index in indexes]
        )
        plans = batch.fee_plans(amounts, periods, rate)
        due = batch.installments_due(starts, periods, as_of)
        left = (amounts - batch.repaid_principal(plans, due)).tolist()
        for position, index in enumerate(indexes):
            principals[index] = rows[index].principal_fen
            outstanding[index] = left[position]

    unrefunded: dict[int, list[int]] = defaultdict(list)
    for index in one_by_one:
        row = rows[index]
        if BATCH_PRICING and not row.partial_refunds:
            unrefunded[row.periods].append(index)
            continue
        plan = _plan_of(row)
        principals[index] = int(plan.principal_fen)
        outstanding[index] = int(plan.outstanding_fen(as_of))

    # Installments fall due in order, so those due by `as_of` are the first
    # `installments_due` of them.
    for periods, indexes in unrefunded.items():
        starts = batch.date_numbers(
            [_as_date(rows[index].occurred_at) for index in indexes]
        )
        due = batch.installments_due(starts, periods, as_of).tolist()
        for index, count in zip(indexes, due, strict=True):
            row = rows[index]
            principals[index] = row.principal_fen
            outstanding[index] = (
                row.principal_fen - _repaid_after(_terms_of(row))[count]
            )
    return principals, outstanding


def _fees_and_rates(rows: Sequence[Any]) -> list[_PlanFigures]:
    """Return each stored loan's fee, APR and effective annual rate, as `_plan_of`."""
    figures: list[_PlanFigures] = [_PlanFigures(0, ZERO, ZERO)] * len(rows)
    groups, one_by_one = _fee_plan_groups(rows)
    zero = batch.zero_rate()
    free = _PlanFigures(0, zero.nominal_annual, zero.effective_annual)
    rates: dict[int, Decimal] = {}
    for (periods, rate), indexes in groups.items():
        amounts = np.fromiter(
            (rows[index].principal_fen for index in indexes), np.int64, len(indexes)
        )
        plans = batch.fee_plans(amounts, periods, rate)
        annual = batch.annual_rates(plans)
        fees = plans.fee.tolist()
        nominal = annual.nominal_micro.tolist()
        effective = annual.effective_micro.tolist()
        exact = annual.exact.tolist()
        for position, index in enumerate(indexes):
            fee = fees[position]
            if exact[position]:
                # Loans in these groups have no refunds.
                figures[index] = _unrefunded_figures(_terms_of(rows[index]))
            elif fee == 0:
                figures[index] = free
            else:
                # One Decimal per distinct rate, shared by the loans that have it.
                apr = rates.get(nominal[position])
                if apr is None:
                    apr = rates.setdefault(
                        nominal[position], batch.rate_decimal(nominal[position])
                    )
                effective_rate = rates.get(effective[position])
                if effective_rate is None:
                    effective_rate = rates.setdefault(
                        effective[position], batch.rate_decimal(effective[position])
                    )
                figures[index] = _PlanFigures(fee, apr, effective_rate)
    for index in one_by_one:
        row = rows[index]
        if BATCH_PRICING and not row.partial_refunds:
            figures[index] = _unrefunded_figures(_terms_of(row))
        else:
            figures[index] = _figures_of(_plan_of(row))
        if figures[index].rate_error:
            logger.warning(
                "green loan %s has no APR: %s",
                row.purchase_id,
                figures[index].rate_error,
            )
    return figures


# ---------------------------------------------------------------------------
# Facilities: savings accrual and allocation


def _accrue_facility(engine: Engine, facility: FacilityConfig, as_of: date) -> None:
    """Create the facility row if needed and book its savings through `as_of`."""
    with engine.begin() as connection:
        _insert_ignore(
            connection,
            finance_facilities,
            [
                {
                    "facility_id": facility.id,
                    "config": facility.model_dump(mode="json"),
                    "drawn_fen": 0,
                    "unallocated_fen": 0,
                    "accrued_fen": 0,
                    "savings_spent_fen": 0,
                    "updated_at": datetime.now(UTC),
                }
            ],
            ["facility_id"],
        )
        row = _lock_facility(connection, facility.id)
        _accrue(connection, facility, row.accrued_through, as_of)


def _allocate_facility(
    engine: Engine, facility: FacilityConfig, as_of: date, batch_ids: Sequence[str]
) -> None:
    """Re-run the facility's allocation on `as_of` in one transaction.

    A facility already allocated on `as_of` under the same terms considers only
    this batch's loans as new candidates, because every older loan was offered
    to it that day already. This keeps single-loan calls from a checkout cheap.

    A facility's row lock covers only its own allocations, so a concurrent run
    can allocate a loan to another facility after this transaction read which
    loans are taken. The insert then raises a unique violation, and the
    allocation runs again, up to ALLOCATION_ATTEMPTS times in all.
    """
    for attempt in range(1, ALLOCATION_ATTEMPTS + 1):
        try:
            with engine.begin() as connection:
                _allocate_facility_once(connection, facility, as_of, batch_ids)
            return
        except IntegrityError as error:
            if not is_unique_violation(error) or attempt == ALLOCATION_ATTEMPTS:
                raise
            logger.info(
                "allocation of facility %s on %s conflicted with a concurrent "
                "allocation to another facility (attempt %d of %d), so it runs "
                "again: %s",
                facility.id,
                as_of.isoformat(),
                attempt,
                ALLOCATION_ATTEMPTS,
                getattr(error, "orig", error),
            )


def _allocate_facility_once(
    connection: Connection,
    facility: FacilityConfig,
    as_of: date,
    batch_ids: Sequence[str],
) -> None:
    """Allocate the facility inside the caller's transaction, its row locked first."""
    row = _lock_facility(connection, facility.id)
    config = facility.model_dump(mode="json")
    same_day = row.allocated_as_of == as_of and row.config == config
    if same_day and int(row.unallocated_fen) == 0:
        # Allocated today under the same terms and fully covered: loans
        # ended since then were released by revoke, refund or repayment.
        return
    if row.config != config:
        connection.execute(
            update(finance_facilities)
            .where(finance_facilities.c.facility_id == facility.id)
            .values(config=config)
        )
    incremental = same_day and len(batch_ids) <= INCREMENTAL_LIMIT
    _reallocate(connection, facility, as_of, set(batch_ids) if incremental else None)


def _lock_facility(connection: Connection, facility_id: str) -> Any:
    """Read the facility row, locked until the transaction ends.

    PostgreSQL locks the row. SQLite has no row locks, and Python's sqlite3
    begins the transaction only at the first write, so a no-op update takes
    the database's write lock before anything is read. Otherwise two
    processes could allocate from the same reads, and the second would fail
    on the first one's allocations.
    """
    query = select(finance_facilities).where(
        finance_facilities.c.facility_id == facility_id
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    else:
        connection.execute(
            update(finance_facilities)
            .where(finance_facilities.c.facility_id == facility_id)
            .values(facility_id=finance_facilities.c.facility_id)
        )
    return connection.execute(query).one()


def _accrue(
    connection: Connection,
    facility: FacilityConfig,
    accrued_through: date | None,
    as_of: date,
) -> None:
    """Book the savings of the days after `accrued_through` up to `as_of`.

    NOTE: days already booked are not recomputed, so a drawdown or rate added
    to the configuration with an earlier date changes only later days.
    """
    new_days = [
        {
            "facility_id": facility.id,
            "day": saving.day,
            "drawn_fen": int(saving.drawn_fen),
            "savings_fen": int(saving.savings_fen),
        }
        for saving in accrue_savings(facility, as_of)
        if accrued_through is None or saving.day > accrued_through
    ]
    if not new_days:
        return
    for start in range(0, len(new_days), 1000):
        _insert_ignore(
            connection,
            finance_savings_days,
            new_days[start : start + 1000],
            ["facility_id", "day"],
        )
    total = connection.execute(
        select(func.coalesce(func.sum(finance_savings_days.c.savings_fen), 0)).where(
            finance_savings_days.c.facility_id == facility.id
        )
    ).scalar_one()
    connection.execute(
        update(finance_facilities)
        .where(finance_facilities.c.facility_id == facility.id)
        .values(accrued_fen=int(total), accrued_through=new_days[-1]["day"])
    )


ALLOCATION_COLUMNS = (
    "facility_id",
    "purchase_id",
    "allocated_fen",
    "outstanding_fen",
    "allocated_on",
    "measured_on",
)


def _reallocate(
    connection: Connection,
    facility: FacilityConfig,
    as_of: date,
    only: set[str] | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Run the allocation for one facility and store it; the facility row is locked.

    New candidates are all active loans of an eligible category, or only the
    loans in `only` when given. Returns the released and the added allocations
    (purchase id -> fen).
    """
    active = _held_allocations(connection, facility.id)
    current = {row.purchase_id: Decimal(row.allocated_fen) for row in active}
    taken_elsewhere = set(
        connection.execute(
            select(finance_allocations.c.purchase_id).where(
                and_(
                    finance_allocations.c.facility_id != facility.id,
                    finance_allocations.c.released_on.is_(None),
                )
            )
        ).scalars()
    )
    ever_allocated_here = set(
        connection.execute(
            select(finance_allocations.c.purchase_id).where(
                and_(
                    finance_allocations.c.facility_id == facility.id,
                    finance_allocations.c.released_on.is_not(None),
                )
            )
        ).scalars()
    )
    positions = _positions(
        _candidate_loans(connection, facility, only), as_of, set(current)
    )
    # A loan released from this facility is never allocated to it again, because
    # the unique key (facility, purchase) keeps its release on record.
    excluded = taken_elsewhere | ever_allocated_here
    result = allocate(facility, as_of, current, positions, excluded)

    released = {key: int(current[key]) for key in result.released}
    _store_releases(connection, facility.id, as_of, result.released)
    stored = {row.purchase_id: row for row in active}
    changed = [
        {
            "match_purchase_id": purchase_id,
            "new_allocated_fen": int(amount),
            "new_outstanding_fen": int(positions[purchase_id].outstanding_fen),
        }
        for purchase_id, amount in result.allocations.items()
        if purchase_id in stored
        and _remeasured(stored[purchase_id], amount, positions[purchase_id], as_of)
    ]
    if changed:
        columns = finance_allocations.c
        connection.execute(
            update(finance_allocations)
            .where(
                and_(
                    columns.facility_id == facility.id,
                    columns.purchase_id == bindparam("match_purchase_id"),
                )
            )
            .values(
                allocated_fen=bindparam("new_allocated_fen"),
                outstanding_fen=bindparam("new_outstanding_fen"),
                measured_on=as_of,
            ),
            changed,
        )
    added_rows = [
        (
            facility.id,
            purchase_id,
            int(result.allocations[purchase_id]),
            int(positions[purchase_id].outstanding_fen),
            as_of,
            as_of,
        )
        for purchase_id in result.added
    ]
    # A plain insert: an existing allocation of the same loan is a conflict
    # with a concurrent writer and raises IntegrityError.
    _insert_rows(connection, finance_allocations, ALLOCATION_COLUMNS, added_rows)
    connection.execute(
        update(finance_facilities)
        .where(finance_facilities.c.facility_id == facility.id)
        .values(
            drawn_fen=int(result.drawn_fen),
            unallocated_fen=int(result.unallocated_fen),
            allocated_as_of=as_of,
            updated_at=datetime.now(UTC),
        )
    )
    added = {key: int(result.allocations[key]) for key in result.added}
    return released, added


class _HeldAllocation(NamedTuple):
    """An active allocation as `_reallocate` compares it with a new measurement."""

    purchase_id: str
    allocated_fen: int
    outstanding_fen: int
    measured_on: date


def _held_allocations(
    connection: Connection, facility_id: str
) -> list[_HeldAllocation]:
    """Read the facility's active allocations through the driver."""
    marker = _placeholder(connection)
    rows = connection.exec_driver_sql(
        "SELECT purchase_id, allocated_fen, outstanding_fen, measured_on"
        " FROM finance_allocations"
        f" WHERE facility_id = {marker} AND released_on IS NULL",
        (facility_id,),
    ).all()
    dates: dict[str, date] = {}
    return [
        _HeldAllocation(row[0], int(row[1]), int(row[2]), _stored_date(row[3], dates))
        for row in rows
    ]


def _store_releases(
    connection: Connection,
    facility_id: str,
    as_of: date,
    reasons: Mapping[str, str],
) -> None:
    """Mark allocations released, logging each at DEBUG and their count at INFO."""
    if not reasons:
        return
    columns = finance_allocations.c
    connection.execute(
        update(finance_allocations)
        .where(
            and_(
                columns.facility_id == facility_id,
                columns.purchase_id == bindparam("match_purchase_id"),
            )
        )
        .values(
            released_on=as_of,
            release_reason=bindparam("new_release_reason"),
            measured_on=as_of,
        ),
        [
            {"match_purchase_id": purchase_id, "new_release_reason": reason}
            for purchase_id, reason in reasons.items()
        ],
    )
    for purchase_id, reason in reasons.items():
        logger.debug(
            "facility %s released loan %s: %s", facility_id, purchase_id, reason
        )
    logger.info(
        "facility %s released %d loans on %s: %s",
        facility_id,
        len(reasons),
        as_of.isoformat(),
        dict(Counter(reasons.values())),
    )


def _candidate_loans(
    connection: Connection, facility: FacilityConfig, only: set[str] | None
) -> Iterator[list[_StoredLoan]]:
    """Yield, RESULT_BLOCK at a time, the loans held by the facility and the new
    candidates: active loans of an eligible category, or only those in `only`.
    """
    marker = _placeholder(connection)
    categories = sorted(str(item) for item in facility.eligible_categories)
    query = (
        f"{STORED_LOAN_QUERY} WHERE purchase_id IN (SELECT purchase_id FROM"
        f" finance_allocations WHERE facility_id = {marker} AND released_on IS NULL)"
        f" OR (category IN ({', '.join([marker] * len(categories))})"
        f" AND status = {marker}"
    )
    parameters: tuple[Any, ...] = (
        facility.id,
        *categories,
        LoanStatus.ACTIVE.value,
    )

    if only is None:
        result = connection.exec_driver_sql(
            query + ")",
            parameters,
            execution_options={"stream_results": True},
        )
        for rows in result.partitions(RESULT_BLOCK):
            yield _stored_loans(rows)
        return

    # A small batch: its ids go into the statement.
    ids = sorted(only)
    tests = " OR ".join(
        f"purchase_id IN ({', '.join([marker] * len(ids[start : start + CHUNK]))})"
        for start in range(0, len(ids), CHUNK)
    )
    result = connection.exec_driver_sql(
        f"{query} AND ({tests or 'FALSE'}))", (*parameters, *ids)
    )
    yield _stored_loans(result.all())


def _positions(
    partitions: Iterable[Sequence[Any]], as_of: date, held: set[str]
) -> dict[str, LoanPosition]:
    """Measure stored loans on `as_of`, block by block.

    A loan that is not held and has nothing outstanding can never be a new
    candidate, so it gets no position. That keeps the mapping to the loans
    the allocation can use.
    """
    statuses = {status.value: status for status in LoanStatus}
    positions: dict[str, LoanPosition] = {}
    for rows in partitions:
        principals, outstanding = _plan_principals_and_outstanding(rows, as_of)
        for row, principal, left in zip(rows, principals, outstanding, strict=True):
            if left <= 0 and row.purchase_id not in held:
                continue
            positions[row.purchase_id] = LoanPosition(
                purchase_id=row.purchase_id,
                category=row.category,
                originated_on=_as_date(row.occurred_at),
                principal_fen=Decimal(principal),
                outstanding_fen=Decimal(left),
                status=statuses[row.status],
            )
    return positions


def _remeasured(
    row: Any, allocated_fen: Decimal, position: LoanPosition, as_of: date
) -> bool:
    """Tell whether a stored allocation differs from its new measurement."""
    return (
        row.measured_on != as_of
        or int(row.allocated_fen) != int(allocated_fen)
        or int(row.outstanding_fen) != int(position.outstanding_fen)
    )


# ---------------------------------------------------------------------------
# Campaigns and awards


def _sync_campaigns(engine: Engine, campaigns: CampaignsFile) -> None:
    """Store each campaign and its budget; a changed total applies from now on.

    Unchanged campaigns are not written, so repeated calls take no lock on the
    budget rows that concurrent awards update.
    """
    now = datetime.now(UTC)
    with engine.begin() as connection:
        stored = {
            row.campaign_id: row.config
            for row in connection.execute(
                select(finance_campaigns.c.campaign_id, finance_campaigns.c.config)
            )
        }
        for campaign in campaigns.campaigns:
            config = campaign.model_dump(mode="json")
            if stored.get(campaign.id) == config:
                continue
            values = {
                "config": config,
                "facility_id": campaign.funding.facility_id,
                "total_fen": int(campaign.budget.total_fen),
                "updated_at": now,
            }
            _insert_ignore(
                connection,
                finance_campaigns,
                [{"campaign_id": campaign.id, "spent_fen": 0, **values}],
                ["campaign_id"],
            )
            connection.execute(
                update(finance_campaigns)
                .where(finance_campaigns.c.campaign_id == campaign.id)
                .values(**values)
            )


def _award_incentives(
    engine: Engine,
    loans: Sequence[GreenLoan],
    campaigns: CampaignsFile,
    facilities: FacilitiesFile,
) -> dict[str, dict[str, int]]:
    """Offer every campaign to every loan, oldest purchase first.

    Loans are taken in (purchase time, purchase id) order and campaigns in file
    order, so when a budget runs out the earliest purchases win, whatever the
    input order and chunk size. Returns, per campaign, how many awards this run
    made and why others were not made, so the report can show them.
    """
    ordered = sorted(loans, key=lambda loan: (loan.occurred_at, loan.purchase_id))
    offered = _eligible_offers(ordered, campaigns)
    del ordered
    costs = _AwardCosts(facilities, offered)
    outcomes: dict[str, Counter[str]] = {
        item.id: Counter() for item in campaigns.campaigns
    }
    for start in range(0, len(offered), AWARD_CHUNK):
        block = offered[start : start + AWARD_CHUNK]
        chunk = [loan for loan, _ in block]
        offers = {loan.purchase_id: entries for loan, entries in block}
        for campaign_id, purchase_id, status in _award_chunk(
            engine, chunk, offers, costs.cost_of
        ):
            outcomes[campaign_id][status] += 1
            if status not in (AWARDED, ENTERED):
                logger.debug(
                    "campaign %s: no award for loan %s: %s",
                    campaign_id,
                    purchase_id,
                    status,
                )
    for campaign_id, counts in outcomes.items():
        if counts:
            logger.info("campaign %s this run: %s", campaign_id, dict(counts))
    return {key: dict(counts) for key, counts in outcomes.items()}


# The campaigns a loan qualifies for, in file order, each with the purchase
# date in the campaign's time zone.
OfferEntries = tuple[tuple[CampaignConfig, date], ...]
# Purchase id -> the offer entries of that loan.
Offers = Mapping[str, OfferEntries]


def _eligible_offers(
    loans: Sequence[GreenLoan], campaigns: CampaignsFile
) -> list[tuple[GreenLoan, OfferEntries]]:
    """Pair each loan that qualifies for a campaign with its offer entries.

    Loans keep their order. Equal entries (the same campaigns on the same
    dates) share one tuple, which keeps memory small for large batches.
    """
    rules = [CampaignRules.of(campaign) for campaign in campaigns.campaigns]
    zones = {
        campaign.timezone: ZoneInfo(campaign.timezone)
        for campaign in campaigns.campaigns
    }
    # Keyed by (campaign position, date) pairs, because campaigns are not
    # hashable.
    shared: dict[tuple[tuple[int, date], ...], OfferEntries] = {}
    offered: list[tuple[GreenLoan, OfferEntries]] = []
    for loan in loans:
        moment = loan.occurred_at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        days = {name: moment.astimezone(zone).date() for name, zone in zones.items()}
        key = tuple(
            (position, days[item.campaign.timezone])
            for position, item in enumerate(rules)
            if loan.category in item.categories
            and item.accepts(loan, days[item.campaign.timezone])
        )
        if not key:
            continue
        entries = shared.get(key)
        if entries is None:
            entries = shared[key] = tuple(
                (rules[position].campaign, day) for position, day in key
            )
        offered.append((loan, entries))
    return offered


class _AwardCosts:
    """The cost of each campaign's benefit for each loan offered it, in fen.

    Interest-free costs of fee-based loans are computed per number of periods
    with `greenloop.lending.batch`. The other loans and any cost that float
    arithmetic cannot round for certain go through `benefit_cost_fen`, as do
    all loans when BATCH_PRICING is off. A cost depends only on the campaign,
    the principal and the periods, so with BATCH_PRICING on, loans that have
    them in common share it.
    """

    def __init__(
        self,
        facilities: FacilitiesFile,
        offered: Sequence[tuple[GreenLoan, OfferEntries]],
    ) -> None:
        self._facilities = facilities
        self._schedule = load_fee_schedules().get()
        self._fixed: dict[str, int] = {}
        self._computed: dict[tuple[str, Any], int] = {}
        if BATCH_PRICING:
            self._price_interest_free(offered)

    def cost_of(self, campaign: CampaignConfig, loan: GreenLoan) -> int:
        """Return the cost of `campaign`'s benefit for `loan`."""
        benefit = campaign.benefit
        if not isinstance(benefit, InterestFree):
            if campaign.id not in self._fixed:
                self._fixed[campaign.id] = self._exact(campaign, loan)
            return self._fixed[campaign.id]
        key = (campaign.id, _cost_key(loan))
        cost = self._computed.get(key)
        if cost is None:
            cost = self._computed[key] = self._exact(campaign, loan)
        return cost

    def _exact(self, campaign: CampaignConfig, loan: GreenLoan) -> int:
        facility = self._facilities.get(campaign.funding.facility_id)
        standard = _standard_plan(self._schedule, loan)
        return int(benefit_cost_fen(campaign, loan, facility.facility_rate, standard))

    def _price_interest_free(
        self, offered: Sequence[tuple[GreenLoan, OfferEntries]]
    ) -> None:
        by_group: dict[tuple[str, int], list[GreenLoan]] = defaultdict(list)
        campaigns: dict[str, CampaignConfig] = {}
        for loan, entries in offered:
            if not 0 < loan.principal_fen <= batch.MAX_PRINCIPAL_FEN:
                continue
            for campaign, _ in entries:
                if isinstance(campaign.benefit, InterestFree):
                    campaigns[campaign.id] = campaign
                    by_group[(campaign.id, loan.periods)].append(loan)
        for (campaign_id, periods), group in by_group.items():
            campaign = campaigns[campaign_id]
            principals = np.fromiter(
                (loan.principal_fen for loan in group), np.int64, len(group)
            )
            priced = self._batch_costs(campaign, principals, periods)
            if priced is None:
                continue
            costs, exact = priced
            for loan, cost, is_exact in zip(
                group, costs.tolist(), exact.tolist(), strict=True
            ):
                if not is_exact:
                    self._computed[(campaign_id, _cost_key(loan))] = cost

    def _batch_costs(
        self, campaign: CampaignConfig, principals: Any, periods: int
    ) -> tuple[Any, Any] | None:
        """Return batch costs and the mask of loans to price exactly, or None."""
        benefit = campaign.benefit
        assert isinstance(benefit, InterestFree)
        if benefit.cost_basis == "forgone_fee":
            # The standard plan's fee and interest; a fee plan has no interest.
            kind, rate = self._schedule.pricing(periods)
            if kind != "fee" or not batch.supports(rate, periods):
                return None
            fees = batch.fee_plans(principals, periods, rate).fee
            return fees, np.zeros(fees.shape, dtype=bool)
        facility = self._facilities.get(campaign.funding.facility_id)
        if facility.facility_rate < 0:
            return None
        return batch.interest_free_funding_cost(
            principals, periods, facility.facility_rate
        )


def _cost_key(loan: GreenLoan) -> Any:
    """Return the key of `loan`'s interest-free cost in `_AwardCosts`.

    Without BATCH_PRICING every loan is priced on its own, so the per-loan
    path stays the reference that the batch path is compared with.
    """
    if BATCH_PRICING:
        return (loan.principal_fen, loan.periods)
    return loan.purchase_id


class _ChunkConflict(Exception):
    """A concurrent writer changed a row between a chunk's read and its write."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One campaign offered to one loan that has no award from it yet."""

    campaign: CampaignConfig
    loan: GreenLoan
    amount_fen: int
    day: date


CostFunction = Callable[[CampaignConfig, GreenLoan], int]


def _award_chunk(
    engine: Engine,
    chunk: Sequence[GreenLoan],
    offers: Offers,
    cost_of: CostFunction,
) -> list[tuple[str, str, str]]:
    """Award a chunk of loans in one transaction and return each offer's status.

    The chunk reads its counters, decides every award in memory in order, then
    writes with conditional statements that re-check each limit. When one of
    them finds a row changed by a concurrent writer, the chunk rolls back and is
    tried again. After AWARD_ATTEMPTS conflicts it falls back to `award`, one
    transaction per award. Returns (campaign id, purchase id, status) per offer.
    """
    for attempt in range(1, AWARD_ATTEMPTS + 1):
        try:
            with engine.begin() as connection:
                return _award_chunk_once(connection, chunk, offers, cost_of)
        except _ChunkConflict as conflict:
            logger.info(
                "award chunk of %d loans from %s conflicted (attempt %d of %d): %s",
                len(chunk),
                chunk[0].purchase_id,
                attempt,
                AWARD_ATTEMPTS,
                conflict,
            )
    logger.warning(
        "award chunk of %d loans from %s conflicted %d times; awarding its"
        " loans one transaction each",
        len(chunk),
        chunk[0].purchase_id,
        AWARD_ATTEMPTS,
    )
    with engine.connect() as connection:
        candidates, _ = _pending_candidates(connection, chunk, offers, cost_of)
    return [
        (
            candidate.campaign.id,
            candidate.loan.purchase_id,
            award(
                engine,
                candidate.campaign,
                candidate.loan,
                Decimal(candidate.amount_fen),
            ),
        )
        for candidate in candidates
    ]


def _pending_candidates(
    connection: Connection,
    chunk: Sequence[GreenLoan],
    offers: Offers,
    cost_of: CostFunction,
) -> tuple[list[_Candidate], set[str]]:
    """Return the awards still to try for active loans, and the fee-waived loans.

    `offers` maps each loan of the chunk to the campaigns it qualifies for.
    """
    ids = [loan.purchase_id for loan in chunk]
    stored = _rows_by_ids(
        connection,
        "SELECT purchase_id, status, consumer_fee_waived FROM finance_loans"
        " WHERE purchase_id {ids}",
        ids,
    )
    active_status = LoanStatus.ACTIVE.value
    active = {row[0] for row in stored if row[1] == active_status}
    waived = {row[0] for row in stored if row[2]}
    offered = sorted(
        {
            campaign.id
            for loan in chunk
            for campaign, _ in offers.get(loan.purchase_id, ())
        }
    )
    existing = {
        (row[0], row[1])
        for row in _awards_by_ids(connection, "campaign_id, purchase_id", ids, offered)
    }
    candidates = [
        _Candidate(campaign, loan, cost_of(campaign, loan), day)
        for loan in chunk
        if loan.purchase_id in active
        for campaign, day in offers.get(loan.purchase_id, ())
        if (campaign.id, loan.purchase_id) not in existing
    ]
    return candidates, waived


@dataclass(slots=True)
class _Budgets:
    """Counter values read at the start of a chunk, and the chunk's charges.

    `try_charge` applies the checks of `_try_award` and `_charge_budgets` in the
    same order, so a chunk rejects exactly what one-by-one awards would reject
    from the same starting counters.
    """

    campaign_spent: dict[str, int]
    campaign_total: dict[str, int]
    users: dict[tuple[str, str], tuple[int, int]]
    days: dict[tuple[str, date], int]
    savings_balance: dict[str, int]
    waived: set[str]
    closed: set[str]
    campaign_charges: Counter[str] = field(default_factory=Counter)
    user_charges: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    day_charges: Counter[tuple[str, date]] = field(default_factory=Counter)
    savings_charges: Counter[str] = field(default_factory=Counter)
    newly_waived: list[str] = field(default_factory=list)
    limits: dict[str, tuple[int | None, int | None, int | None]] = field(
        default_factory=dict
    )

    def _limits(
        self, campaign: CampaignConfig
    ) -> tuple[int | None, int | None, int | None]:
        """Return the campaign's per-user fen, per-user award and per-day fen limits."""
        found = self.limits.get(campaign.id)
        if found is None:
            budget = campaign.budget
            found = self.limits[campaign.id] = (
                None if budget.per_user_fen is None else int(budget.per_user_fen),
                None if budget.per_user_awards is None else int(budget.per_user_awards),
                None if budget.per_day_fen is None else int(budget.per_day_fen),
            )
        return found

    def try_charge(self, candidate: _Candidate) -> tuple[str, int | None]:
        """Charge one award and return its status and the savings balance left."""
        campaign = candidate.campaign
        campaign_id = campaign.id
        purchase_id = candidate.loan.purchase_id
        if isinstance(campaign.benefit, LotteryRedEnvelope):
            if campaign_id in self.closed:
                return "draw already committed; entries are closed", None
            return ENTERED, None
        if isinstance(campaign.benefit, InterestFree) and purchase_id in self.waived:
            return "already interest-free", None

        amount = candidate.amount_fen
        per_user_fen, per_user_awards, per_day_fen = self._limits(campaign)
        if self.campaign_spent[campaign_id] + amount > self.campaign_total[campaign_id]:
            return "campaign budget exhausted", None
        user_key = (campaign_id, candidate.loan.user_key)
        user_spent, user_awards = self.users.get(user_key, (0, 0))
        if per_user_fen is not None and user_spent + amount > per_user_fen:
            return "per-user limit reached", None
        if per_user_awards is not None and user_awards + 1 > per_user_awards:
            return "per-user limit reached", None
        day_key = (campaign_id, candidate.day)
        day_spent = self.days.get(day_key, 0)
        if per_day_fen is not None and day_spent + amount > per_day_fen:
            return "daily budget reached", None
        facility_id = campaign.funding.facility_id
        balance = self.savings_balance[facility_id]
        if amount > balance:
            return "facility savings exhausted", None

        self.campaign_spent[campaign_id] += amount
        self.campaign_charges[campaign_id] += amount
        self.users[user_key] = (user_spent + amount, user_awards + 1)
        charged_fen, charged_awards = self.user_charges.get(user_key, (0, 0))
        self.user_charges[user_key] = (charged_fen + amount, charged_awards + 1)
        self.days[day_key] = day_spent + amount
        self.day_charges[day_key] += amount
        self.savings_balance[facility_id] = balance - amount
        self.savings_charges[facility_id] += amount
        if isinstance(campaign.benefit, InterestFree):
            self.waived.add(purchase_id)
            self.newly_waived.append(purchase_id)
        return AWARDED, balance - amount


def _award_chunk_once(
    connection: Connection,
    chunk: Sequence[GreenLoan],
    offers: Offers,
    cost_of: CostFunction,
) -> list[tuple[str, str, str]]:
    """Decide and write one chunk's awards inside the caller's transaction."""
    candidates, waived = _pending_candidates(connection, chunk, offers, cost_of)
    if not candidates:
        return []
    budgets = _read_budgets(connection, candidates, waived)
    results = []
    award_rows = []
    now = datetime.now(UTC)
    for candidate in candidates:
        status, balance = budgets.try_charge(candidate)
        results.append((candidate.campaign.id, candidate.loan.purchase_id, status))
        if status in (AWARDED, ENTERED):
            award_rows.append(_award_row(candidate, status, balance, now))
    # The writes take row locks in the order `award` takes them (award rows,
    # loan, campaign, user, day, facility), so a chunk and a concurrent
    # single award or refund cannot deadlock each other.
    _insert_award_rows(connection, award_rows)
    _waive_fees(connection, budgets.newly_waived)
    by_id = {candidate.campaign.id: candidate.campaign for candidate in candidates}
    _write_budget_charges(connection, by_id, budgets)
    return results


def _read_budgets(
    connection: Connection, candidates: Sequence[_Candidate], waived: set[str]
) -> _Budgets:
    campaign_ids = sorted({candidate.campaign.id for candidate in candidates})
    user_keys = sorted({candidate.loan.user_key for candidate in candidates})
    days = sorted({candidate.day for candidate in candidates})
    facility_ids = sorted(
        {candidate.campaign.funding.facility_id for candidate in candidates}
    )
    campaign_rows = connection.execute(
        select(finance_campaigns).where(
            finance_campaigns.c.campaign_id.in_(campaign_ids)
        )
    ).all()
    users = finance_campaign_users.c
    user_rows = connection.execute(
        select(users.campaign_id, users.user_key, users.spent_fen, users.awards).where(
            and_(users.campaign_id.in_(campaign_ids), users.user_key.in_(user_keys))
        )
    ).all()
    day_columns = finance_campaign_days.c
    day_rows = connection.execute(
        select(day_columns.campaign_id, day_columns.day, day_columns.spent_fen).where(
            and_(day_columns.campaign_id.in_(campaign_ids), day_columns.day.in_(days))
        )
    ).all()
    facility_rows = connection.execute(
        select(finance_facilities).where(
            finance_facilities.c.facility_id.in_(facility_ids)
        )
    ).all()
    closed = set(
        connection.execute(
            select(finance_draws.c.campaign_id).where(
                finance_draws.c.campaign_id.in_(campaign_ids)
            )
        ).scalars()
    )
    return _Budgets(
        campaign_spent={row.campaign_id: int(row.spent_fen) for row in campaign_rows},
        campaign_total={row.campaign_id: int(row.total_fen) for row in campaign_rows},
        users={
            (row.campaign_id, row.user_key): (int(row.spent_fen), int(row.awards))
            for row in user_rows
        },
        days={(row.campaign_id, row.day): int(row.spent_fen) for row in day_rows},
        savings_balance={
            row.facility_id: int(row.accrued_fen) - int(row.savings_spent_fen)
            for row in facility_rows
        },
        waived=set(waived),
        closed=closed,
    )


def _award_row(
    candidate: _Candidate, status: str, balance: int | None, now: datetime
) -> dict[str, Any]:
    campaign = candidate.campaign
    amount = candidate.amount_fen if status == AWARDED else 0
    return {
        "campaign_id": campaign.id,
        "purchase_id": candidate.loan.purchase_id,
        "user_key": candidate.loan.user_key,
        "benefit_kind": campaign.benefit.kind,
        "amount_fen": amount,
        "facility_id": campaign.funding.facility_id,
        "savings_fen": amount,
        "savings_balance_after_fen": balance,
        "category": candidate.loan.category,
        "day": candidate.day,
        "status": status,
        "awarded_at": now,
    }


def _insert_award_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert award rows, raising _ChunkConflict when a concurrent award exists."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: (row["campaign_id"], row["purchase_id"]))
    if connection.dialect.name == "postgresql":
        # COPY fails as a whole on an award that exists, which is a conflict
        # too. Statements with RETURNING cost about 100 microseconds per row
        # here (estimated from a profile), mostly in parsing each statement.
        columns = list(rows[0])
        try:
            _copy_insert(
                connection,
                finance_awards,
                columns,
                [tuple(row[name] for name in columns) for row in rows],
                "",
            )
        except IntegrityError as error:
            if is_unique_violation(error):
                detail = str(getattr(error, "orig", error)).strip()
                raise _ChunkConflict(
                    f"one of the chunk's {len(rows)} awards exists already ({detail})"
                ) from error
            raise
        return
    # An executemany with RETURNING, which SQLAlchemy sends as batched
    # multi-row INSERTs; a row skipped by ON CONFLICT returns nothing.
    statement = (
        dialect_insert(connection, finance_awards)
        .on_conflict_do_nothing(index_elements=["campaign_id", "purchase_id"])
        .returning(finance_awards.c.id)
    )
    inserted = len(connection.execute(statement, rows).all())
    if inserted != len(rows):
        raise _ChunkConflict(f"{len(rows) - inserted} of {len(rows)} awards exist")


def _waive_fees(connection: Connection, purchase_ids: list[str]) -> None:
    ordered = sorted(purchase_ids)
    for start in range(0, len(ordered), CHUNK):
        batch = ordered[start : start + CHUNK]
        waived = connection.execute(
            update(finance_loans)
            .where(
                and_(
                    finance_loans.c.purchase_id.in_(batch),
                    finance_loans.c.consumer_fee_waived == 0,
                )
            )
            .values(consumer_fee_waived=1)
        )
        if waived.rowcount != len(batch):
            raise _ChunkConflict(
                f"{len(batch) - waived.rowcount} loans became interest-free"
            )


def _write_budget_charges(
    connection: Connection, campaigns: Mapping[str, CampaignConfig], budgets: _Budgets
) -> None:
    """Add the chunk's charges to every counter, each within its limit.

    Each statement repeats the limit in its WHERE clause, so the totals never
    exceed a limit even when a concurrent writer charged the same counter after
    the chunk read it. Such a change raises _ChunkConflict and rolls back.
    """
    columns = finance_campaigns.c
    for campaign_id in sorted(budgets.campaign_charges):
        amount = budgets.campaign_charges[campaign_id]
        charged = connection.execute(
            update(finance_campaigns)
            .where(
                and_(
                    columns.campaign_id == campaign_id,
                    columns.spent_fen + amount <= columns.total_fen,
                )
            )
            .values(spent_fen=columns.spent_fen + amount)
        )
        if charged.rowcount != 1:
            raise _ChunkConflict(f"campaign {campaign_id} budget changed")

    for campaign_id in sorted(budgets.campaign_charges):
        budget = campaigns[campaign_id].budget
        user_rows = [
            {
                "campaign_id": campaign_id,
                "user_key": user_key,
                "spent_fen": fen,
                "awards": count,
            }
            for (charged_campaign, user_key), (fen, count) in sorted(
                budgets.user_charges.items()
            )
            if charged_campaign == campaign_id
        ]
        _upsert_counters(
            connection,
            finance_campaign_users,
            ["campaign_id", "user_key"],
            user_rows,
            {"spent_fen": budget.per_user_fen, "awards": budget.per_user_awards},
        )
        day_rows = [
            {"campaign_id": campaign_id, "day": day, "spent_fen": fen}
            for (charged_campaign, day), fen in sorted(budgets.day_charges.items())
            if charged_campaign == campaign_id
        ]
        _upsert_counters(
            connection,
            finance_campaign_days,
            ["campaign_id", "day"],
            day_rows,
            {"spent_fen": budget.per_day_fen},
        )

    for facility_id in sorted(budgets.savings_charges):
        amount = budgets.savings_charges[facility_id]
        balance = _charge_savings(connection, facility_id, amount)
        if balance != budgets.savings_balance[facility_id]:
            # The award rows store the balance left after each award, computed
            # from the balance read, so any concurrent change makes them wrong.
            raise _ChunkConflict(f"facility {facility_id} savings changed")


def _upsert_counters(
    connection: Connection,
    table: Table,
    key: list[str],
    rows: list[dict[str, Any]],
    limits: Mapping[str, Decimal | int | None],
) -> None:
    """Add each row's increments to its counter, creating it when missing.

    The ON CONFLICT ... WHERE clause applies `limits` (column -> maximum) to the
    sum, so a counter never passes its limit. A row that fails the check is not
    returned, which raises _ChunkConflict.
    """
    if not rows:
        return
    statement = dialect_insert(connection, table)
    increments = [name for name in rows[0] if name not in key]
    checks = [
        table.c[name] + statement.excluded[name] <= int(limit)
        for name, limit in limits.items()
        if limit is not None
    ]
    upsert = statement.on_conflict_do_update(
        index_elements=key,
        set_={name: table.c[name] + statement.excluded[name] for name in increments},
        where=and_(*checks) if checks else None,
    ).returning(*(table.c[name] for name in key))
    charged = len(connection.execute(upsert, rows).all())
    if charged != len(rows):
        raise _ChunkConflict(
            f"{len(rows) - charged} {table.name} counters reached a limit"
        )


def _standard_plan(schedule: FeeSchedule, loan: GreenLoan) -> InstallmentPlan:
    """Build the plan the consumer would pay without any campaign."""
    kind, rate = schedule.pricing(loan.periods)
    principal = Decimal(loan.principal_fen)
    if kind == "interest":
        return interest_plan(principal, loan.periods, rate)
    return fee_plan(principal, loan.periods, rate)


def award(
    engine: Engine, campaign: CampaignConfig, loan: GreenLoan, cost_fen: Decimal
) -> str:
    """Award `campaign` to `loan` in one transaction, within every budget.

    Returns "awarded", "entered" (lottery), "duplicate" (already awarded), or the
    reason the award was rejected. A rejection changes nothing.
    """
    amount = int(cost_fen)
    benefit = campaign.benefit
    is_entry = isinstance(benefit, LotteryRedEnvelope)
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            status = _try_award(connection, campaign, loan, amount, is_entry)
        except BaseException:
            transaction.rollback()
            raise
        if status in (AWARDED, ENTERED):
            transaction.commit()
        else:
            transaction.rollback()
        return status


def _try_award(
    connection: Connection,
    campaign: CampaignConfig,
    loan: GreenLoan,
    amount: int,
    is_entry: bool,
) -> str:
    """Insert the award row, then charge each budget; any failure means rollback."""
    day = campaign.purchase_date(loan.occurred_at)
    if is_entry and _draw_committed(connection, campaign.id):
        return "draw already committed; entries are closed"
    inserted = _insert_ignore(
        connection,
        finance_awards,
        [
            {
                "campaign_id": campaign.id,
                "purchase_id": loan.purchase_id,
                "user_key": loan.user_key,
                "benefit_kind": campaign.benefit.kind,
                "amount_fen": 0 if is_entry else amount,
                "facility_id": campaign.funding.facility_id,
                "savings_fen": 0 if is_entry else amount,
                "category": loan.category,
                "day": day,
                "status": ENTERED if is_entry else AWARDED,
                "awarded_at": datetime.now(UTC),
            }
        ],
        ["campaign_id", "purchase_id"],
    )
    if not inserted:
        return "duplicate"
    if is_entry:
        return ENTERED

    if isinstance(campaign.benefit, InterestFree):
        waived = connection.execute(
            update(finance_loans)
            .where(
                and_(
                    finance_loans.c.purchase_id == loan.purchase_id,
                    finance_loans.c.consumer_fee_waived == 0,
                )
            )
            .values(consumer_fee_waived=1)
        )
        if waived.rowcount != 1:
            return "already interest-free"

    rejection = _charge_budgets(
        connection, campaign, loan.user_key, day, amount, count_award=True
    )
    if rejection:
        return rejection
    balance = _charge_savings(connection, campaign.funding.facility_id, amount)
    if balance is None:
        return "facility savings exhausted"

    connection.execute(
        update(finance_awards)
        .where(
            and_(
                finance_awards.c.campaign_id == campaign.id,
                finance_awards.c.purchase_id == loan.purchase_id,
            )
        )
        .values(savings_balance_after_fen=balance)
    )
    return AWARDED


def _draw_committed(connection: Connection, campaign_id: str) -> bool:
    found = connection.execute(
        select(finance_draws.c.draw_id).where(
            finance_draws.c.campaign_id == campaign_id
        )
    ).first()
    return found is not None


def _charge_budgets(
    connection: Connection,
    campaign: CampaignConfig,
    user_key: str,
    day: date,
    amount: int,
    count_award: bool,
) -> str | None:
    """Add `amount` to the campaign, user and day counters, or return the limit hit."""
    budget = campaign.budget
    total = connection.execute(
        update(finance_campaigns)
        .where(
            and_(
                finance_campaigns.c.campaign_id == campaign.id,
                finance_campaigns.c.spent_fen + amount <= finance_campaigns.c.total_fen,
            )
        )
        .values(spent_fen=finance_campaigns.c.spent_fen + amount)
    )
    if total.rowcount != 1:
        return "campaign budget exhausted"

    users = finance_campaign_users.c
    user_limits = []
    if budget.per_user_fen is not None:
        user_limits.append(users.spent_fen + amount <= int(budget.per_user_fen))
    if budget.per_user_awards is not None and count_award:
        user_limits.append(users.awards + 1 <= budget.per_user_awards)
    first_fits = budget.per_user_fen is None or amount <= budget.per_user_fen
    charged = _add_to_counter(
        connection,
        finance_campaign_users,
        {"campaign_id": campaign.id, "user_key": user_key},
        {"spent_fen": amount, "awards": 1 if count_award else 0},
        user_limits,
        first_fits,
    )
    if not charged:
        return "per-user limit reached"

    days = finance_campaign_days.c
    day_limits = []
    if budget.per_day_fen is not None:
        day_limits.append(days.spent_fen + amount <= int(budget.per_day_fen))
    first_fits = budget.per_day_fen is None or amount <= budget.per_day_fen
    charged = _add_to_counter(
        connection,
        finance_campaign_days,
        {"campaign_id": campaign.id, "day": day},
        {"spent_fen": amount},
        day_limits,
        first_fits,
    )
    if not charged:
        return "daily budget reached"
    return None


def _add_to_counter(
    connection: Connection,
    table: Table,
    key: dict[str, Any],
    increments: dict[str, int],
    limits: list[Any],
    first_fits: bool,
) -> bool:
    """Add `increments` to the counter row at `key` if `limits` still hold.

    One INSERT ... ON CONFLICT DO UPDATE ... WHERE creates the row or updates
    it under a row lock, so concurrent charges cannot both pass a limit. A new
    row is created only when `first_fits` is true, meaning the first charge is
    within the limits. Returns whether the counter was charged.
    """
    statement: Any = dialect_insert(connection, table)
    if not first_fits:
        exists = connection.execute(
            select(*(table.c[name] for name in key)).where(
                and_(*(table.c[name] == value for name, value in key.items()))
            )
        ).first()
        if exists is None:
            return False
    upsert = (
        statement.values({**key, **increments})
        .on_conflict_do_update(
            index_elements=list(key),
            set_={name: table.c[name] + value for name, value in increments.items()},
            where=and_(*limits) if limits else None,
        )
        .returning(*(table.c[name] for name in key))
    )
    return connection.execute(upsert).first() is not None


def _charge_savings(
    connection: Connection, facility_id: str, amount: int
) -> int | None:
    """Spend `amount` of the facility's accrued savings; return the balance left."""
    columns = finance_facilities.c
    result = connection.execute(
        update(finance_facilities)
        .where(
            and_(
                columns.facility_id == facility_id,
                columns.savings_spent_fen + amount <= columns.accrued_fen,
            )
        )
        .values(savings_spent_fen=columns.savings_spent_fen + amount)
        .returning(columns.accrued_fen, columns.savings_spent_fen)
    ).first()
    if result is None:
        return None
    return int(result.accrued_fen - result.savings_spent_fen)


def _release_award(connection: Connection, award_row: Any, now: datetime) -> bool:
    """Mark a paid award refunded and give its amount back to every budget."""
    marked = connection.execute(
        update(finance_awards)
        .where(
            and_(
                finance_awards.c.id == award_row.id,
                finance_awards.c.status.in_(PAID_STATES),
            )
        )
        .values(status=REFUNDED, refunded_at=now)
    )
    if marked.rowcount != 1:
        return False

    amount = int(award_row.amount_fen)
    connection.execute(
        update(finance_campaigns)
        .where(finance_campaigns.c.campaign_id == award_row.campaign_id)
        .values(spent_fen=finance_campaigns.c.spent_fen - amount)
    )

    users = finance_campaign_users.c
    connection.execute(
        update(finance_campaign_users)
        .where(
            and_(
                users.campaign_id == award_row.campaign_id,
                users.user_key == award_row.user_key,
            )
        )
        .values(spent_fen=users.spent_fen - amount, awards=users.awards - 1)
    )

    days = finance_campaign_days.c
    connection.execute(
        update(finance_campaign_days)
        .where(
            and_(days.campaign_id == award_row.campaign_id, days.day == award_row.day)
        )
        .values(spent_fen=days.spent_fen - amount)
    )

    columns = finance_facilities.c
    connection.execute(
        update(finance_facilities)
        .where(columns.facility_id == award_row.facility_id)
        .values(
            savings_spent_fen=columns.savings_spent_fen - int(award_row.savings_fen)
        )
    )
    return True


# ---------------------------------------------------------------------------
# Revocation and refunds


def revoke_loans(
    engine: Engine, purchase_ids: Sequence[str], reason: str, as_of: date
) -> SubstitutionReport:
    """Mark loans revoked, release them from facilities and substitute others.

    Used when a certification is revoked: the loans lose eligibility, so each
    facility that held them tops up its pool from eligible unallocated loans.
    Their incentive awards stand.
    """
    return _end_loans(engine, purchase_ids, LoanStatus.REVOKED, reason, as_of, False)


def refund_purchases(
    engine: Engine, purchase_ids: Sequence[str], reason: str, as_of: date
) -> SubstitutionReport:
    """Mark loans refunded, return their awards' budget and substitute in facilities."""
    return _end_loans(engine, purchase_ids, LoanStatus.REFUNDED, reason, as_of, True)


def repay_loans(
    engine: Engine, purchase_ids: Sequence[str], reason: str, as_of: date
) -> SubstitutionReport:
    """Mark loans repaid early and substitute them in facilities; awards stand."""
    return _end_loans(engine, purchase_ids, LoanStatus.REPAID, reason, as_of, False)


def _end_loans(
    engine: Engine,
    purchase_ids: Sequence[str],
    status: LoanStatus,
    reason: str,
    as_of: date,
    refund_awards: bool,
) -> SubstitutionReport:
    create_finance_tables(engine)
    requested = tuple(dict.fromkeys(purchase_ids))
    with engine.begin() as connection:
        found = set(
            connection.execute(
                select(finance_loans.c.purchase_id).where(
                    finance_loans.c.purchase_id.in_(requested)
                )
            ).scalars()
        )
        connection.execute(
            update(finance_loans)
            .where(
                and_(
                    finance_loans.c.purchase_id.in_(list(found)),
                    finance_loans.c.status == LoanStatus.ACTIVE.value,
                )
            )
            .values(status=status.value, status_reason=reason, status_on=as_of)
        )
        refunded = 0
        if refund_awards:
            now = datetime.now(UTC)
            rows = connection.execute(
                select(finance_awards).where(
                    finance_awards.c.purchase_id.in_(list(found))
                )
            ).all()
            refunded = sum(1 for row in rows if _release_award(connection, row, now))
        report = SubstitutionReport(
            purchase_ids=requested,
            not_found=tuple(key for key in requested if key not in found),
            awards_refunded=refunded,
        )
        _reallocate_holders(connection, found, as_of, report)
    logger.info(
        "%s %d loans (%d not found): %s",
        status.value,
        len(found),
        len(report.not_found),
        reason,
    )
    return report


def apply_partial_refund(
    engine: Engine, purchase_id: str, refund_fen: int, refunded_on: date
) -> SubstitutionReport:
    """Reduce a loan by a merchant's partial refund and re-measure its facility.

    The outstanding principal falls by the refund and the fee still to come falls
    in proportion. A refund that reaches the principal refunds the whole loan,
    returning its awards' budget. Partial refunds leave awards in place.
    """
    if refund_fen <= 0:
        raise ValueError(f"invalid refund {refund_fen} fen: expected > 0")
    create_finance_tables(engine)
    with engine.begin() as connection:
        query = select(finance_loans).where(finance_loans.c.purchase_id == purchase_id)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = connection.execute(query).one_or_none()
        if row is None:
            return SubstitutionReport(
                purchase_ids=(purchase_id,), not_found=(purchase_id,)
            )
        refunds = [
            *(row.partial_refunds or ()),
            {"on": refunded_on.isoformat(), "fen": refund_fen},
        ]
        total = sum(int(item["fen"]) for item in refunds)
        if total < int(row.principal_fen):
            connection.execute(
                update(finance_loans)
                .where(finance_loans.c.purchase_id == purchase_id)
                .values(partial_refunds=refunds)
            )
            report = SubstitutionReport(purchase_ids=(purchase_id,), not_found=())
            _reallocate_holders(connection, {purchase_id}, refunded_on, report)
            logger.info(
                "partial refund of %d fen on loan %s (%d fen refunded in all)",
                refund_fen,
                purchase_id,
                total,
            )
            return report
    return refund_purchases(
        engine,
        [purchase_id],
        f"refunds of {total} fen reach the principal",
        refunded_on,
    )


def _reallocate_holders(
    connection: Connection,
    purchase_ids: set[str],
    as_of: date,
    report: SubstitutionReport,
) -> None:
    """Re-run the allocation of each facility with an active allocation of the ids.

    On PostgreSQL a concurrent run can allocate one of a facility's new
    candidates to another facility after this transaction read them. The
    insert then raises a unique violation, so each facility's allocation
    runs in a savepoint and runs again, up to ALLOCATION_ATTEMPTS times in all.
    SQLite lets one transaction write at a time, so there it needs none.
    """
    facility_ids = connection.execute(
        select(finance_allocations.c.facility_id)
        .where(
            and_(
                finance_allocations.c.purchase_id.in_(list(purchase_ids)),
                finance_allocations.c.released_on.is_(None),
            )
        )
        .distinct()
    ).scalars()
    concurrent = connection.dialect.name == "postgresql"
    for facility_id in sorted(facility_ids):
        for attempt in range(1, ALLOCATION_ATTEMPTS + 1):
            try:
                with connection.begin_nested() if concurrent else nullcontext():
                    row = _lock_facility(connection, facility_id)
                    facility = FacilityConfig.model_validate(row.config)
                    released, added = _reallocate(connection, facility, as_of)
                break
            except IntegrityError as error:
                if not is_unique_violation(error) or attempt == ALLOCATION_ATTEMPTS:
                    raise
                logger.info(
                    "reallocation of facility %s on %s conflicted with a "
                    "concurrent allocation to another facility (attempt %d of "
                    "%d), so it runs again: %s",
                    facility_id,
                    as_of.isoformat(),
                    attempt,
                    ALLOCATION_ATTEMPTS,
                    getattr(error, "orig", error),
                )
        after = _lock_facility(connection, facility_id)
        report.released[facility_id] = released
        report.added[facility_id] = added
        report.unallocated_fen[facility_id] = int(after.unallocated_fen)
        pool = _pool_fen(connection, facility_id)
        report.pool_covers_drawn[facility_id] = pool >= int(after.drawn_fen)


def _pool_fen(connection: Connection, facility_id: str) -> int:
    return int(
        connection.execute(
            select(
                func.coalesce(func.sum(finance_allocations.c.outstanding_fen), 0)
            ).where(
                and_(
                    finance_allocations.c.facility_id == facility_id,
                    finance_allocations.c.released_on.is_(None),
                )
            )
        ).scalar_one()
    )


# ---------------------------------------------------------------------------
# Lottery draws


def commit_campaign_draw(
    engine: Engine,
    campaign_id: str,
    seed_sha256: str,
    public_value: str = "",
    committed_at: datetime | None = None,
) -> DrawCommitment:
    """Freeze a lottery campaign's entries and store the commitment.

    The operator keeps the seed secret and passes only its SHA-256 here. Entries
    that arrive after the commitment are rejected. Committing again with the
    same seed returns the stored commitment; another seed raises ValueError.
    """
    with engine.begin() as connection:
        campaign_row = connection.execute(
            select(finance_campaigns).where(
                finance_campaigns.c.campaign_id == campaign_id
            )
        ).one_or_none()
        if campaign_row is None:
            raise KeyError(f"campaign {campaign_id!r} not found; run the batch first")
        campaign = CampaignConfig.model_validate(campaign_row.config)
        if not isinstance(campaign.benefit, LotteryRedEnvelope):
            raise ValueError(
                f"invalid campaign {campaign_id!r} for a draw: its benefit is"
                f" {campaign.benefit.kind}; expected lottery_red_envelope"
            )
        entries = list(
            connection.execute(
                select(finance_awards.c.purchase_id).where(
                    and_(
                        finance_awards.c.campaign_id == campaign_id,
                        finance_awards.c.status == ENTERED,
                    )
                )
            ).scalars()
        )
        draw_id = f"{campaign_id}-draw"
        commitment = commit_seed_digest(
            draw_id,
            seed_sha256,
            entries,
            campaign.benefit.winners,
            public_value,
            committed_at,
        )
        _insert_ignore(
            connection,
            finance_draws,
            [
                {
                    "draw_id": draw_id,
                    "campaign_id": campaign_id,
                    "commitment": commitment_to_dict(commitment),
                    "entries": sorted(entries),
                }
            ],
            ["draw_id"],
        )
        stored = connection.execute(
            select(finance_draws).where(finance_draws.c.draw_id == draw_id)
        ).one()
    existing = DrawCommitment(**stored.commitment)
    if existing.seed_sha256 != commitment.seed_sha256:
        raise ValueError(
            f"draw {draw_id!r} is already committed with seed_sha256"
            f" {existing.seed_sha256}; reveal it with that seed"
        )
    return existing


def reveal_campaign_draw(engine: Engine, draw_id: str, seed: bytes) -> DrawRecord:
    """Reveal the seed, rank the frozen entries and pay the winners within budget.

    A winner whose prize would break a budget limit is marked `won_unpaid`. Each
    entry is settled in its own transaction, so revealing the same draw again
    settles only the entries a crash left open and pays nothing twice.
    """
    with engine.begin() as connection:
        draw = connection.execute(
            select(finance_draws).where(finance_draws.c.draw_id == draw_id)
        ).one_or_none()
        if draw is None:
            raise KeyError(f"draw {draw_id!r} not found; commit it first")
        commitment = DrawCommitment(**draw.commitment)
        record = reveal(commitment, seed, draw.entries)
        campaign_row = connection.execute(
            select(finance_campaigns).where(
                finance_campaigns.c.campaign_id == draw.campaign_id
            )
        ).one()
        campaign = CampaignConfig.model_validate(campaign_row.config)
        if draw.seed_hex is None:
            connection.execute(
                update(finance_draws)
                .where(finance_draws.c.draw_id == draw_id)
                .values(
                    seed_hex=seed.hex(),
                    winners=list(record.winners),
                    revealed_at=datetime.now(UTC),
                )
            )
    benefit = campaign.benefit
    if not isinstance(benefit, LotteryRedEnvelope):
        raise ValueError(
            f"invalid campaign {campaign.id!r} for draw {draw_id!r}: its benefit is"
            f" now {benefit.kind}; expected lottery_red_envelope"
        )
    prize = int(yuan_to_fen(benefit.prize_yuan))
    winners = set(record.winners)
    for purchase_id in record.entries:
        _settle_entry(
            engine, campaign, draw_id, purchase_id, purchase_id in winners, prize
        )
    return record


def _settle_entry(
    engine: Engine,
    campaign: CampaignConfig,
    draw_id: str,
    purchase_id: str,
    won: bool,
    prize_fen: int,
) -> None:
    """Pay one winner (or mark one entry lost) in a transaction of its own."""
    with engine.connect() as connection:
        transaction = connection.begin()
        row = connection.execute(
            select(finance_awards).where(
                and_(
                    finance_awards.c.campaign_id == campaign.id,
                    finance_awards.c.purchase_id == purchase_id,
                    finance_awards.c.status == ENTERED,
                )
            )
        ).one_or_none()
        if row is None:
            transaction.rollback()
            return
        if not won:
            _set_award(connection, row.id, LOST, 0, draw_id, None)
            transaction.commit()
            return
        rejection = _charge_budgets(
            connection, campaign, row.user_key, row.day, prize_fen, count_award=True
        )
        balance = None
        if rejection is None:
            balance = _charge_savings(
                connection, campaign.funding.facility_id, prize_fen
            )
        if balance is None:
            transaction.rollback()
            with engine.begin() as marking:
                _set_award(marking, row.id, WON_UNPAID, 0, draw_id, None)
            logger.warning(
                "draw %s: winner %s unpaid: %s",
                draw_id,
                purchase_id,
                rejection or "facility savings exhausted",
            )
            return
        _set_award(connection, row.id, WON, prize_fen, draw_id, balance)
        transaction.commit()


def _set_award(
    connection: Connection,
    award_id: int,
    status: str,
    amount: int,
    draw_id: str,
    balance: int | None,
) -> None:
    connection.execute(
        update(finance_awards)
        .where(finance_awards.c.id == award_id)
        .values(
            status=status,
            amount_fen=amount,
            savings_fen=amount,
            draw_id=draw_id,
            savings_balance_after_fen=balance,
        )
    )


# ---------------------------------------------------------------------------
# Reports


def reconcile_facility(engine: Engine, facility_id: str) -> Reconciliation:
    """Check a stored facility's books: allocated + unallocated == drawn, to the fen."""
    with engine.connect() as connection:
        row = connection.execute(
            select(finance_facilities).where(
                finance_facilities.c.facility_id == facility_id
            )
        ).one()
        active = connection.execute(
            select(finance_allocations).where(
                and_(
                    finance_allocations.c.facility_id == facility_id,
                    finance_allocations.c.released_on.is_(None),
                )
            )
        ).all()
    return reconcile(
        facility_id,
        Decimal(row.drawn_fen),
        {item.purchase_id: Decimal(item.allocated_fen) for item in active},
        Decimal(row.unallocated_fen),
        {item.purchase_id: Decimal(item.outstanding_fen) for item in active},
    )


def build_allocation_report(
    engine: Engine, facilities: FacilitiesFile, as_of: date
) -> dict[str, Any]:
    """Build the per-facility allocation report (amounts in fen and yuan)."""
    report: dict[str, Any] = {}
    with engine.connect() as connection:
        for facility in facilities.facilities:
            row = connection.execute(
                select(finance_facilities).where(
                    finance_facilities.c.facility_id == facility.id
                )
            ).one()
            active = _active_allocations(connection, facility.id)
            released_count = connection.execute(
                select(func.count()).where(
                    and_(
                        finance_allocations.c.facility_id == facility.id,
                        finance_allocations.c.released_on.is_not(None),
                    )
                )
            ).scalar_one()
            report[facility.id] = _facility_section(
                facility, row, active, released_count
            )
    return {"as_of": as_of.isoformat(), "facilities": report}


class _ActiveAllocation(NamedTuple):
    """An active allocation with the category and purchase date of its loan."""

    purchase_id: str
    allocated_fen: int
    outstanding_fen: int
    category: str
    originated_on: date


def _active_allocations(
    connection: Connection, facility_id: str
) -> list[_ActiveAllocation]:
    """Read the facility's active allocations through the driver.

    Only the columns the report uses are read, and purchase times become dates
    without SQLAlchemy's per-row conversion of every date column.
    """
    marker = _placeholder(connection)
    rows = connection.exec_driver_sql(
        "SELECT a.purchase_id, a.allocated_fen, a.outstanding_fen, l.category,"
        " l.occurred_at FROM finance_allocations a JOIN finance_loans l"
        " ON l.purchase_id = a.purchase_id"
        f" WHERE a.facility_id = {marker} AND a.released_on IS NULL",
        (facility_id,),
    ).all()
    dates: dict[str, date] = {}
    return [
        _ActiveAllocation(
            row[0], int(row[1]), int(row[2]), row[3], _stored_date(row[4], dates)
        )
        for row in rows
    ]


def _facility_section(
    facility: FacilityConfig,
    row: Any,
    active: Sequence[_ActiveAllocation],
    released_count: int,
) -> dict[str, Any]:
    per_category: dict[str, int] = {}
    for item in active:
        per_category[item.category] = per_category.get(item.category, 0) + int(
            item.allocated_fen
        )
    # Integer fen, which `reconcile` and `financing_share_of` sum into Decimal
    # totals as they would Decimal amounts.
    allocations = {item.purchase_id: int(item.allocated_fen) for item in active}
    originated = {item.purchase_id: item.originated_on for item in active}
    share = financing_share_of(facility, allocations, originated)
    allocated = sum(allocations.values())
    pool = sum(int(item.outstanding_fen) for item in active)
    drawn = int(row.drawn_fen)
    check = reconcile(
        facility.id,
        Decimal(drawn),
        allocations,
        Decimal(row.unallocated_fen),
        {item.purchase_id: int(item.outstanding_fen) for item in active},
    )
    return {
        "lender": facility.lender,
        "committed_fen": int(facility.committed_fen),
        "drawn_fen": drawn,
        "allocated_fen": allocated,
        "allocated_per_category_fen": dict(sorted(per_category.items())),
        "unallocated_fen": int(row.unallocated_fen),
        "unallocated_placement": facility.unallocated_placement,
        "eligible_pool_fen": pool,
        "pool_covers_drawn": pool >= drawn,
        "loans_allocated": len(active),
        "loans_released": int(released_count),
        "financing_share": None if share is None else str(share),
        "refinancing_share": None if share is None else str(1 - share),
        "lookback_months": facility.lookback_months,
        "savings_accrued_fen": int(row.accrued_fen),
        "savings_spent_fen": int(row.savings_spent_fen),
        "savings_accrued_through": (
            None if row.accrued_through is None else row.accrued_through.isoformat()
        ),
        "facility_rate": str(facility.facility_rate),
        "benchmark_rate": str(facility.benchmark_rate),
        "standard": facility.standard,
        "pool_shortfall_fen": int(check.pool_shortfall_fen),
        "reconciled": check.balanced,
        "reconciliation_problems": list(check.problems),
    }


def build_incentive_report(engine: Engine, campaigns: CampaignsFile) -> dict[str, Any]:
    """Build budget use per campaign and per category group, and cost per tCO2e.

    Avoided emissions are the activity-based lifetime kgCO2e of the rewarded
    loans. A loan rewarded by several campaigns counts in each campaign's
    figure but only once in the group and overall figures. Sums run in SQL, so
    the report costs a few grouped queries whatever the number of awards.
    """
    awards = finance_awards.c
    loans = finance_loans.c
    is_paid = awards.status.in_(PAID_STATES)
    configured = [campaign.id for campaign in campaigns.campaigns]
    with engine.connect() as connection:
        by_status = connection.execute(
            select(
                awards.campaign_id,
                awards.status,
                func.count(),
                func.sum(awards.amount_fen),
            )
            .where(awards.campaign_id.in_(configured))
            .group_by(awards.campaign_id, awards.status)
        ).all()
        kg_by_campaign: dict[str, Any] = dict(
            connection.execute(
                select(awards.campaign_id, _milligram_sum(loans.kg_co2e_lifetime))
                .join(finance_loans, loans.purchase_id == awards.purchase_id)
                .where(and_(is_paid, awards.campaign_id.in_(configured)))
                .group_by(awards.campaign_id)
            ).all()
        )
        by_category = connection.execute(
            select(awards.category, func.count(), func.sum(awards.amount_fen))
            .where(and_(is_paid, awards.campaign_id.in_(configured)))
            .group_by(awards.category)
        ).all()
        rewarded = (
            select(awards.purchase_id)
            .where(and_(is_paid, awards.campaign_id.in_(configured)))
            .distinct()
            .subquery()
        )
        kg_by_category = connection.execute(
            select(loans.category, _milligram_sum(loans.kg_co2e_lifetime))
            .join(rewarded, rewarded.c.purchase_id == loans.purchase_id)
            .group_by(loans.category)
        ).all()
        budgets = {
            row.campaign_id: row
            for row in connection.execute(select(finance_campaigns)).all()
        }

    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for campaign_id, status, count, amount in by_status:
        counts.setdefault(campaign_id, {})[status] = (int(count), int(amount or 0))
    per_campaign = {
        campaign.id: _campaign_section(
            campaign,
            budgets[campaign.id],
            counts.get(campaign.id, {}),
            _kg(kg_by_campaign.get(campaign.id)),
        )
        for campaign in campaigns.campaigns
    }

    groups: dict[str, dict[str, Any]] = {
        group: {"spent_fen": 0, "awards": 0, "kg": Decimal(0)}
        for group in REPORT_GROUP_ORDER
    }
    for category, count, amount in by_category:
        group = groups[report_group(category)]
        group["spent_fen"] += int(amount or 0)
        group["awards"] += int(count)
    for category, kg in kg_by_category:
        groups[report_group(category)]["kg"] += _kg(kg)
    for section in groups.values():
        kg_total = section.pop("kg")
        section["kg_co2e_avoided"] = str(kg_total)
        section["yuan_per_tco2e"] = _cost_per_tonne(section["spent_fen"], kg_total)

    total_fen = sum(section["spent_fen"] for section in groups.values())
    total_kg = sum((_kg(kg) for _, kg in kg_by_category), Decimal(0))
    return {
        "campaigns": per_campaign,
        "groups": groups,
        "spent_per_group_fen": {
            group: section["spent_fen"] for group, section in groups.items()
        },
        "spent_fen": total_fen,
        "kg_co2e_avoided": str(total_kg),
        "yuan_per_tco2e": _cost_per_tonne(total_fen, total_kg),
    }


REPORT_GROUP_ORDER = ("public_transport", "green_food", "green_appliances", "other")


def _campaign_section(
    campaign: CampaignConfig,
    budget_row: Any,
    counts: Mapping[str, tuple[int, int]],
    kg: Decimal,
) -> dict[str, Any]:
    awards = sum(counts.get(status, (0, 0))[0] for status in PAID_STATES)
    spent = sum(counts.get(status, (0, 0))[1] for status in PAID_STATES)
    return {
        "benefit": campaign.benefit.kind,
        "facility_id": campaign.funding.facility_id,
        "budget_fen": int(budget_row.total_fen),
        "spent_fen": int(budget_row.spent_fen),
        "remaining_fen": int(budget_row.total_fen) - int(budget_row.spent_fen),
        "awards": awards,
        "entries": counts.get(ENTERED, (0, 0))[0],
        "refunded": counts.get(REFUNDED, (0, 0))[0],
        "kg_co2e_avoided": str(kg),
        "yuan_per_tco2e": _cost_per_tonne(spent, kg),
    }


def _milligram_sum(kg_column: Any) -> Any:
    """Return SQL that totals a kgCO2e column in whole milligrams.

    Each value is rounded to the milligram and the integers are added, which
    SQLite and PostgreSQL do exactly, so the total does not depend on the
    order in which the rows are added (PostgreSQL's parallel plans change it).
    """
    return func.sum(cast(func.round(kg_column * MILLIGRAMS_PER_KG), BigInteger))


def _kg(milligrams: int | Decimal | None) -> Decimal:
    """Convert a total in milligrams from `_milligram_sum` to kgCO2e, to the gram."""
    if milligrams is None:
        return Decimal(0)
    return (Decimal(int(milligrams)) / MILLIGRAMS_PER_KG).quantize(Decimal("0.001"))


def _cost_per_tonne(spent_fen: int, kg_co2e: Decimal) -> str | None:
    """Return yuan spent per tonne of CO2e avoided, or None without a known saving."""
    if kg_co2e <= 0:
        return None
    return str((fen_to_yuan(spent_fen) / (kg_co2e / 1000)).quantize(Decimal("0.01")))


def _loan_results(
    engine: Engine, loans: Sequence[GreenLoan], errors: Mapping[str, str]
) -> dict[str, LoanResult]:
    """Read back each loan's plan figures, facility and awards.

    Loans are read RESULT_BLOCK at a time, so memory grows with the results
    and not with the stored rows.
    """
    results: dict[str, LoanResult] = {}
    with engine.connect() as connection:
        campaign_ids = list(
            connection.exec_driver_sql(
                "SELECT DISTINCT campaign_id FROM finance_awards"
            ).scalars()
        )
        for start in range(0, len(loans), RESULT_BLOCK):
            block = loans[start : start + RESULT_BLOCK]
            ids = [loan.purchase_id for loan in block if loan.purchase_id not in errors]
            results.update(_block_results(connection, block, ids, errors, campaign_ids))
    return results


def _block_results(
    connection: Connection,
    block: Sequence[GreenLoan],
    ids: list[str],
    errors: Mapping[str, str],
    campaign_ids: Sequence[str],
) -> dict[str, LoanResult]:
    facility_of: dict[str, str] = {}
    awards: dict[str, list[AwardSummary]] = {}
    stored = _stored_loans(
        _rows_by_ids(connection, STORED_LOAN_QUERY + " WHERE purchase_id {ids}", ids)
    )
    # Results keep one copy of each facility id, campaign id, kind and status
    # instead of one string per row read.
    texts: dict[str, str] = {}
    for purchase_id, facility_id in _rows_by_ids(
        connection,
        "SELECT purchase_id, facility_id FROM finance_allocations"
        " WHERE released_on IS NULL AND purchase_id {ids}",
        ids,
    ):
        facility_of[purchase_id] = texts.setdefault(facility_id, facility_id)
    award_rows = _awards_by_ids(
        connection,
        "id, purchase_id, campaign_id, benefit_kind, amount_fen, status",
        ids,
        campaign_ids,
    )
    award_rows.sort(key=lambda row: row[0])
    for _, purchase_id, campaign_id, kind, amount, status in award_rows:
        awards.setdefault(purchase_id, []).append(
            AwardSummary(
                texts.setdefault(campaign_id, campaign_id),
                texts.setdefault(kind, kind),
                int(amount),
                texts.setdefault(status, status),
            )
        )
    figures = {
        row.purchase_id: (plan_figures, row.consumer_fee_waived)
        for row, plan_figures in zip(stored, _fees_and_rates(stored), strict=True)
    }
    results = {}
    for loan in block:
        error = errors.get(loan.purchase_id)
        found = figures.get(loan.purchase_id)
        if error is not None or found is None:
            results[loan.purchase_id] = LoanResult(
                loan.purchase_id,
                None,
                None,
                None,
                False,
                None,
                (),
                error or "not stored",
            )
            continue
        plan_figures, waived = found
        results[loan.purchase_id] = LoanResult(
            purchase_id=loan.purchase_id,
            fee_fen=plan_figures.fee_fen,
            apr=plan_figures.apr,
            effective_annual_rate=plan_figures.effective_annual_rate,
            consumer_fee_waived=bool(waived),
            facility_id=facility_of.get(loan.purchase_id),
            awards=tuple(awards.get(loan.purchase_id, ())),
            rate_error=plan_figures.rate_error,
        )
    return results


# ---------------------------------------------------------------------------
# Portable helpers


def _insert_ignore(
    connection: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]
) -> int:
    """Insert rows, skipping those whose `keys` already exist.

    For a single row, return 1 when it was inserted and 0 when it existed. The
    check reads the RETURNING row, because psycopg reports no usable rowcount for
    an INSERT that returns the generated key. For several rows the count comes
    from the driver and may be -1.
    """
    if not rows:
        return 0
    statement: Any = dialect_insert(connection, table).on_conflict_do_nothing(
        index_elements=keys
    )
    if len(rows) == 1:
        returned = statement.values(rows[0]).returning(*(table.c[key] for key in keys))
        return 0 if connection.execute(returned).first() is None else 1
    return int(connection.execute(statement, rows).rowcount)


def _insert_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    keys: list[str] | None = None,
) -> None:
    """Insert value tuples through the driver, skipping rows whose `keys` exist.

    Without `keys`, an existing row raises IntegrityError.

    Each value first goes through its column type's bind processor, so it is
    stored exactly as a SQLAlchemy insert would store it. The rows go to the
    driver in bulk (executemany, an array statement or COPY), without
    SQLAlchemy's per-row parameter handling.
    """
    if not rows:
        return
    dialect = connection.dialect
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in columns
    ]
    converting = [
        (position, processor)
        for position, processor in enumerate(processors)
        if processor is not None
    ]
    if converting:
        # Rows often share a value, such as one creation time for the batch,
        # so the last conversion of each column is reused.
        last: dict[int, tuple[Any, Any]] = {}
        converted = []
        for row in rows:
            values = list(row)
            for position, processor in converting:
                value = values[position]
                previous = last.get(position)
                if previous is not None and previous[0] is value:
                    values[position] = previous[1]
                    continue
                values[position] = processor(value)
                last[position] = (value, values[position])
            converted.append(tuple(values))
        rows = converted
    marker = _placeholder(connection)
    names = ", ".join(columns)
    conflict = f" ON CONFLICT ({', '.join(keys)}) DO NOTHING" if keys else ""
    if dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_insert(connection, table, columns, rows, conflict)
        return
    if dialect.name == "postgresql":
        # One array per column in one statement: psycopg's executemany sends
        # a statement per row.
        arrays = ", ".join(
            f"{marker}::{table.c[name].type.compile(dialect=dialect)}[]"
            for name in columns
        )
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays})"
            f"{conflict}",
            tuple(list(values) for values in zip(*rows, strict=True)),
        )
        return
    statement = (
        f"INSERT INTO {table.name} ({names})"
        f" VALUES ({', '.join([marker] * len(columns))}){conflict}"
    )
    connection.exec_driver_sql(statement, rows)


def _copy_insert(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    conflict: str,
) -> None:
    """Insert rows on PostgreSQL with COPY.

    Without a conflict clause the rows go straight into the table. With one,
    they go into a temporary table that lives until the transaction ends, and
    an INSERT ... SELECT applies the clause. COPY sends the values without
    parsing statement parameters: at 100,000 loans it took about two thirds
    of the time of one INSERT with an array parameter per column.
    """
    names = ", ".join(columns)
    target = table.name
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conflict:
            target = f"{table.name}_stage"
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {target}"
                f" (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {target}")
        copy_rows(cursor, f"{target} ({names})", rows)
        if conflict:
            cursor.execute(
                f"INSERT INTO {table.name} ({names})"
                f" SELECT {names} FROM {target}{conflict}"
            )
    except connection.dialect.loaded_dbapi.IntegrityError as error:
        # Raised as SQLAlchemy's error, as an insert through SQLAlchemy would be.
        raise IntegrityError(f"COPY {target}", None, error) from error
    finally:
        cursor.close()


def _placeholder(connection: Connection) -> str:
    """Return the driver's positional parameter marker."""
    style = connection.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(
        f"unsupported driver parameter style {style!r}: use SQLite or PostgreSQL"
        " with psycopg"
    )


def _rows_by_ids(
    connection: Connection,
    query: str,
    ids: Sequence[str],
    parameters: tuple[Any, ...] = (),
) -> list[Sequence[Any]]:
    """Run `query` through the driver for `ids`, returning raw rows.

    `{ids}` in the query marks where the membership test goes, after the
    markers of `parameters`. PostgreSQL gets RESULT_BLOCK ids per statement
    as one array parameter, SQLite CHUNK ids as separate parameters.

    NOTE: the plans of `= ANY(...)` were not checked on PostgreSQL tables of
    millions of rows without statistics. There the ledger's duplicate check,
    on a two-column key, was planned as a scan of the whole table.
    """
    marker = _placeholder(connection)
    rows: list[Sequence[Any]] = []
    if connection.dialect.name == "postgresql":
        for start in range(0, len(ids), RESULT_BLOCK):
            chunk = list(ids[start : start + RESULT_BLOCK])
            statement = query.format(ids=f"= ANY({marker})")
            rows.extend(
                connection.exec_driver_sql(statement, (*parameters, chunk)).all()
            )
        return rows
    for start in range(0, len(ids), CHUNK):
        values = tuple(ids[start : start + CHUNK])
        statement = query.format(ids=f"IN ({', '.join([marker] * len(values))})")
        rows.extend(connection.exec_driver_sql(statement, (*parameters, *values)).all())
    return rows


def _awards_by_ids(
    connection: Connection,
    columns: str,
    ids: Sequence[str],
    campaign_ids: Sequence[str],
) -> list[Sequence[Any]]:
    """Read the award rows of `campaign_ids` for the purchase ids.

    The only index on purchase ids is the unique key (campaign_id,
    purchase_id), so naming the campaigns lets the database seek that index
    instead of scanning every award once per block of ids.
    """
    if not campaign_ids or not ids:
        return []
    marker = _placeholder(connection)
    campaigns = ", ".join([marker] * len(campaign_ids))
    if connection.dialect.name == "postgresql":
        # A join with the unnested ids lets PostgreSQL hash them. With
        # `= ANY(array)` it tested every award of the campaigns against the
        # whole array (0.19 s per block of 2,000 ids at 5,000 awards).
        rows: list[Sequence[Any]] = []
        statement = (
            f"SELECT {columns} FROM finance_awards"
            f" JOIN unnest({marker}::text[]) AS batch(purchase_id) USING (purchase_id)"
            f" WHERE campaign_id IN ({campaigns})"
        )
        for start in range(0, len(ids), RESULT_BLOCK):
            chunk = list(ids[start : start + RESULT_BLOCK])
            rows.extend(
                connection.exec_driver_sql(statement, (chunk, *campaign_ids)).all()
            )
        return rows
    return _rows_by_ids(
        connection,
        f"SELECT {columns} FROM finance_awards"
        f" WHERE campaign_id IN ({campaigns}) AND purchase_id {{ids}}",
        ids,
        tuple(campaign_ids),
    )
