"""summarize_impacts: totals per category, region and run, bases kept apart."""

from __future__ import annotations

from decimal import Decimal

import pytest
from impact_helpers import green

from greenloop.categories import Category
from greenloop.impact import ImpactCalculator, summarize_impacts
from greenloop.impact.record import Impact

AC = {"appliance_type": "room_air_conditioner", "energy_label_grade": 1}


def _rows(calculator: ImpactCalculator) -> list[tuple[str | None, str | None, Impact]]:
    ac = green(Category.APPLIANCE, **AC)
    metro = green(Category.PUBLIC_TRANSPORT, mode="metro")
    rows = []
    # national (no region), regional (Guangdong, South grid), national (CN)
    for region in (None, "CN-GD", "CN"):
        impact = calculator.impact(ac, 1.0, region)
        assert impact is not None
        rows.append(("appliance", region, impact))
    trips = calculator.impact(metro, 20, "CN-GD")
    assert trips is not None
    rows.append(("public_transport", "CN-GD", trips))
    estimate = calculator.spend_estimate(
        Decimal("1000"), "EUR", 5722, "appliance", "CN-GD", 2019
    )
    assert estimate is not None
    rows.append(("appliance", "CN-GD", estimate))
    return rows


def test_activity_totals_per_run(calculator: ImpactCalculator) -> None:
    # AC: 167.125 kWh x (0.5306 + 0.4042 + 0.5306) = 244.904975 kg a year;
    # metro: 20 x 0.5419 = 10.838 kg. Run: 255.742975 kg = 0.255742975 t a year.
    summary = summarize_impacts(_rows(calculator))
    run = summary["activity"]["run"]
    assert run["purchases"] == 4
    assert run["t_co2e_per_year"] == pytest.approx(0.255742975)
    # lifetime: 244.904975 x 10 + 10.838 = 2459.88775 kg
    assert run["t_co2e_lifetime"] == pytest.approx(2.45988775)


def test_spend_totals_kept_apart(calculator: ImpactCalculator) -> None:
    # 1,000 EUR of 2019 x 0.422205 = 422.205 kg, only under spend_estimate.
    summary = summarize_impacts(_rows(calculator))
    spend = summary["spend_estimate"]["run"]
    assert spend["purchases"] == 1
    assert spend["t_co2e_per_year"] == pytest.approx(0.422205)
    table = summary["icma_impact_table"]
    assert table["total_annual_t_co2e_avoided"] == pytest.approx(
        summary["activity"]["run"]["t_co2e_per_year"]
    )
    assert "spend-estimate@1.0" not in {m for r in table["rows"] for m in r["methods"]}


def test_grid_factor_use_counted(calculator: ImpactCalculator) -> None:
    summary = summarize_impacts(_rows(calculator))
    assert summary["activity"]["grid_factor_use"] == {
        "provincial": 0,
        "regional": 1,
        "national": 2,
        "no_grid_factor": 1,
    }


def test_totals_per_category_region(calculator: ImpactCalculator) -> None:
    summary = summarize_impacts(_rows(calculator))
    by_category = summary["activity"]["by_category"]
    by_region = summary["activity"]["by_region"]
    assert by_category["appliance"]["purchases"] == 3
    assert by_category["public_transport"]["t_co2e_per_year"] == pytest.approx(0.010838)
    assert set(by_region) == {"unknown", "CN-GD", "CN"}
    # Guangdong: AC 167.125 x 0.4042 = 67.551925 kg + metro 10.838 kg
    assert by_region["CN-GD"]["t_co2e_per_year"] == pytest.approx(0.078389925)


def test_icma_table_lists_sources(calculator: ImpactCalculator) -> None:
    summary = summarize_impacts(_rows(calculator))
    table = summary["icma_impact_table"]
    assert table["metric"] == "Annual GHG emissions reduced/avoided (tCO2e)"
    categories = [row["category"] for row in table["rows"]]
    assert categories == ["appliance", "public_transport"]
    assert table["rows"][0]["methods"] == ["appliance-grade-savings@1.0"]
    assert "cn-grid" in table["rows"][0]["factor_sets"]
    sources = {(s["factor_set"], s["factor_id"]): s for s in summary["factor_sources"]}
    grid = sources[("cn-grid", "national.2023")]
    assert grid["value"] == 0.5306
    assert grid["url"]
    assert sources[("spend-mcc", "mcc.5722.CN")]["licence"] == "CC BY-SA 4.0"


def test_empty_summary_zero() -> None:
    summary = summarize_impacts([])
    assert summary["activity"]["run"]["purchases"] == 0
    assert summary["activity"]["run"]["t_co2e_per_year"] == 0
    assert summary["icma_impact_table"]["rows"] == []
