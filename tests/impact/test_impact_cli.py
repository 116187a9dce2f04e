"""The `greenloop factors` and `greenloop impact` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.cli import app

AS_OF = "2026-12-04"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def registries(tmp_path: Path) -> Path:
    """Write a registry folder with one filed air conditioner and one NEV model."""
    (tmp_path / "snapshot.yaml").write_text(
        "registries:\n"
        "  energy_label: {file: energy_label.csv, snapshot_date: 2026-11-30,"
        " source: test filings, max_age_days: 90}\n"
        "  nev_models: {file: nev_models.csv, snapshot_date: 2026-11-30,"
        " source: test catalogue, max_age_days: 90}\n",
        encoding="utf-8",
    )
    (tmp_path / "energy_label.csv").write_text(
        "brand,model_number,appliance_type,grade,valid_until\n"
        "格力,KFR-35GW,room_air_conditioner,1,\n",
        encoding="utf-8",
    )
    (tmp_path / "nev_models.csv").write_text(
        "brand,model,vehicle_kind,catalogue_batch,catalogue_date\n"
        "比亚迪,海豚,bev,17,2026-10-01\n",
        encoding="utf-8",
    )
    return tmp_path


def test_factors_list_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["factors", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert rows["cn-grid"]["used_by_methods"] is True
    assert rows["cn-grid-compliance"]["used_by_methods"] is False


def test_factors_show_text(runner: CliRunner) -> None:
    result = runner.invoke(app, ["factors", "show", "cn-grid"])
    assert result.exit_code == 0, result.output
    assert "national.2023 = 0.5306 kgCO2/kWh (2023)" in result.stdout
    assert "source: MEE and NBS" in result.stdout


def test_factors_show_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["factors", "show", "spend-mcc", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["licence"] == "CC BY-SA 4.0"
    assert document["factors"][0]["source"]["url"]


def test_factors_show_unknown(runner: CliRunner) -> None:
    result = runner.invoke(app, ["factors", "show", "no-such-set"])
    assert result.exit_code == 1
    assert "factor set 'no-such-set' not found" in result.stderr


def test_impact_air_conditioner(runner: CliRunner, registries: Path) -> None:
    # Filed grade 1, Guangdong (South grid 2023, 0.4042): 167.125 x 0.4042 x 2 units
    result = runner.invoke(
        app,
        [
            "impact", "格力 新一级能效 1.5匹 空调", "--brand", "格力",
            "--model-number", "KFR-35GW", "--grade", "1", "--region", "广东",
            "--quantity", "2", "--registries", str(registries), "--as-of", AS_OF,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verdict"]["status"] == "green"
    assert document["region"] == "CN-GD"
    assert document["impact"]["kg_co2e_per_year"] == pytest.approx(135.10385)
    assert document["impact"]["grid_level"] == "regional"
    assert document["spend_estimate"] is None


def test_impact_with_spend_estimate(runner: CliRunner, registries: Path) -> None:
    result = runner.invoke(
        app,
        [
            "impact", "比亚迪 海豚 纯电动", "--brand", "比亚迪", "--model-number",
            "海豚", "--amount", "99800", "--currency", "CNY", "--mcc", "5511",
            "--registries", str(registries), "--as-of", AS_OF,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["impact"]["basis"] == "activity"
    assert document["impact"]["kg_co2e_per_year"] == pytest.approx(1247.4774)
    assert document["spend_estimate"]["basis"] == "spend_estimate"
    assert document["factor_versions"]["cn-grid"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--region", "Atlantis"], "unknown --region 'Atlantis'"),
        (["--amount", "12"], "--amount and --currency go together"),
        (["--amount", "abc", "--currency", "CNY"], "invalid --amount 'abc'"),
        (["--amount", "5", "--currency", "XYZ"], "unsupported --currency 'XYZ'"),
        (["--standard", "jp"], "invalid --standard 'jp'"),
        (["--grade", "9"], "invalid --grade 9"),
        (["--as-of", "tomorrow"], "invalid --as-of 'tomorrow'"),
    ],
)
def test_impact_bad_input(
    runner: CliRunner, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["impact", "some product", *arguments])
    assert result.exit_code == 1
    assert message in result.stderr


def test_impact_energy_star_file(runner: CliRunner, shared_data: Path) -> None:
    # Absocold ARD104AB14R/L (ID 2221127): federal standard 269 kWh/yr, use 242.
    # 27 kWh x 0.35164 (US grid, eGRID2023) = 9.49428 kg a year, x 10 years
    result = runner.invoke(
        app,
        [
            "impact", "Absocold refrigerator ARD104AB14R/L", "--brand", "Absocold",
            "--model-number", "ARD104AB14R/L", "--standard", "us", "--region", "US",
            "--energy-star", str(shared_data / "energy-star" / "refrigerators.csv"),
            "--as-of", AS_OF,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["verdict"]["category"] == "energy_star"
    assert document["impact"]["method"] == "energy-star-savings"
    assert document["impact"]["kg_co2e_per_year"] == pytest.approx(9.49428)
    assert document["impact"]["kg_co2e_lifetime"] == pytest.approx(94.9428)
