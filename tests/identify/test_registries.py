"""Tests of registry folders, the ENERGY STAR importer and the label table."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.categories import Category
from greenloop.cli import app
from greenloop.identify.energy_star import (
    EnergyStarImportError,
    read_energy_star_file,
    write_snapshot,
)
from greenloop.identify.evidence import normalize_model
from greenloop.identify.registries import (
    RegistryError,
    RegistryState,
    load_registries,
)

SNAPSHOT = """\
registries:
  energy_label:
    file: energy_label.csv
    snapshot_date: 2026-11-30
    source: "China Energy Label filing records"
    max_age_days: 90
  organic:
    file: organic.csv
    snapshot_date: 2026-11-30
    source: "Organic certificates"
    max_age_days: 90
  green_food:
    file: green_food.csv
    snapshot_date: 2026-06-01
    source: "Green Food licences"
    max_age_days: 90
  merchants:
    file: merchants.csv
    snapshot_date: 2026-11-30
    source: "Operator list"
    max_age_days: 365
"""

FILES = {
    "energy_label.csv": "brand,model_number,appliance_type,grade,valid_until\n"
    "海尔,BCD-470WGHTD,refrigerator,1,\n",
    "organic.csv": "code,product,holder,valid_until\n"
    "12319012345678901,大米,某农场,2027-06-30\n",
    "green_food.csv": "code,product,holder,valid_from,valid_until\n"
    "GF320102250123,茶叶,某茶厂,2025-03-01,2028-02-28\n",
    "merchants.csv": "merchant_id,merchant_name,category,kind,source\n"
    "m-metro,City Metro,public_transport,metro,operator contract\n",
}


def write_folder(folder: Path, snapshot: str = SNAPSHOT, **overrides: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.yaml").write_text(snapshot, encoding="utf-8")
    for name, text in {**FILES, **overrides}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_folder_loads_every_registry(tmp_path: Path) -> None:
    registries = load_registries(write_folder(tmp_path))
    assert registries.energy_label.size == 1
    assert registries.find_certificate("12319012345678901") is not None
    assert registries.find_certificate("gf320102250123") is not None
    assert registries.merchants["m-metro"].category is Category.PUBLIC_TRANSPORT


def test_registry_states_by_age(tmp_path: Path) -> None:
    registries = load_registries(write_folder(tmp_path))
    as_of = date(2026, 12, 4)
    assert registries.state("organic", as_of) is RegistryState.AVAILABLE
    assert registries.state("green_food", as_of) is RegistryState.STALE
    assert registries.state("nev_models", as_of) is RegistryState.MISSING


def test_state_boundary_at_max_age(tmp_path: Path) -> None:
    registries = load_registries(write_folder(tmp_path))
    assert registries.state("organic", date(2027, 2, 28)) is RegistryState.AVAILABLE
    assert registries.state("organic", date(2027, 3, 1)) is RegistryState.STALE


def test_versions_list_snapshot_dates(tmp_path: Path) -> None:
    registries = load_registries(write_folder(tmp_path))
    assert registries.versions()["registry.organic"] == "2026-11-30"


def test_missing_snapshot_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"snapshot\.yaml not found"):
        load_registries(tmp_path)


def test_unknown_registry_rejected(tmp_path: Path) -> None:
    snapshot = (
        SNAPSHOT
        + "  fish:\n    file: fish.csv\n    snapshot_date: 2026-11-30\n"
        + '    source: "x"\n    max_age_days: 9\n'
    )
    with pytest.raises(RegistryError, match="unknown registry fish"):
        load_registries(write_folder(tmp_path, snapshot))


def test_unknown_snapshot_key_rejected(tmp_path: Path) -> None:
    snapshot = SNAPSHOT.replace(
        "max_age_days: 90\n", "max_age_days: 90\n    owner: me\n", 1
    )
    with pytest.raises(RegistryError, match="owner"):
        load_registries(write_folder(tmp_path, snapshot))


def test_missing_column_names_header(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, **{"organic.csv": "code,product\n1,x\n"})
    with pytest.raises(RegistryError, match="lacks column holder, valid_until"):
        load_registries(folder)


def test_bad_date_names_row_and_column(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        **{
            "organic.csv": "code,product,holder,valid_until\n"
            "12319012345678901,x,y,30/06/2027\n"
        },
    )
    with pytest.raises(RegistryError) as raised:
        load_registries(folder)
    message = str(raised.value)
    assert "row 2" in message
    assert "valid_until" in message
    assert "ISO 8601" in message


def test_bad_grade_rejected(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        **{
            "energy_label.csv": "brand,model_number,appliance_type,grade,valid_until\n"
            "A,B1,refrigerator,6,\n"
        },
    )
    with pytest.raises(
        RegistryError, match="grade is '6'; expected a whole number from 1 to 5"
    ):
        load_registries(folder)


def test_bad_merchant_category_rejected(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path,
        **{
            "merchants.csv": "merchant_id,merchant_name,category,kind,source\n"
            "m1,Shop,fashion,shop,x\n"
        },
    )
    with pytest.raises(
        RegistryError, match="expected one of public_transport, second_hand"
    ):
        load_registries(folder)


def test_label_credibility_table_loads(tmp_path: Path, shared_data: Path) -> None:
    labels = (shared_data / "labels" / "label-credibility.csv").read_text(
        encoding="utf-8"
    )
    snapshot = SNAPSHOT + (
        "  label_credibility:\n    file: labels.csv\n    snapshot_date: 2026-11-30\n"
        '    source: "green-db label evaluation"\n    max_age_days: 365\n'
    )
    registries = load_registries(
        write_folder(tmp_path, snapshot, **{"labels.csv": labels})
    )
    assert len(registries.labels) == 100
    unscored = [
        label for label in registries.labels.values() if label.credibility is None
    ]
    assert len(unscored) == 46
    assert "certificate:CARBON_TRUST_REDUCING" in registries.labels


@pytest.mark.parametrize(
    ("file_name", "product_type", "count"),
    [
        ("refrigerators.csv", "refrigerator", 2962),
        ("clothes-washers.csv", "clothes_washer", 260),
    ],
)
def test_energy_star_export_imports(
    shared_data: Path, file_name: str, product_type: str, count: int
) -> None:
    snapshot = read_energy_star_file(shared_data / "energy-star" / file_name)
    assert snapshot.product_type == product_type
    assert len(snapshot.records) == count
    assert all(record.annual_kwh is not None for record in snapshot.records)


def test_refrigerator_keeps_federal_kwh(shared_data: Path) -> None:
    snapshot = read_energy_star_file(shared_data / "energy-star" / "refrigerators.csv")
    first = snapshot.records[0]
    assert first.model_number == "ARD1033F*14R/L"
    assert first.annual_kwh == 297
    assert first.federal_standard_kwh == 331
    assert first.federal_standard_kwh_basis == "record"


def test_washer_federal_kwh_is_estimate(shared_data: Path) -> None:
    snapshot = read_energy_star_file(
        shared_data / "energy-star" / "clothes-washers.csv"
    )
    first = snapshot.records[0]
    assert first.model_number == "GTW500A*N***"
    assert first.federal_standard_kwh_basis == "imef_ratio_estimate"
    # 175 kWh/yr * IMEF 2.06 / federal IMEF 1.29 = 279 kWh/yr.
    assert first.federal_standard_kwh == 279


def test_snapshot_round_trip(shared_data: Path, tmp_path: Path) -> None:
    original = read_energy_star_file(
        shared_data / "energy-star" / "clothes-washers.csv"
    )
    path = write_snapshot(original, tmp_path, date(2026, 12, 1))
    reloaded = read_energy_star_file(path)
    assert path.name == "energy_star_clothes_washer_2026-12-01.csv"
    assert reloaded.snapshot_date == date(2026, 12, 1)
    assert reloaded.records == original.records


def test_unknown_export_needs_type(tmp_path: Path) -> None:
    path = tmp_path / "dryers.csv"
    path.write_text(
        "Brand Name,Model Number,Annual Energy Use (kWh/yr)\nX,Y1,100\n",
        encoding="utf-8",
    )
    with pytest.raises(EnergyStarImportError, match="pass the product type"):
        read_energy_star_file(path)
    snapshot = read_energy_star_file(path, product_type="clothes_dryer")
    assert snapshot.records[0].federal_standard_kwh is None


def test_export_without_model_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Brand Name,Annual Energy Use (kWh/yr)\nX,100\n", encoding="utf-8")
    with pytest.raises(EnergyStarImportError, match="no model number column"):
        read_energy_star_file(path, product_type="refrigerator")


def test_quoted_line_breaks_kept(shared_data: Path) -> None:
    path = shared_data / "energy-star" / "refrigerators.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    snapshot = read_energy_star_file(path)
    assert len(snapshot.records) == len(rows)
    models = {normalize_model(row["Model Number"]) for row in rows}
    assert {
        normalize_model(record.model_number) for record in snapshot.records
    } == models


def test_cli_import_writes_snapshot(shared_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "registry",
            "import-energy-star",
            str(shared_data / "energy-star" / "refrigerators.csv"),
            "--out",
            str(tmp_path),
            "--snapshot-date",
            "2026-11-30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "energy_star_refrigerator_2026-11-30.csv").is_file()
    assert "2962 refrigerator records" in result.output
