"""The derivation script reproduces the packaged spend and second-hand factors."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenloop.impact.derive_spend_factors import DerivationError, derive, main
from greenloop.impact.factorsets import load_factor_set, load_packaged_factor_sets

DERIVED_FILES = {
    "spend_mcc.yaml": "spend-mcc",
    "spend_category.yaml": "spend-category",
    "second_hand_embodied.yaml": "second-hand-embodied",
}


def test_derived_sets_match_packaged(shared_data: Path, tmp_path: Path) -> None:
    derive(shared_data / "footprints", tmp_path, "2026.12.0")
    packaged = load_packaged_factor_sets()
    for file_name, set_id in DERIVED_FILES.items():
        derived = load_factor_set(tmp_path / file_name)
        shipped = packaged[set_id]
        derived_values = {f.id: (f.value, f.unit, f.year) for f in derived.spec.factors}
        shipped_values = {f.id: (f.value, f.unit, f.year) for f in shipped.spec.factors}
        assert derived_values == shipped_values, f"{file_name} differs from packaged"


def test_memobank_licence_in_header(shared_data: Path, tmp_path: Path) -> None:
    derive(shared_data / "footprints", tmp_path, "test")
    header = (tmp_path / "spend_mcc.yaml").read_text(encoding="utf-8")[:600]
    assert "CC BY-SA 4.0" in header
    assert "memobank" in header


def test_electricity_mcc_below_bloom(shared_data: Path, tmp_path: Path) -> None:
    # memobank books electricity bills as distribution and trade of electricity:
    # MCC 4900 in China is 0.181335 kgCO2e/EUR, far below bloom's 9.309.
    derive(shared_data / "footprints", tmp_path, "test")
    mcc = load_factor_set(tmp_path / "spend_mcc.yaml")
    assert mcc.value("mcc.4900.CN") == pytest.approx(0.181335)
    assert mcc.value("mcc.5722.CN") == pytest.approx(0.422205)


def test_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(DerivationError, match="not found; pass --footprints"):
        derive(tmp_path / "absent", tmp_path, "test")
    assert main(["--footprints", str(tmp_path / "absent")]) == 1
