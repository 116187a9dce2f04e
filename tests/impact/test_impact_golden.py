"""Worked examples, with every factor value and its source written out.

Factor values used below (all from the packaged factor sets):
- China national grid 2023: 0.5306 kgCO2/kWh (MEE and NBS, announced Jan 2026).
- North China grid 2023: 0.6361; Southwest 2023: 0.2472 kgCO2/kWh (same source).
- Hebei 2022: 0.7252 kgCO2/kWh (MEE and NBS 2022 provincial factors).
- Room AC, GB 21455-2019, split heat pump up to 4,500 W: APF grade 1 = 5.00,
  grade 2 = 4.50, grade 3 = 4.00, grade 5 = 3.30; reference unit 3.5 kW x 955
  equivalent full-load hours (CNIS registry analysis); lifetime 10 years (CHEAA).
- US grid (eGRID2023, EPA Hub Jan 2025): 0.35164 kgCO2e/kWh, subregions from
  0.109571 (NYUP) to 0.702292 (PRMS). Refrigerator lifetime 10 years (CHEAA,
  applied to US units).
- Guangzhou metro: 0.5419 kgCO2 avoided per trip (substitution), 0.5155 (mean).
- Petrol car: 7.04 L/100 km x 2.3194 kgCO2/L (EPA 8.78 kg/gal).
- BEV: 15.1 kWh/100 km (CLTC limit), 12.1 at the high end (2021 average), and
  10 % charging losses at the low end.
- Vehicle use: 15,000 km a year for 10 years.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from impact_helpers import green

from greenloop.categories import Category
from greenloop.impact import Basis, ImpactCalculator

AC_GRADE_1 = {"appliance_type": "room_air_conditioner", "energy_label_grade": 1}


def test_ac_grade_one_national(calculator: ImpactCalculator) -> None:
    # load = 3.5 kW x 955 h = 3,342.5 kWh thermal a year
    # grade 1: 3,342.5 / 5.00 = 668.5 kWh; grade 3: 3,342.5 / 4.00 = 835.625 kWh
    # saving = 167.125 kWh x 0.5306 = 88.676525 kg a year, x 10 years = 886.76525 kg
    impact = calculator.impact(green(Category.APPLIANCE, **AC_GRADE_1), 1.0, "CN")
    assert impact is not None
    assert impact.basis == Basis.ACTIVITY
    assert impact.method == "appliance-grade-savings"
    assert impact.kg_co2e_per_year == pytest.approx(88.676525)
    assert impact.kg_co2e_lifetime == pytest.approx(886.76525)
    assert impact.lifetime_years == 10
    assert impact.grid_level == "national"
    assert impact.extra["kwh_saved_per_year"] == pytest.approx(167.125)


def test_ac_grade_one_range(calculator: ImpactCalculator) -> None:
    # low: against grade 2, 3,342.5 / 4.50 = 742.778 kWh, saving 74.278 kWh
    #      x 0.5306 x 10 = 394.118 kg
    # high: against grade 5, 3,342.5 / 3.30 = 1,012.879 kWh, saving 344.379 kWh
    #      x 0.5306 x 10 = 1,827.274 kg
    impact = calculator.impact(green(Category.APPLIANCE, **AC_GRADE_1), 1.0, "CN")
    assert impact is not None
    assert impact.low_kg_co2e_lifetime == pytest.approx(394.1179, rel=1e-6)
    assert impact.high_kg_co2e_lifetime == pytest.approx(1827.2738, rel=1e-6)


def test_ac_region_north_southwest(calculator: ImpactCalculator) -> None:
    # Beijing is on the North grid: 167.125 x 0.6361 = 106.3082 kg a year.
    # Sichuan is on the Southwest grid: 167.125 x 0.2472 = 41.3133 kg a year.
    verdict = green(Category.APPLIANCE, **AC_GRADE_1)
    north = calculator.impact(verdict, 1.0, "北京")
    southwest = calculator.impact(verdict, 1.0, "Sichuan")
    assert north is not None
    assert southwest is not None
    assert north.kg_co2e_per_year == pytest.approx(106.3082, rel=1e-6)
    assert north.grid_level == "regional"
    assert north.region_used == "CN:north"
    assert southwest.kg_co2e_per_year == pytest.approx(41.3133, rel=1e-5)
    assert north.kg_co2e_per_year / southwest.kg_co2e_per_year == pytest.approx(
        0.6361 / 0.2472
    )


def test_ac_provincial_factor_2022(calculator_2022: ImpactCalculator) -> None:
    # With the 2022 factors Hebei has its own value: 167.125 x 0.7252 = 121.199 kg.
    impact = calculator_2022.impact(
        green(Category.APPLIANCE, **AC_GRADE_1), 1.0, "河北省"
    )
    assert impact is not None
    assert impact.grid_level == "provincial"
    assert impact.region_used == "CN-HE"
    assert impact.kg_co2e_per_year == pytest.approx(121.19905)


ENERGY_STAR_ID = "2229666"


def _refrigerator_row(shared_data: Path) -> dict[str, str]:
    path = shared_data / "energy-star" / "refrigerators.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["ENERGY STAR Unique ID"] == ENERGY_STAR_ID:
                return row
    raise AssertionError(f"ENERGY STAR id {ENERGY_STAR_ID} not found in {path}")


def test_energy_star_refrigerator_file(
    calculator: ImpactCalculator, shared_data: Path
) -> None:
    # Absocold ARD1033F*14R/L: federal standard 331 kWh/yr, certified use 297.
    # saving = 34 kWh x 0.35164 = 11.95576 kg a year, x 10 years = 119.5576 kg
    row = _refrigerator_row(shared_data)
    verdict = green(
        Category.ENERGY_STAR,
        product_type="refrigerator",
        annual_kwh=float(row["Annual Energy Use (kWh/yr)"]),
        federal_standard_kwh=float(row["US Federal Standard (kWh/yr)"]),
        energy_star_id=row["ENERGY STAR Unique ID"],
    )
    impact = calculator.impact(verdict, 1.0, "US")
    assert impact is not None
    assert row["Model Number"] == "ARD1033F*14R/L"
    assert impact.method == "energy-star-savings"
    assert impact.kg_co2e_per_year == pytest.approx(11.95576)
    assert impact.kg_co2e_lifetime == pytest.approx(119.5576)
    assert impact.extra["energy_star_id"] == ENERGY_STAR_ID
    # range over eGRID2023 subregions: 34 x 0.109571 x 10 = 37.25414 kg (NYUP)
    # to 34 x 0.702292 x 10 = 238.77928 kg (PRMS)
    assert impact.low_kg_co2e_lifetime == pytest.approx(37.25414)
    assert impact.high_kg_co2e_lifetime == pytest.approx(238.77928)


def test_metro_ten_rides(calculator: ImpactCalculator) -> None:
    # 10 trips x 0.5419 kg = 5.419 kg; low 10 x 0.5155 = 5.155 kg
    impact = calculator.impact(green(Category.PUBLIC_TRANSPORT, mode="metro"), 10, None)
    assert impact is not None
    assert impact.kg_co2e_per_year == pytest.approx(5.419)
    assert impact.kg_co2e_lifetime == pytest.approx(5.419)
    assert impact.low_kg_co2e_lifetime == pytest.approx(5.155)


def test_bus_ride_scaled_by_ratios(calculator: ImpactCalculator) -> None:
    # car/bus = 4, car/rail transit = 7 per passenger-km:
    # 0.5419 x (1 - 1/4) / (1 - 1/7) = 0.5419 x 0.875 = 0.4741625 kg
    impact = calculator.impact(green(Category.PUBLIC_TRANSPORT, mode="bus"))
    assert impact is not None
    assert impact.kg_co2e_per_year == pytest.approx(0.4741625)


def test_bev_national_2023(calculator: ImpactCalculator) -> None:
    # petrol: 7.04 / 100 x 2.3194 = 0.16328576 kg/km
    # BEV:   15.1 / 100 x 0.5306 = 0.0801206 kg/km
    # saving = 0.08316516 kg/km x 15,000 km = 1,247.4774 kg a year; x 10 = 12,474.774
    impact = calculator.impact(green(Category.NEW_ENERGY_VEHICLE, vehicle_kind="bev"))
    assert impact is not None
    assert impact.method == "nev-use-phase-savings"
    assert impact.kg_co2e_per_year == pytest.approx(1247.4774)
    assert impact.kg_co2e_lifetime == pytest.approx(12474.774)


def test_bev_range_bounds(calculator: ImpactCalculator) -> None:
    # low, with 10 % charging loss: 15.1/100 x 1.1 x 0.5306 = 0.08813266 kg/km,
    #   (0.16328576 - 0.08813266) x 15,000 x 10 = 11,272.965 kg
    # high, efficient BEV: 12.1/100 x 0.5306 = 0.0642026 kg/km,
    #   (0.16328576 - 0.0642026) x 15,000 x 10 = 14,862.474 kg
    impact = calculator.impact(green(Category.NEW_ENERGY_VEHICLE, vehicle_kind="bev"))
    assert impact is not None
    assert impact.low_kg_co2e_lifetime == pytest.approx(11272.965)
    assert impact.high_kg_co2e_lifetime == pytest.approx(14862.474)


def test_phev_half_electric(calculator: ImpactCalculator) -> None:
    # half the BEV saving: 0.5 x 1,247.4774 = 623.7387 kg a year
    impact = calculator.impact(green(Category.NEW_ENERGY_VEHICLE, vehicle_kind="phev"))
    assert impact is not None
    assert impact.kg_co2e_per_year == pytest.approx(623.7387)


def test_spend_estimate_euro_2019(calculator: ImpactCalculator) -> None:
    # EUR in 2019 needs neither conversion nor deflation:
    # 100 EUR x 0.422205 kgCO2e/EUR (MCC 5722, China, memobank) = 42.2205 kg
    estimate = calculator.spend_estimate(
        Decimal("100"), "EUR", 5722, None, "CN-GD", 2019
    )
    assert estimate is not None
    assert estimate.basis == Basis.SPEND_ESTIMATE
    assert estimate.kg_co2e_per_year == pytest.approx(42.2205)
    assert estimate.extra["licence"] == "CC BY-SA 4.0"


def test_spend_estimate_yuan_2021(calculator: ImpactCalculator) -> None:
    # 1,000 CNY in 2021: deflate to 2019 prices with China CPI 2020 +2.5 % and
    # 2021 +0.9 %, then convert at 7.7355 CNY/EUR (2019):
    # 1000 / (1.025 x 1.009) / 7.7355 = 124.9949 EUR x 0.422205 = 52.7735 kg
    estimate = calculator.spend_estimate(
        Decimal("1000"), "CNY", 5722, None, "广东", 2021
    )
    assert estimate is not None
    assert estimate.kg_co2e_per_year == pytest.approx(52.7735, rel=1e-5)
