"""Summaries of grouped impacts equal summaries of the purchases one by one."""

from __future__ import annotations

import dataclasses

import pytest

from greenloop.impact import summarize_impacts
from greenloop.impact.record import Basis, Impact

UNIT = Impact(
    method="public-transport-trip-savings",
    method_version="1.0",
    basis=Basis.ACTIVITY,
    kg_co2e_per_year=0.25,
    kg_co2e_lifetime=0.25,
    low_kg_co2e_lifetime=0.2,
    high_kg_co2e_lifetime=0.3,
    lifetime_years=1.0,
)


def _times(impact: Impact, factor: float) -> Impact:
    return dataclasses.replace(
        impact,
        kg_co2e_per_year=impact.kg_co2e_per_year * factor,
        kg_co2e_lifetime=impact.kg_co2e_lifetime * factor,
        low_kg_co2e_lifetime=impact.low_kg_co2e_lifetime * factor,
        high_kg_co2e_lifetime=impact.high_kg_co2e_lifetime * factor,
    )


def test_grouped_rows_match_single_rows():
    single = summarize_impacts(
        [("public_transport", "CN-BJ", UNIT)] * 3
        + [("public_transport", "CN-SH", _times(UNIT, 2))] * 2
    )
    grouped = summarize_impacts(
        [
            ("public_transport", "CN-BJ", _times(UNIT, 3), 3),
            ("public_transport", "CN-SH", _times(UNIT, 4), 2),
        ]
    )
    assert grouped["activity"]["run"] == pytest.approx(single["activity"]["run"])
    for region in ("CN-BJ", "CN-SH"):
        assert grouped["activity"]["by_region"][region] == pytest.approx(
            single["activity"]["by_region"][region]
        )
    assert grouped["icma_impact_table"]["total_annual_t_co2e_avoided"] == (
        pytest.approx(single["icma_impact_table"]["total_annual_t_co2e_avoided"])
    )
    assert grouped["activity"]["methods"] == single["activity"]["methods"]
