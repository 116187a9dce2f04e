"""Tests of the identifier's settings and terms files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from greenloop.identify.vocabulary import DATA_DIR, SettingsError, load_vocabulary


def copy_data(folder: Path) -> Path:
    for name in ("settings.yaml", "terms.yaml"):
        shutil.copy(DATA_DIR / name, folder / name)
    return folder


def test_shipped_label_tags_load(tmp_path: Path) -> None:
    tags = load_vocabulary(copy_data(tmp_path)).label_tags
    assert not tags.is_environmental("en:green-dot")
    assert not tags.is_environmental("EN:Made-In-France")
    assert tags.is_environmental("en:low-carbon")
    assert tags.is_organic("en:fr-bio-01")
    assert not tags.is_organic("en:bio-logic")


def test_invalid_organic_pattern_rejected(tmp_path: Path) -> None:
    folder = copy_data(tmp_path)
    terms = folder / "terms.yaml"
    text = terms.read_text(encoding="utf-8")
    start = text.index("  organic_patterns:")
    terms.write_text(text[:start] + "  organic_patterns: ['(unclosed']\n", "utf-8")
    with pytest.raises(SettingsError, match="invalid pattern"):
        load_vocabulary(folder)


def test_missing_label_tags_rejected(tmp_path: Path) -> None:
    folder = copy_data(tmp_path)
    terms = folder / "terms.yaml"
    text = terms.read_text(encoding="utf-8")
    terms.write_text(text[: text.index("label_tags:")], encoding="utf-8")
    with pytest.raises(SettingsError, match="label_tags"):
        load_vocabulary(folder)
