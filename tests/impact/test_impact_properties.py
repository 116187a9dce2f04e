"""Hypothesis properties: savings never negative, monotonic, linear in quantity."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from impact_helpers import green

from greenloop.categories import Category
from greenloop.identify.verdict import Verdict
from greenloop.impact import ImpactCalculator
from greenloop.impact.regions import PROVINCE_CODES

REGIONS = st.one_of(
    st.none(),
    st.sampled_from(sorted(PROVINCE_CODES)),
    st.sampled_from(["CN", "US", "GB", "DE", "unknown place", "广东省"]),
)
QUANTITIES = st.floats(min_value=0, max_value=10_000, allow_nan=False)

QUALIFYING_VERDICTS = st.one_of(
    st.builds(
        lambda grade: green(
            Category.APPLIANCE,
            appliance_type="room_air_conditioner",
            energy_label_grade=grade,
        ),
        st.integers(min_value=1, max_value=2),
    ),
    st.builds(
        lambda annual, saving: green(
            Category.ENERGY_STAR,
            product_type="refrigerator",
            annual_kwh=annual,
            federal_standard_kwh=annual + saving,
        ),
        st.floats(min_value=0, max_value=2_000),
        st.floats(min_value=0, max_value=500),
    ),
    st.builds(
        lambda kind: green(Category.NEW_ENERGY_VEHICLE, vehicle_kind=kind),
        st.sampled_from(["bev", "phev"]),
    ),
    st.builds(
        lambda mode: green(Category.PUBLIC_TRANSPORT, mode=mode),
        st.sampled_from(["metro", "bus", "rail"]),
    ),
    st.builds(
        lambda kind: green(Category.SECOND_HAND, item_kind=kind),
        st.sampled_from(["phone", "laptop", "clothing", "furniture", "appliance"]),
    ),
)

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@PROPERTY_SETTINGS
@given(verdict=QUALIFYING_VERDICTS, quantity=QUANTITIES, region=REGIONS)
def test_savings_never_negative(
    calculator: ImpactCalculator, verdict: Verdict, quantity: float, region: str | None
) -> None:
    impact = calculator.impact(verdict, quantity, region)
    if impact is None:
        return
    assert impact.kg_co2e_per_year >= 0
    assert impact.kg_co2e_lifetime >= 0
    assert impact.low_kg_co2e_lifetime >= 0
    assert impact.low_kg_co2e_lifetime <= impact.kg_co2e_lifetime
    assert impact.kg_co2e_lifetime <= impact.high_kg_co2e_lifetime


@PROPERTY_SETTINGS
@given(verdict=QUALIFYING_VERDICTS, quantity=QUANTITIES, region=REGIONS)
def test_impact_linear_in_quantity(
    calculator: ImpactCalculator, verdict: Verdict, quantity: float, region: str | None
) -> None:
    unit = calculator.impact(verdict, 1.0, region)
    scaled = calculator.impact(verdict, quantity, region)
    assert (unit is None) == (scaled is None)
    if unit is None or scaled is None:
        return
    assert scaled.kg_co2e_per_year == pytest.approx(quantity * unit.kg_co2e_per_year)
    assert scaled.kg_co2e_lifetime == pytest.approx(quantity * unit.kg_co2e_lifetime)
    assert scaled.low_kg_co2e_lifetime == pytest.approx(
        quantity * unit.low_kg_co2e_lifetime
    )
    assert scaled.high_kg_co2e_lifetime == pytest.approx(
        quantity * unit.high_kg_co2e_lifetime
    )


@PROPERTY_SETTINGS
@given(
    grades=st.tuples(
        st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=5)
    ),
    region=REGIONS,
)
def test_savings_monotonic_in_grade(
    calculator: ImpactCalculator, grades: tuple[int, int], region: str | None
) -> None:
    better, worse = sorted(grades)

    def saving(grade: int) -> float:
        verdict = green(
            Category.APPLIANCE,
            appliance_type="room_air_conditioner",
            energy_label_grade=grade,
        )
        impact = calculator.impact(verdict, 1.0, region)
        assert impact is not None
        return impact.kg_co2e_lifetime

    assert saving(better) >= saving(worse)


@PROPERTY_SETTINGS
@given(
    uses=st.tuples(
        st.floats(min_value=0, max_value=2_000), st.floats(min_value=0, max_value=2_000)
    ),
    standard=st.floats(min_value=0, max_value=2_500),
)
def test_savings_monotonic_in_kwh(
    calculator: ImpactCalculator, uses: tuple[float, float], standard: float
) -> None:
    lower, higher = sorted(uses)

    def saving(annual_kwh: float) -> float:
        verdict = green(
            Category.ENERGY_STAR,
            product_type="refrigerator",
            annual_kwh=annual_kwh,
            federal_standard_kwh=standard,
        )
        impact = calculator.impact(verdict, 1.0, "US")
        assert impact is not None
        return impact.kg_co2e_per_year

    assert saving(lower) >= saving(higher)


@PROPERTY_SETTINGS
@given(
    amount=st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False),
    factor=st.integers(min_value=0, max_value=1_000),
    currency=st.sampled_from(["CNY", "USD", "GBP", "EUR"]),
    year=st.one_of(st.none(), st.integers(min_value=2005, max_value=2030)),
)
def test_spend_estimate_linear_in_amount(
    calculator: ImpactCalculator,
    amount: Decimal,
    factor: int,
    currency: str,
    year: int | None,
) -> None:
    unit = calculator.spend_estimate(Decimal(1), currency, 5722, None, "CN", year)
    scaled = calculator.spend_estimate(
        amount * factor, currency, 5722, None, "CN", year
    )
    assert unit is not None
    assert scaled is not None
    assert scaled.kg_co2e_per_year == pytest.approx(
        float(amount * factor) * unit.kg_co2e_per_year, rel=1e-9
    )


def test_energy_star_file_never_negative(
    calculator: ImpactCalculator, shared_data: Path
) -> None:
    path = shared_data / "energy-star" / "refrigerators.csv"
    negatives = []
    zero_savings = 0
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            verdict = green(
                Category.ENERGY_STAR,
                product_type="refrigerator",
                annual_kwh=float(row["Annual Energy Use (kWh/yr)"]),
                federal_standard_kwh=float(row["US Federal Standard (kWh/yr)"]),
            )
            impact = calculator.impact(verdict, 1.0, "US")
            assert impact is not None
            if impact.kg_co2e_per_year < 0:
                negatives.append(row["ENERGY STAR Unique ID"])
            if impact.kg_co2e_per_year == 0:
                zero_savings += 1
    assert negatives == []
    # 8 rows list use above the standard; rows equal to it save nothing too.
    assert zero_savings >= 8
