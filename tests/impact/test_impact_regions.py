"""Region normalization to ISO 3166-2 provinces and ISO 3166-1 countries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.impact import normalize_region
from greenloop.impact.regions import CHINA_PROVINCES, PROVINCE_CODES

CASES = [
    ("广东", "CN-GD"),
    ("广东省", "CN-GD"),
    ("Guangdong", "CN-GD"),
    ("guangdong province", "CN-GD"),
    ("Guangdong Sheng", "CN-GD"),
    ("cn-gd", "CN-GD"),
    ("CN-GD", "CN-GD"),
    ("  cn_gd ", "CN-GD"),
    ("内蒙古自治区", "CN-NM"),
    ("Inner Mongolia", "CN-NM"),
    ("Tibet", "CN-XZ"),
    ("新疆", "CN-XJ"),
    ("北京市", "CN-BJ"),
    ("United Kingdom", "GB"),
    ("GB", "GB"),
    ("UK", "GB"),
    ("英国", "GB"),
    ("US-CA", "US"),
    ("DEU", "DE"),
    ("China", "CN"),
    ("中国", "CN"),
    ("cn-hk", "HK"),
    ("香港", "HK"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_region_names_normalized(raw: str, expected: str) -> None:
    assert normalize_region(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   ", "Atlantis", "CN-ZZ", "XX-99"])
def test_unknown_region_none(raw: str | None) -> None:
    assert normalize_region(raw) is None


def test_all_provinces_listed() -> None:
    assert len(CHINA_PROVINCES) == 31
    assert len(PROVINCE_CODES) == 31


def test_every_province_round_trips() -> None:
    for code, full_name, short_name, roman_names in CHINA_PROVINCES:
        assert normalize_region(code.lower()) == code
        assert normalize_region(full_name) == code
        assert normalize_region(short_name) == code
        for roman in roman_names:
            assert normalize_region(roman) == code


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.text(max_size=30)))
def test_normalize_region_idempotent(value: str | None) -> None:
    code = normalize_region(value)
    if code is None:
        return
    assert normalize_region(code) == code
    assert code in PROVINCE_CODES or len(code) == 2
