"""ImpactCalculator: which verdicts get an Impact, grid choice, spend estimates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from impact_helpers import green

from greenloop.categories import Category, Status
from greenloop.identify.verdict import Verdict
from greenloop.impact import Basis, ImpactCalculator
from greenloop.impact.regions import PROVINCE_CODES

AC = {"appliance_type": "room_air_conditioner", "energy_label_grade": 1}


def test_not_green_has_no_impact(calculator: ImpactCalculator) -> None:
    for status in (Status.NEEDS_REVIEW, Status.NOT_GREEN):
        verdict = Verdict(status, Category.APPLIANCE, "s", "1", attributes=AC)
        assert calculator.impact(verdict) is None


@pytest.mark.parametrize(
    "category",
    [
        Category.ORGANIC_FOOD,
        Category.GREEN_FOOD,
        Category.GREEN_PRODUCT,
        Category.ENVIRONMENTAL_LABEL,
        Category.EU_ECOLABEL,
    ],
)
def test_category_without_method(
    calculator: ImpactCalculator, category: Category
) -> None:
    assert calculator.impact(green(category)) is None


@pytest.mark.parametrize(
    ("category", "attributes"),
    [
        (Category.APPLIANCE, {"appliance_type": "room_air_conditioner"}),
        (Category.APPLIANCE, {"energy_label_grade": 1}),
        (Category.APPLIANCE, {"appliance_type": "refrigerator",
                              "energy_label_grade": 1}),
        (Category.APPLIANCE, {**AC, "energy_label_grade": 7}),
        (Category.APPLIANCE, {**AC, "energy_label_standard": "GB 12021.3-2010"}),
        (Category.ENERGY_STAR, {"product_type": "refrigerator", "annual_kwh": 300}),
        (Category.ENERGY_STAR, {"product_type": "freezer", "annual_kwh": 300,
                                "federal_standard_kwh": 350}),
        (Category.NEW_ENERGY_VEHICLE, {"vehicle_kind": "fcev"}),
        (Category.NEW_ENERGY_VEHICLE, {}),
        (Category.PUBLIC_TRANSPORT, {"mode": "ferry"}),
        (Category.SECOND_HAND, {"item_kind": "book"}),
        (Category.SECOND_HAND, {"item_kind": "other"}),
    ],
)  # fmt: skip
def test_missing_data_gives_none(
    calculator: ImpactCalculator, category: Category, attributes: dict
) -> None:
    assert calculator.impact(green(category, **attributes)) is None


def test_matching_standard_edition_counts(calculator: ImpactCalculator) -> None:
    verdict = green(Category.APPLIANCE, **AC, energy_label_standard="GB 21455-2019")
    impact = calculator.impact(verdict)
    assert impact is not None
    assert impact.extra["energy_label_standard"] == "GB 21455-2019"


def test_grade_three_saves_nothing(calculator: ImpactCalculator) -> None:
    verdict = green(Category.APPLIANCE, **{**AC, "energy_label_grade": 3})
    impact = calculator.impact(verdict)
    assert impact is not None
    assert impact.kg_co2e_per_year == 0
    assert any("not better than the baseline" in a for a in impact.assumptions)


def test_negative_quantity_rejected(calculator: ImpactCalculator) -> None:
    with pytest.raises(ValueError, match="invalid quantity -1"):
        calculator.impact(green(Category.APPLIANCE, **AC), -1)


def test_unknown_region_uses_national(calculator: ImpactCalculator) -> None:
    impact = calculator.impact(green(Category.APPLIANCE, **AC), 1.0, "Atlantis")
    assert impact is not None
    assert impact.grid_level == "national"
    assert impact.region_used == "CN"
    assert any("region unknown" in a for a in impact.assumptions)


def test_foreign_country_falls_back(calculator: ImpactCalculator) -> None:
    impact = calculator.impact(green(Category.APPLIANCE, **AC), 1.0, "GB")
    assert impact is not None
    assert impact.region_used == "CN"
    assert any("No grid factor for region GB" in a for a in impact.assumptions)


def test_energy_star_in_china_uses_cn_grid(calculator: ImpactCalculator) -> None:
    verdict = green(
        Category.ENERGY_STAR,
        product_type="refrigerator",
        annual_kwh=400,
        federal_standard_kwh=444,
    )
    impact = calculator.impact(verdict, 1.0, "CN-SH")
    assert impact is not None
    assert impact.region_used == "CN:east"
    # 44 kWh x 0.5500 (East China grid 2023) = 24.2 kg a year
    assert impact.kg_co2e_per_year == pytest.approx(24.2)


def test_washer_baseline_from_imef(calculator: ImpactCalculator) -> None:
    # baseline = 100 kWh x IMEF 2.76 / federal IMEF 1.84 = 150 kWh, saving 50 kWh
    # 50 kWh x 0.35164 = 17.582 kg a year, over 8 years = 140.656 kg
    verdict = green(
        Category.ENERGY_STAR,
        product_type="clothes_washer",
        annual_kwh=100,
        imef=2.76,
        federal_standard_imef=1.84,
    )
    impact = calculator.impact(verdict, 1.0, "US")
    assert impact is not None
    assert impact.kg_co2e_per_year == pytest.approx(17.582)
    assert impact.kg_co2e_lifetime == pytest.approx(140.656)
    assert any("IMEF" in a for a in impact.assumptions)


def test_public_transport_outside_china(calculator: ImpactCalculator) -> None:
    verdict = green(Category.PUBLIC_TRANSPORT, mode="metro")
    assert calculator.impact(verdict, 1.0, "GB") is None
    assert calculator.impact(verdict, 1.0, "CN-GD") is not None


def test_second_hand_labels_uncertainty(calculator: ImpactCalculator) -> None:
    impact = calculator.impact(green(Category.SECOND_HAND, item_kind="laptop"))
    assert impact is not None
    assert impact.assumptions[0].startswith("Uncertain:")
    assert impact.low_kg_co2e_lifetime < impact.kg_co2e_lifetime
    assert impact.kg_co2e_lifetime < impact.high_kg_co2e_lifetime


def test_impact_records_factor_versions(calculator: ImpactCalculator) -> None:
    impact = calculator.impact(green(Category.APPLIANCE, **AC), 1.0, "CN")
    assert impact is not None
    versions = calculator.versions()
    refs = {(ref.factor_set, ref.factor_id) for ref in impact.factors}
    assert ("cn-grid", "national.2023") in refs
    assert all(ref.version == versions[ref.factor_set] for ref in impact.factors)


def test_spend_falls_back_to_category(calculator: ImpactCalculator) -> None:
    # No MCC: COICOP 5.3 household appliances, China, 2.087510 kgCO2e per EUR 2011.
    estimate = calculator.spend_estimate(
        Decimal("10"), "EUR", None, "appliance", "CN", 2011
    )
    assert estimate is not None
    assert estimate.extra["spend_factor"] == "category.appliance.CN"
    assert estimate.kg_co2e_per_year == pytest.approx(20.8751, rel=1e-5)


def test_spend_without_factor_none(calculator: ImpactCalculator) -> None:
    assert calculator.spend_estimate(Decimal(5), "EUR", 9999, None, "CN", 2020) is None
    assert (
        calculator.spend_estimate(Decimal(5), "EUR", 5722, None, "Atlantis", 2020)
        is not None
    )
    assert calculator.spend_estimate(Decimal(5), "EUR", 5722, None, "BR", 2020) is None


def test_spend_unknown_currency_none(calculator: ImpactCalculator) -> None:
    assert "XYZ" not in calculator.currencies
    assert calculator.spend_estimate(Decimal(5), "XYZ", 5722, None, "CN", 2020) is None


def test_spend_kept_as_estimate(calculator: ImpactCalculator) -> None:
    estimate = calculator.spend_estimate(Decimal(100), "CNY", 5931, None, None, None)
    assert estimate is not None
    assert estimate.basis == Basis.SPEND_ESTIMATE
    assert estimate.method == "spend-estimate"
    assert any("region unknown" in a for a in estimate.assumptions)
    assert any("year unknown" in a for a in estimate.assumptions)


def test_spend_dollars_deflated(calculator: ImpactCalculator) -> None:
    # 112.95 USD in 2020: deflate with US CPI 2020 +1.2 % to 2019 prices, then
    # 1.1195 USD/EUR: 112.95 / 1.012 / 1.1195 = 99.6961 EUR x 0.223960 (MCC 5722, US)
    estimate = calculator.spend_estimate(
        Decimal("112.95"), "usd", 5722, None, "US", 2020
    )
    assert estimate is not None
    assert estimate.kg_co2e_per_year == pytest.approx(99.6961 * 0.22396, rel=1e-5)


def test_spend_missing_currency_none(calculator: ImpactCalculator) -> None:
    assert calculator.spend_estimate(Decimal(5), "", 5722, None, "CN", 2020) is None


@pytest.mark.parametrize("as_of_year", [2022, 2023])
def test_every_province_has_grid(
    calculator: ImpactCalculator, calculator_2022: ImpactCalculator, as_of_year: int
) -> None:
    chosen = calculator if as_of_year == 2023 else calculator_2022
    verdict = green(Category.APPLIANCE, **AC)
    for province in sorted(PROVINCE_CODES):
        impact = chosen.impact(verdict, 1.0, province)
        assert impact is not None, province
        assert impact.grid_level in ("provincial", "regional"), province
        # 167.125 kWh saved a year times whichever factor was chosen
        grid = impact.extra["grid_kg_co2_per_kwh"]
        assert impact.kg_co2e_per_year == pytest.approx(167.125 * grid), province
