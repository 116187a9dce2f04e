"""Reconciliation of a facility: allocated plus unallocated equals drawn, to the fen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from greenloop.lending.money import ZERO


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The check of one facility's books on one date."""

    facility_id: str
    drawn_fen: Decimal
    allocated_fen: Decimal
    unallocated_fen: Decimal
    pool_fen: Decimal
    problems: tuple[str, ...]

    @property
    def balanced(self) -> bool:
        """Whether the books balance: every accounting check passed."""
        return not self.problems

    @property
    def pool_covers_drawn(self) -> bool:
        """Whether the eligible pool is at least the drawn amount (portfolio rule)."""
        return self.pool_fen >= self.drawn_fen

    @property
    def pool_shortfall_fen(self) -> Decimal:
        """How much eligible principal the pool lacks to cover the drawn amount."""
        return max(self.drawn_fen - self.pool_fen, ZERO)


def reconcile(
    facility_id: str,
    drawn_fen: Decimal,
    allocations: Mapping[str, Decimal | int],
    unallocated_fen: Decimal,
    outstanding: Mapping[str, Decimal | int],
) -> Reconciliation:
    """Check the stored allocations and unallocated balance against the drawn amount.

    `outstanding` maps each allocated purchase id to its outstanding principal.
    Amounts are whole fen, as Decimal or int, and the totals are Decimal.
    The accounting checks are: allocated + unallocated == drawn, no negative
    amount, and no loan allocated more than it owes. Whether the eligible pool
    covers the drawn amount is reported apart, because a shortfall is a funding
    gap to close with new loans, not an error in the books.
    """
    # Integer sums are exact and, for whole fen, equal the Decimal sums.
    allocated = Decimal(sum(allocations.values(), 0))
    pool = Decimal(sum((outstanding.get(key, 0) for key in allocations), 0))
    problems = []
    if allocated + unallocated_fen != drawn_fen:
        problems.append(
            f"allocated {allocated} + unallocated {unallocated_fen} fen differs from"
            f" drawn {drawn_fen} fen by {allocated + unallocated_fen - drawn_fen} fen"
        )
    if unallocated_fen < 0:
        problems.append(f"unallocated balance {unallocated_fen} fen is negative")
    # Only the allocations with a problem are sorted, for a stable message order.
    wrong = [
        (purchase_id, amount)
        for purchase_id, amount in allocations.items()
        if purchase_id not in outstanding
        or amount <= 0
        or amount > outstanding[purchase_id]
    ]
    for purchase_id, amount in sorted(wrong):
        owed = outstanding.get(purchase_id)
        if owed is None:
            problems.append(f"loan {purchase_id} is allocated but not found")
        elif amount <= 0 or amount > owed:
            problems.append(
                f"loan {purchase_id} is allocated {amount} fen but owes {owed} fen"
            )
    return Reconciliation(
        facility_id=facility_id,
        drawn_fen=drawn_fen,
        allocated_fen=allocated,
        unallocated_fen=unallocated_fen,
        pool_fen=pool,
        problems=tuple(problems),
    )
