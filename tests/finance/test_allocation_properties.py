"""Property tests of allocation and substitution (Hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from finance_helpers import facility_dict
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.funding import FacilityConfig, LoanPosition, LoanStatus, allocate

AS_OF = date(2026, 6, 30)
FACILITY = FacilityConfig.model_validate(facility_dict())

loan_positions = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=900_000),
        st.sampled_from(["appliance", "new_energy_vehicle", "green_food"]),
        st.integers(min_value=0, max_value=400),
        st.sampled_from(list(LoanStatus)),
    ),
    max_size=25,
)


def build(specs: list[tuple[int, str, int, LoanStatus]]) -> dict[str, LoanPosition]:
    return {
        f"p{index}": LoanPosition(
            f"p{index}",
            category,
            date(2025, 8, 1) + timedelta(days=offset),
            Decimal(outstanding),
            Decimal(outstanding),
            status,
        )
        for index, (outstanding, category, offset, status) in enumerate(specs)
    }


@settings(max_examples=150, deadline=None)
@given(loan_positions, st.data())
def test_allocation_invariants(
    specs: list[tuple[int, str, int, LoanStatus]], data: st.DataObject
) -> None:
    loans = build(specs)
    allocated_before = (
        data.draw(st.sets(st.sampled_from(sorted(loans)))) if loans else set()
    )
    current = {key: loans[key].outstanding_fen for key in allocated_before}
    result = allocate(FACILITY, AS_OF, current, loans)

    assert result.allocated_fen + result.unallocated_fen == result.drawn_fen
    assert result.unallocated_fen >= 0
    for key, amount in result.allocations.items():
        assert 0 < amount <= loans[key].outstanding_fen
        assert loans[key].status is LoanStatus.ACTIVE
    assert set(result.released).isdisjoint(result.allocations)
    assert set(result.released) | set(result.allocations) >= allocated_before
    assert result.pool_covers_drawn == (result.unallocated_fen == 0)


@settings(max_examples=100, deadline=None)
@given(loan_positions)
def test_allocation_is_stable_on_rerun(
    specs: list[tuple[int, str, int, LoanStatus]],
) -> None:
    loans = build(specs)
    first = allocate(FACILITY, AS_OF, {}, loans)
    second = allocate(FACILITY, AS_OF, first.allocations, loans)
    assert second.allocations == first.allocations
    assert second.added == ()
    assert second.released == {}
