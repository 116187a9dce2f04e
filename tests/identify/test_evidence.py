"""Tests of evidence parsing: grades, certificate codes and model numbers."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.identify.evidence import (
    brand_in_text,
    find_certificate_codes,
    find_stated_grade,
    green_food_code_date,
    model_candidates,
    normalize_model,
    organic_code_year,
    padded_words,
)
from greenloop.identify.model_index import ModelIndex


@pytest.mark.parametrize(
    ("title", "grade", "new_edition"),
    [
        ("海尔冰箱 BCD-470WGHTD 新一级能效", 1, True),
        ("美的洗衣机 一级能效 10公斤", 1, False),
        ("格力空调 新三级能效 变频", 3, True),
        ("小天鹅 能效等级：2级 滚筒", 2, False),
        ("TCL 电视 能效一级", 1, False),
        ("海信 2级能效 冰箱", 2, False),
        ("LG refrigerator energy grade 1", 1, False),
        ("washer grade 2", 2, False),
    ],
)
def test_stated_grade_parsed(title: str, grade: int, new_edition: bool) -> None:
    stated = find_stated_grade(title)
    assert stated is not None
    assert stated.grade == grade
    assert stated.new_edition is new_edition


@pytest.mark.parametrize(
    "title",
    ["GREEN REGENCY TEACUP", "一级棒 连衣裙", "grade 7 maths book", "能效 标识 贴纸"],
)
def test_no_grade_in_plain_titles(title: str) -> None:
    assert find_stated_grade(title) is None


def test_certificate_codes_found() -> None:
    codes = find_certificate_codes(
        "有机大米 12319012345678901 GF320102180123 FR/020/001"
    )
    assert "12319012345678901" in codes
    assert "GF320102180123" in codes
    assert "FR/020/001" in codes


def test_longer_digit_run_not_organic() -> None:
    assert find_certificate_codes("order 123190123456789012") == ()


def test_green_food_code_expiry() -> None:
    code_date = green_food_code_date("gf320102180123", validity_years=3)
    assert code_date is not None
    assert code_date.issue_year == 2018
    assert code_date.latest_valid_until == date(2021, 12, 31)


def test_malformed_green_food_code() -> None:
    assert green_food_code_date("GF3201021801", validity_years=3) is None


def test_organic_code_year() -> None:
    assert organic_code_year("12319012345678901") == 2019
    assert organic_code_year("1231901234567890") is None


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("gtw500a*n***", "GTW500A*N***"),
        ("RF 1820 FD", "RF1820FD"),
        ("DPF074B2BSLDB-6\u00a0", "DPF074B2BSLDB6"),
        ("W2084.W.U", "W2084WU"),
        ("ＢＣＤ－４７０", "BCD470"),
    ],
)
def test_model_normalization(written: str, normalized: str) -> None:
    assert normalize_model(written) == normalized


@pytest.mark.parametrize(
    ("registry_model", "seller_model"),
    [
        ("GTW500A*N***", "GTW500ASNWS"),
        ("GTW500A*N***", "gtw500a-s-n"),
        ("GTW500A*N***", "GTW500A*N***"),
        ("ARD1033F*14R/L", "ARD1033FW14L"),
        ("RS36(X)", "RS36"),
        ("RS36(X)", "RS36X"),
        ("XFRBI1821-30**,YFRBI1821-30**", "YFRBI1821-30AB"),
        ("3143#", "31435"),
        ("B10CB80NVW/01", "B10CB80NVW01"),
    ],
)
def test_wildcard_model_matches(registry_model: str, seller_model: str) -> None:
    index: ModelIndex[str] = ModelIndex()
    index.add(registry_model, registry_model)
    assert index.lookup(normalize_model(seller_model)) == [registry_model]


@pytest.mark.parametrize(
    ("registry_model", "seller_model"),
    [
        ("GTW500A*N***", "GTW500"),
        ("GTW500A*N***", "GTW500ASXWS"),
        ("GTW500A*N***", "GTW500ASNWSXX"),
        ("3143#", "3144"),
    ],
)
def test_wildcard_model_rejects(registry_model: str, seller_model: str) -> None:
    index: ModelIndex[str] = ModelIndex()
    index.add(registry_model, registry_model)
    assert index.lookup(normalize_model(seller_model)) == []


def test_candidates_next_to_chinese() -> None:
    candidates = model_candidates("海尔BCD-470WGHTD冰箱 新一级能效")
    assert candidates.with_digits == ("BCD470WGHTD",)


def test_candidates_join_spaced_models() -> None:
    candidates = model_candidates("Miele KNF 12823 SD fridge")
    assert "KNF12823SD" in candidates.with_digits


def test_candidates_without_digits_kept() -> None:
    candidates = model_candidates("Ikea FÄRSKHET fridge")
    assert "FÄRSKHET" in candidates.without_digits


def test_brand_in_text_whole_words() -> None:
    assert brand_in_text("GE", padded_words("GE GTW500 washer"), "GE GTW500 washer")
    assert not brand_in_text("GE", padded_words("GENERAL washer"), "GENERAL washer")
    assert brand_in_text("海尔", padded_words("海尔冰箱"), "海尔冰箱")


MODEL_TEXT = st.text(
    alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=3, max_size=14
)


@settings(max_examples=200, deadline=None)
@given(
    MODEL_TEXT,
    st.lists(st.sampled_from([" ", "-", ".", "\u00a0"]), max_size=3),
    st.data(),
)
def test_separators_do_not_change_model(
    model: str, separators: list[str], data: st.DataObject
) -> None:
    written = model
    for separator in separators:
        position = data.draw(st.integers(min_value=0, max_value=len(written)))
        written = written[:position] + separator + written[position:]
    assert normalize_model(written.lower()) == normalize_model(model)


@settings(max_examples=200, deadline=None)
@given(MODEL_TEXT, st.integers(min_value=1, max_value=3), st.data())
def test_trailing_wildcards_match_full_model(
    model: str, wildcard_count: int, data: st.DataObject
) -> None:
    wildcard_count = min(wildcard_count, len(model) - 1)
    registry_model = model[: len(model) - wildcard_count] + "*" * wildcard_count
    index: ModelIndex[str] = ModelIndex()
    index.add(registry_model, "record")
    kept = data.draw(st.integers(min_value=0, max_value=wildcard_count))
    seller_model = model[: len(model) - wildcard_count + kept]
    assert index.lookup(normalize_model(seller_model)) == ["record"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_normalization_is_idempotent(text: str) -> None:
    assert normalize_model(normalize_model(text)) == normalize_model(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_padded_words_match_general_rule(text: str) -> None:
    words = re.sub(r"[^0-9A-Z\u3400-\u9fff]+", " ", text.upper()).strip()
    assert padded_words(text) == f" {words} "
