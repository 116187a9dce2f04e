"""The derivation script reproduces the packaged spend and second-hand factors."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenloop.impact.derive_spend_factors import DerivationError, derive, main
from greenloop.impact.factorsets import load_factor_set, load_packaged_factor_sets


@pytest.fixture(scope="module")
def derived_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the derivation once into a temporary folder."""
    folder = tmp_path_factory.mktemp("derived")
    derive(shared_data / "footprints", folder, "2026.12.0")
    return folder


DERIVED_FILES = {
    "spend_mcc.yaml": "spend-mcc",
    "spend_category.yaml": "spend-category",
    "second_hand_embodied.yaml": "second-hand-embodied",
}


def test_derived_sets_match_packaged(derived_folder: Path) -> None:
    packaged = load_packaged_factor_sets()
    for file_name, set_id in DERIVED_FILES.items():
        derived = load_factor_set(derived_folder / file_name)
        shipped = packaged[set_id]
        derived_values = {f.id: (f.value, f.unit, f.year) for f in derived.spec.factors}
        shipped_values = {f.id: (f.value, f.unit, f.year) for f in shipped.spec.factors}
        assert derived_values == shipped_values, f"{file_name} differs from packaged"


def test_memobank_licence_in_header(derived_folder: Path) -> None:
    header = (derived_folder / "spend_mcc.yaml").read_text(encoding="utf-8")[:600]
    assert "CC BY-SA 4.0" in header
    assert "memobank" in header


def test_electricity_mcc_below_bloom(derived_folder: Path) -> None:
    # memobank books electricity bills as distribution and trade of electricity:
    # MCC 4900 in China is 0.181335 kgCO2e/EUR, far below bloom's 9.309.
    mcc = load_factor_set(derived_folder / "spend_mcc.yaml")
    assert mcc.value("mcc.4900.CN") == pytest.approx(0.181335)
    assert mcc.value("mcc.5722.CN") == pytest.approx(0.422205)


def test_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(DerivationError, match="not found; pass --footprints"):
        derive(tmp_path / "absent", tmp_path, "test")
    assert main(["--footprints", str(tmp_path / "absent")]) == 1
