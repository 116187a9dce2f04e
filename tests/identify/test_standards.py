"""Tests of the standards files and their loader."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.categories import Category, Jurisdiction
from greenloop.cli import app
from greenloop.standards import (
    DATA_DIR,
    StandardsError,
    all_standards,
    load_standard_file,
    load_standards,
)

TODAY = date(2026, 12, 4)

MINIMAL_ORGANIC = """\
id: cn.organic_food
jurisdiction: cn
category: organic_food
title: Organic food
summary: Organic code found in the registry.
evidence: [organic code]
parameters:
  code_pattern:
    description: Organic code form.
    kind: pattern
    unit: regular expression
    values:
      2024-01-01:
        value: '^\\d{17}$'
        source: {title: Certification system, url: https://example.org}
        last_checked: 2026-12-04
"""


def write_standard(folder: Path, text: str, name: str = "organic_food.yaml") -> Path:
    target = folder / "cn"
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_standards_all_load() -> None:
    ids = {standard.id for standard in all_standards()}
    assert "cn.appliance" in ids
    assert "us.energy_star" in ids
    assert "eu.eu_ecolabel" in ids
    assert len(ids) == 14


@pytest.mark.parametrize(
    "category",
    [
        Category.APPLIANCE,
        Category.NEW_ENERGY_VEHICLE,
        Category.PUBLIC_TRANSPORT,
        Category.ORGANIC_FOOD,
        Category.GREEN_FOOD,
        Category.GREEN_PRODUCT,
        Category.ENVIRONMENTAL_LABEL,
        Category.SECOND_HAND,
    ],
)
def test_china_covers_each_category(category: Category) -> None:
    assert category in load_standards("cn")


def test_every_value_cites_source() -> None:
    for standard in all_standards():
        for name, parameter in standard.parameters.items():
            for effective, dated in parameter.values.items():
                where = f"{standard.id}.{name}@{effective}"
                assert dated.source.url or dated.source.document, where
                assert dated.last_checked >= effective or effective > TODAY, where


def test_appliance_values_by_date() -> None:
    standard = load_standards("cn")[Category.APPLIANCE]
    assert len(standard.value("appliance_types", date(2024, 12, 31))) == 8
    assert len(standard.value("appliance_types", date(2025, 1, 15))) == 12
    assert standard.value("qualifying_max_grade", TODAY) == 2
    assert standard.value("top_tier_grade", TODAY) == 1


def test_edition_switches_on_effective_date() -> None:
    standard = load_standards("cn")[Category.APPLIANCE]
    before = standard.value("label_standards", date(2026, 5, 31))
    after = standard.value("label_standards", date(2026, 6, 1))
    assert before["refrigerator"] == "GB 12021.2-2015"
    assert after["refrigerator"] == "GB 12021.2-2025"


def test_version_is_latest_effective_date() -> None:
    standard = load_standards("cn")[Category.APPLIANCE]
    assert standard.version(date(2026, 5, 31)) == "2025-01-15"
    assert standard.version(date(2026, 6, 1)) == "2026-06-01"
    assert standard.version(date(2027, 4, 1)) == "2027-04-01"


def test_version_none_before_first_value() -> None:
    standard = load_standards("cn")[Category.APPLIANCE]
    assert standard.version(date(2000, 1, 1)) is None
    with pytest.raises(LookupError, match="no value in force"):
        standard.value("qualifying_max_grade", date(2000, 1, 1))


def test_minimal_file_loads(tmp_path: Path) -> None:
    path = write_standard(tmp_path, MINIMAL_ORGANIC)
    standard = load_standard_file(path)
    assert standard.id == "cn.organic_food"
    assert standard.version(TODAY) == "2024-01-01"


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write_standard(tmp_path, MINIMAL_ORGANIC + "colour: green\n")
    with pytest.raises(StandardsError) as raised:
        load_standard_file(path)
    message = str(raised.value)
    assert str(path) in message
    assert "colour" in message
    assert "unknown key" in message


def test_unknown_nested_key_rejected(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace(
        "        last_checked:", "        checked_by: me\n        last_checked:"
    )
    path = write_standard(tmp_path, text)
    with pytest.raises(
        StandardsError,
        match=r"parameters\.code_pattern\.values\.2024-01-01\.checked_by",
    ):
        load_standard_file(path)


def test_malformed_value_names_expected_form(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace("'^\\d{17}$'", "'^[0-9'")
    path = write_standard(tmp_path, text)
    with pytest.raises(StandardsError) as raised:
        load_standard_file(path)
    message = str(raised.value)
    assert "code_pattern" in message
    assert "invalid regular expression" in message
    assert "expected a regular expression" in message


def test_wrong_kind_value_rejected(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace("kind: pattern", "kind: integer")
    path = write_standard(tmp_path, text)
    with pytest.raises(StandardsError, match="expected a whole number"):
        load_standard_file(path)


def test_bad_date_key_rejected(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace("      2024-01-01:", "      2024-13-01:")
    path = write_standard(tmp_path, text)
    with pytest.raises(StandardsError, match=r"month must be in 1\.\.12"):
        load_standard_file(path)


def test_source_without_reference_rejected(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace(", url: https://example.org", "")
    path = write_standard(tmp_path, text)
    with pytest.raises(StandardsError, match="url or a document"):
        load_standard_file(path)


def test_missing_required_parameter_rejected(tmp_path: Path) -> None:
    text = MINIMAL_ORGANIC.replace("code_pattern:", "other_pattern:")
    path = write_standard(tmp_path, text)
    with pytest.raises(StandardsError, match=r"parameters\.code_pattern is missing"):
        load_standard_file(path)


def test_misplaced_file_rejected(tmp_path: Path) -> None:
    path = write_standard(tmp_path, MINIMAL_ORGANIC, name="green_food.yaml")
    with pytest.raises(
        StandardsError, match=r"must be stored as cn/organic_food\.yaml"
    ):
        load_standard_file(path)


def test_invalid_yaml_rejected(tmp_path: Path) -> None:
    path = write_standard(tmp_path, "id: [unclosed\n")
    with pytest.raises(StandardsError, match="invalid YAML"):
        load_standard_file(path)


def test_unknown_jurisdiction_rejected() -> None:
    with pytest.raises(StandardsError, match="expected one of cn, us, eu"):
        load_standards("xx")


def test_copied_data_folder_loads(tmp_path: Path) -> None:
    shutil.copytree(DATA_DIR, tmp_path / "data")
    loaded = load_standards(Jurisdiction.US, tmp_path / "data")
    assert Category.ENERGY_STAR in loaded


def test_cli_list_prints_sources() -> None:
    result = CliRunner().invoke(
        app, ["standards", "list", "--standard", "cn", "--as-of", "2026-12-04"]
    )
    assert result.exit_code == 0, result.output
    assert "cn.appliance" in result.output
    assert "2026-06-01" in result.output
    assert "source:" in result.output


def test_cli_show_marks_value_in_force() -> None:
    result = CliRunner().invoke(
        app, ["standards", "show", "cn.appliance", "--as-of", "2026-12-04"]
    )
    assert result.exit_code == 0, result.output
    assert " * from 2026-06-01" in result.output
    assert "GB 12021.2-2025" in result.output


def test_cli_show_unknown_id_fails() -> None:
    result = CliRunner().invoke(app, ["standards", "show", "cn.nothing"])
    assert result.exit_code == 1
    assert "not found" in result.output
