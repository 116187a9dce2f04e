"""Factor sets: strict loading, provenance on every value, compliance kept apart."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from greenloop.impact import FactorSetError, ImpactCalculator
from greenloop.impact.factorsets import (
    FactorStatus,
    index_factor_sets,
    load_factor_set,
    load_packaged_factor_sets,
    parse_factor_set,
)
from greenloop.impact.grid import GridSelector

VALID_SET = """
id: test-set
version: "1"
title: Test set
description: A set for tests.
licence: Apache-2.0
last_checked: 2026-12-04
factors:
  - id: a.value
    value: 0.5
    unit: kgCO2/kWh
    year: 2023
    status: reported
    source: {title: A publication, url: https://example.org/a}
    last_checked: 2026-12-04
"""


def test_valid_set_parses() -> None:
    factor_set = parse_factor_set(VALID_SET, "test.yaml")
    assert factor_set.id == "test-set"
    assert factor_set.value("a.value") == 0.5


def test_unknown_factor_key_rejected() -> None:
    text = VALID_SET.replace("    year: 2023\n", "    year: 2023\n    yeer: 2024\n")
    with pytest.raises(FactorSetError) as error:
        parse_factor_set(text, "factors/typo.yaml")
    message = str(error.value)
    assert "factors/typo.yaml" in message
    assert "factors.0.yeer" in message


def test_unknown_top_key_rejected() -> None:
    text = VALID_SET.replace("licence:", "license_typo: x\nlicence:")
    with pytest.raises(FactorSetError, match="license_typo"):
        parse_factor_set(text, "typo.yaml")


def test_missing_source_rejected() -> None:
    text = VALID_SET.replace(
        "    source: {title: A publication, url: https://example.org/a}\n", ""
    )
    with pytest.raises(FactorSetError, match=r"factors\.0\.source"):
        parse_factor_set(text, "nosource.yaml")


def test_duplicate_factor_id_rejected() -> None:
    entry = VALID_SET.split("factors:\n", 1)[1]
    with pytest.raises(FactorSetError, match=r"duplicate factor id 'a\.value'"):
        parse_factor_set(VALID_SET + entry, "dup.yaml")


def test_duplicate_set_id_rejected() -> None:
    first = parse_factor_set(VALID_SET, "one.yaml")
    second = parse_factor_set(VALID_SET, "two.yaml")
    with pytest.raises(FactorSetError, match=r"one\.yaml and two\.yaml"):
        index_factor_sets([first, second])


def test_non_mapping_rejected() -> None:
    with pytest.raises(FactorSetError, match="expected a mapping"):
        parse_factor_set("- just\n- a list\n", "list.yaml")


def test_missing_factor_names_set(tmp_path: Path) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(VALID_SET, encoding="utf-8")
    factor_set = load_factor_set(path)
    with pytest.raises(FactorSetError, match=r"'b\.value' not found in factor set"):
        factor_set.get("b.value")


def test_packaged_values_have_provenance() -> None:
    sets = load_packaged_factor_sets()
    for factor_set in sets.values():
        for factor in factor_set.spec.factors:
            assert factor.source.title, f"{factor_set.id}/{factor.id} has no source"
            assert factor.unit, f"{factor_set.id}/{factor.id} has no unit"
            assert factor.last_checked <= date.today()
            if factor.status == FactorStatus.DERIVED:
                assert factor.derivation, f"{factor_set.id}/{factor.id} lacks formula"


def test_grid_years_all_published() -> None:
    grid = load_packaged_factor_sets()["cn-grid"]
    national = {f.year: f.value for f in grid.with_prefix("national.")}
    assert national == {2021: 0.5568, 2022: 0.5366, 2023: 0.5306}
    assert all(f.published is not None for f in grid.spec.factors)


def test_compliance_factor_kept_apart() -> None:
    sets = load_packaged_factor_sets()
    compliance = sets["cn-grid-compliance"]
    assert compliance.value("compliance.national") == 0.5703
    assert compliance.spec.for_methods is False
    assert all(f.value != 0.5703 for f in sets["cn-grid"].spec.factors)


def test_compliance_never_used_by_methods(calculator: ImpactCalculator) -> None:
    assert "cn-grid-compliance" in calculator.versions()
    assert "cn-grid-compliance" not in calculator.book.sets


def test_as_of_picks_grid_year() -> None:
    assert ImpactCalculator.load(date(2024, 6, 1)).grid_year == 2021
    assert ImpactCalculator.load(date(2025, 6, 1)).grid_year == 2022
    assert ImpactCalculator.load(date(2026, 2, 1)).grid_year == 2023


def test_as_of_before_any_factor() -> None:
    with pytest.raises(FactorSetError, match="published on or before 2020-01-01"):
        ImpactCalculator.load(date(2020, 1, 1))


def test_spend_sets_carry_licence() -> None:
    sets = load_packaged_factor_sets()
    assert sets["spend-mcc"].spec.licence == "CC BY-SA 4.0"
    assert "memobank" in (sets["spend-mcc"].spec.attribution or "")
    assert sets["spend-category"].spec.licence.startswith("MIT")


def _packaged_grid_text() -> str:
    packaged = resources.files("greenloop.impact.factors").joinpath("cn_grid.yaml")
    return packaged.read_text(encoding="utf-8")


def _grid_selector(text: str) -> GridSelector:
    return GridSelector(parse_factor_set(text, "cn_grid.yaml"), None, date(2026, 12, 1))


def test_grid_unit_checked() -> None:
    text = _packaged_grid_text().replace(
        "    value: 0.5306\n    unit: kgCO2/kWh",
        "    value: 0.5306\n    unit: tCO2/MWh",
    )
    with pytest.raises(FactorSetError, match="has unit 'tCO2/MWh'"):
        _grid_selector(text)


def test_grid_group_unknown_code() -> None:
    text = _packaged_grid_text().replace("CN-LN, CN-JL", "CN-LN, CN-XX")
    with pytest.raises(FactorSetError, match="lists 'CN-XX'"):
        _grid_selector(text)


def test_grid_group_duplicate_code() -> None:
    text = _packaged_grid_text().replace("CN-LN, CN-JL", "CN-LN, CN-GD")
    with pytest.raises(FactorSetError, match="CN-GD is in both"):
        _grid_selector(text)


def test_grid_group_missing_province() -> None:
    text = _packaged_grid_text().replace("CN-LN, CN-JL, CN-HL", "CN-LN, CN-JL")
    with pytest.raises(FactorSetError, match="leave out CN-HL"):
        _grid_selector(text)
