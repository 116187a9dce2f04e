"""Use of proceeds: allocating green loans to a facility, and substituting them.

Portfolio rule: the outstanding principal of the eligible loans tagged to a
facility (the eligible pool) should be at least the amount drawn. Each tagged
loan is allocated its outstanding principal, except the last one, which is
allocated only what is needed, so that allocated plus unallocated equals the
drawn amount to the fen. A loan that is repaid, refunded or loses eligibility
is released and replaced by the oldest eligible loans not yet allocated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from greenloop.funding.config import FacilityConfig
from greenloop.lending.money import ZERO, add_months, yuan_to_fen


class LoanStatus(StrEnum):
    """The life-cycle state of a green loan, as far as funding is concerned."""

    ACTIVE = "active"
    REPAID = "repaid"
    REFUNDED = "refunded"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """A green loan's position on one date, as input to the allocation."""

    purchase_id: str
    category: str
    originated_on: date
    principal_fen: Decimal
    outstanding_fen: Decimal
    status: LoanStatus = LoanStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """A facility's allocations after one pass, and what changed."""

    facility_id: str
    as_of: date
    drawn_fen: Decimal
    allocations: dict[str, Decimal]
    pool_fen: Decimal
    added: tuple[str, ...] = ()
    released: dict[str, str] = field(default_factory=dict)

    @property
    def allocated_fen(self) -> Decimal:
        """The total allocated to loans."""
        return sum(self.allocations.values(), ZERO)

    @property
    def unallocated_fen(self) -> Decimal:
        """The drawn amount not yet allocated to loans."""
        return self.drawn_fen - self.allocated_fen

    @property
    def pool_covers_drawn(self) -> bool:
        """Whether the eligible pool is at least the drawn amount."""
        return self.pool_fen >= self.drawn_fen


def ineligibility_reason(facility: FacilityConfig, loan: LoanPosition) -> str | None:
    """Return why `loan` may not fund `facility`, or None when it may."""
    return _FacilityRules.of(facility).reason(loan)


@dataclass(frozen=True, slots=True)
class _FacilityRules:
    """A facility's eligibility limits, computed once for checking many loans."""

    categories: frozenset[str]
    min_loan_yuan: Decimal
    min_loan_fen: Decimal
    earliest: date
    maturity_date: date

    @classmethod
    def of(cls, facility: FacilityConfig) -> _FacilityRules:
        return cls(
            categories=frozenset(str(item) for item in facility.eligible_categories),
            min_loan_yuan=facility.min_loan_yuan,
            min_loan_fen=yuan_to_fen(facility.min_loan_yuan),
            earliest=add_months(facility.first_drawdown, -facility.lookback_months),
            maturity_date=facility.maturity_date,
        )

    def reason(self, loan: LoanPosition) -> str | None:
        if loan.status is not LoanStatus.ACTIVE:
            return f"loan is {loan.status.value}"
        if loan.outstanding_fen <= 0:
            return "loan is fully repaid"
        if loan.category not in self.categories:
            return f"category {loan.category} is not eligible for the facility"
        if loan.principal_fen < self.min_loan_fen:
            return (
                f"principal is below the facility minimum of {self.min_loan_yuan} yuan"
            )
        if loan.originated_on < self.earliest:
            return f"originated before the look-back start {self.earliest}"
        if loan.originated_on > self.maturity_date:
            return f"originated after the facility matures on {self.maturity_date}"
        return None


def allocate(
    facility: FacilityConfig,
    as_of: date,
    current: Mapping[str, Decimal],
    loans: Mapping[str, LoanPosition],
    taken_elsewhere: Iterable[str] = (),
) -> AllocationResult:
    """Re-measure current allocations on `as_of`, release and substitute loans.

    `current` maps purchase ids to their allocated amount before this pass;
    `loans` contains the position of every known loan; `taken_elsewhere` lists loans
    allocated to other facilities, which are never allocated twice.
    """
    drawn = facility.drawn_fen(as_of)
    rules = _FacilityRules.of(facility)
    released: dict[str, str] = {}
    retained: list[LoanPosition] = []
    for purchase_id in current:
        loan = loans.get(purchase_id)
        reason = "loan not found" if loan is None else rules.reason(loan)
        if reason is None and loan is not None:
            retained.append(loan)
        else:
            released[purchase_id] = reason or "loan not found"

    excluded = set(current) | set(taken_elsewhere)
    candidates = [
        loan
        for purchase_id, loan in loans.items()
        if purchase_id not in excluded and rules.reason(loan) is None
    ]
    ordered = sorted(retained, key=_age_order) + sorted(candidates, key=_age_order)

    allocations: dict[str, Decimal] = {}
    allocated = ZERO  # running total of `allocations`, so each step is O(1)
    pool = ZERO
    added = []
    for loan in ordered:
        need = drawn - allocated
        if need <= 0:
            if loan.purchase_id in current:
                released[loan.purchase_id] = (
                    "not needed: the pool exceeds the drawn amount"
                )
            continue
        allocations[loan.purchase_id] = min(loan.outstanding_fen, need)
        allocated += allocations[loan.purchase_id]
        pool += loan.outstanding_fen
        if loan.purchase_id not in current:
            added.append(loan.purchase_id)
    return AllocationResult(
        facility_id=facility.id,
        as_of=as_of,
        drawn_fen=drawn,
        allocations=allocations,
        pool_fen=pool,
        added=tuple(added),
        released=released,
    )


def financing_share(
    facility: FacilityConfig,
    allocations: Mapping[str, Decimal],
    loans: Mapping[str, LoanPosition],
) -> Decimal | None:
    """Share of the allocated amount that finances loans made after the first drawdown.

    The rest refinances loans from the look-back period. None when nothing is
    allocated.
    """
    originated = {
        purchase_id: loans[purchase_id].originated_on for purchase_id in allocations
    }
    return financing_share_of(facility, allocations, originated)


def financing_share_of(
    facility: FacilityConfig,
    allocations: Mapping[str, Decimal | int],
    originated: Mapping[str, date],
) -> Decimal | None:
    """Compute `financing_share` from each allocated loan's origination date."""
    total = Decimal(sum(allocations.values(), ZERO))
    if total == 0:
        return None
    first_drawdown = facility.first_drawdown
    financing = Decimal(
        sum(
            (
                amount
                for purchase_id, amount in allocations.items()
                if originated[purchase_id] >= first_drawdown
            ),
            ZERO,
        )
    )
    return (financing / total).quantize(Decimal("0.0001"))


def _age_order(loan: LoanPosition) -> tuple[date, str]:
    return (loan.originated_on, loan.purchase_id)
