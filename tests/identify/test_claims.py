"""Claim checks: lexicon terms fire on claims and stay silent on traps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenloop.categories import Category
from greenloop.identify.claims import (
    LexiconError,
    claim_category,
    default_lexicons,
    find_claims,
    parse_lexicon,
)

CLAIM_CASES = [
    ("Eco-friendly bamboo toothbrush", "generic", "Eco-friendly"),
    ("ecofriendly shopping bag", "generic", "ecofriendly"),
    ("ENVIRONMENTALLY FRIENDLY DETERGENT", "generic", "ENVIRONMENTALLY FRIENDLY"),
    ("nature’s friend hand soap", "generic", "nature’s friend"),
    ("Sustainable cotton tote", "generic", "Sustainable"),
    ("all natural soap bar", "generic", "all natural"),
    ("Carbon neutral coffee beans", "neutrality_offset", "Carbon neutral"),
    ("CO2-neutral shipping", "neutrality_offset", "CO2-neutral"),
    ("Net zero by 2040 bottled water", "future_pledge", "Net zero by 2040"),
    ("committed to net zero tea", "future_pledge", "committed to net zero"),
    ("NETZERO BY 2035 CUP", "future_pledge", "NETZERO BY 2035"),
    ("100% recyclable by 2030 bottle", "future_pledge", "100% recyclable by 2030"),
    ("50% plant-based bottle", "single_attribute", "50% plant-based"),
    ("plasticfree packaging soap", "single_attribute", "plasticfree packaging"),
    (
        "packaging made from recycled card",
        "single_attribute",
        "packaging made from recycled",
    ),
    ("35% organic cotton jeans", "single_attribute", "35% organic"),
    ("t-shirt in recycled packaging", "single_attribute", "recycled packaging"),
    ("organic rolled oats", "specific", "organic"),
    ("Baguette bio au levain", "specific", "bio"),
    ("RECYCLED ACAPULCO MAT RED", "specific", "RECYCLED"),
    ("energy saving LED bulb", "specific", "energy saving"),
    ("ENERGY STAR refrigerator", "specific", "ENERGY STAR"),
    ("绿色环保 垃圾袋", "generic", "绿色环保"),
    ("环保 洗衣液", "generic", "环保"),
    ("生态 面膜", "generic", "生态"),
    ("对环境友好 餐具", "generic", "对环境友好"),
    ("碳中和 T恤", "neutrality_offset", "碳中和"),
    ("承诺2060年前实现碳中和 矿泉水", "future_pledge", "承诺2060年前实现碳中和"),
    ("2030年前碳达峰 企业", "future_pledge", "2030年前碳达峰"),
    ("含30%再生材料 收纳箱", "single_attribute", "含30%再生"),
    ("环保包装 月饼礼盒", "single_attribute", "环保包装"),
    ("有机大米 5kg", "specific", "有机"),
    ("绿色食品 大米", "specific", "绿色食品"),
    ("十环认证 水性漆", "specific", "十环认证"),
    ("海尔 冰箱 节能", "specific", "节能"),
    ("可降解 餐盒", "specific", "可降解"),
]

TRAP_CASES = [
    "GREEN REGENCY TEACUP AND SAUCER",
    "GREEN POLKADOT PLATE",
    "JAM JAR WITH GREEN LID",
    "SEA GREEN WOOL SCARF",
    "green tea bags",
    "绿色连衣裙",
    "墨绿色 针织开衫",
    "浅绿色环保袋",
    "NATURAL SLATE HEART CHALKBOARD",
    "CHEST NATURAL WOOD 20 DRAWERS",
    "100% natural cotton sheets",
    "有机玻璃 展示架",
    "有机硅 密封胶",
    "有机肥 花肥",
    "低碳钢 焊丝",
    "生态板 衣柜",
    "RECYCLING BAG RETROSPOT",
    "compost caddy with lid",
    "washing machine eco mode knob",
    "生态缸 鱼缸",
    "垃圾分类 垃圾桶",
    "空调 节能模式 遥控器",
    "CHRISTMAS DECORATION",
    "S/4 VALENTINE DECOUPAGE HEART BOX",
    "ECONOMY LUGGAGE TAG",
    "SAVOY ART DECO CLOCK",
    "BIOGRAPHY OF A GARDENER",
    "ORGANISER WOOD ANTIQUE WHITE",
    "Green Giant sweetcorn",
    "GreenPan frying pan",
]


@pytest.mark.parametrize(("text", "kind", "term"), CLAIM_CASES)
def test_claim_found_with_kind(text: str, kind: str, term: str) -> None:
    findings = find_claims(text)
    assert findings, f"no claim found in {text!r}"
    assert findings[0].kind == kind
    assert findings[0].term == term


@pytest.mark.parametrize("text", TRAP_CASES)
def test_trap_is_not_a_claim(text: str) -> None:
    assert find_claims(text) == ()


def test_brand_argument_masks_brand() -> None:
    assert find_claims("EcoLife water bottle", brand="EcoLife") == ()


def test_brand_absent_keeps_claim() -> None:
    assert find_claims("Eco water bottle", brand="Contigo")[0].term == "Eco"


def test_longest_term_wins() -> None:
    findings = find_claims("eco label tote")
    assert len(findings) == 1
    assert findings[0].rule == "en.specific.label"


def test_pattern_beats_shorter_term() -> None:
    findings = find_claims("carbon neutral by 2030 shampoo")
    assert [finding.kind for finding in findings] == ["future_pledge"]


def test_repeated_term_reported_once() -> None:
    assert len(find_claims("eco bag, ECO bag, Eco bag")) == 1


def test_findings_follow_text_order() -> None:
    kinds = [finding.kind for finding in find_claims("碳中和 环保 有机 茶叶")]
    assert kinds == ["neutrality_offset", "generic", "specific"]


def test_claim_category_of_organic() -> None:
    finding = find_claims("有机大米")[0]
    assert claim_category(finding) is Category.ORGANIC_FOOD


def test_claim_category_of_generic_is_none() -> None:
    finding = find_claims("eco-friendly cup")[0]
    assert claim_category(finding) is None


def test_every_message_is_filled() -> None:
    for lexicon in default_lexicons():
        for rule in lexicon.rules.values():
            assert rule.message, rule.rule


def test_every_source_has_reference() -> None:
    for lexicon in default_lexicons():
        for source_id, source in lexicon.sources.items():
            assert "url" in source or "document" in source, source_id


@given(st.text(max_size=60))
@settings(max_examples=200, deadline=None)
def test_terms_are_slices_of_text(text: str) -> None:
    for finding in find_claims(text):
        assert finding.term in text


@given(
    prefix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=5),
    word=st.sampled_from(["eco", "organic", "recycled", "sustainable", "bio"]),
    suffix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=5),
)
@settings(max_examples=150, deadline=None)
def test_latin_word_inside_word_ignored(prefix: str, word: str, suffix: str) -> None:
    assert find_claims(f"{prefix}{word}{suffix}") == ()


MINIMAL_LEXICON = """
language: en
last_checked: 2026-12-04
sources:
  own: {title: Own list, document: greenloop}
claims:
  - rule: test.generic
    kind: generic
    source: own
    message: a test claim
    terms: [eco]
"""


def test_minimal_lexicon_parses() -> None:
    lexicon = parse_lexicon(MINIMAL_LEXICON, "test.yaml")
    assert list(lexicon.rules) == ["test.generic"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("    terms: [eco]", "    terms: [eco]\n    colour: green"),
            "unknown key 'colour'",
        ),
        (("kind: generic", "kind: vague"), "kind 'vague' is unknown"),
        (("source: own", "source: elsewhere"), "source 'elsewhere' is not defined"),
        (("terms: [eco]", "patterns: ['(eco)']"), "capturing group"),
        (("terms: [eco]", "patterns: ['Eco']"), "upper-case letter"),
        (("terms: [eco]", "patterns: ['eco(']"), "not a valid regular expression"),
        (("last_checked: 2026-12-04", "last_checked: soon"), "last_checked"),
        (("    terms: [eco]", "    terms: []"), "needs at least one of terms"),
    ],
)
def test_invalid_lexicon_rejected(change: tuple[str, str], message: str) -> None:
    text = MINIMAL_LEXICON.replace(*change)
    with pytest.raises(LexiconError, match=re.escape(message)) as raised:
        parse_lexicon(text, "broken.yaml")
    assert "broken.yaml" in str(raised.value)


def test_online_retail_traps_under_two_percent(shared_data: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(
        shared_data / "online-retail" / "online_retail.parquet",
        columns=["Description"],
    )
    descriptions = {text for text in table.column("Description").to_pylist() if text}
    colour = [text for text in descriptions if re.search(r"\bGREEN\b", text)]
    substring = [
        text
        for text in descriptions
        if "ECO" in text and not re.search(r"\bECO\b", text)
    ]
    material = [text for text in descriptions if re.search(r"\bNATURAL\b", text)]
    for name, group in (
        ("colour", colour),
        ("substring", substring),
        ("material", material),
    ):
        # RECYCLED ... MAT GREEN is a recycled-content claim, not a colour trap.
        group = [text for text in group if "RECYCLED" not in text]
        flagged = [text for text in group if find_claims(text)]
        assert len(flagged) <= 0.02 * len(group), (name, flagged)


def test_patterns_without_triggers_rejected() -> None:
    text = MINIMAL_LEXICON.replace("terms: [eco]", "patterns: ['eco\\\\s+bag']")
    with pytest.raises(LexiconError, match="no triggers"):
        parse_lexicon(text, "broken.yaml")


def test_title_without_triggers_skipped() -> None:
    lexicon = parse_lexicon(MINIMAL_LEXICON, "test.yaml")
    assert lexicon.triggers == frozenset({"eco"})


def _lexicon_terms(language: str) -> list[str]:
    import yaml

    folder = Path(__file__).resolve().parents[2] / "src/greenloop/identify/lexicons"
    document = yaml.safe_load((folder / f"{language}.yaml").read_text("utf-8"))
    return [term for rule in document["claims"] for term in rule.get("terms", [])]


@pytest.mark.parametrize("term", _lexicon_terms("en"))
def test_every_english_term_found(term: str) -> None:
    for separator in (" ", "-", ""):
        written = re.sub(r"[ -]", separator, term)
        findings = find_claims(f"box {written.upper()} set")
        assert findings, f"{written!r} not found"


@pytest.mark.parametrize("term", _lexicon_terms("zh"))
def test_every_chinese_term_found(term: str) -> None:
    assert find_claims(f"家用 {term} 套装"), term


def test_mixed_languages_in_text_order() -> None:
    terms = [finding.term for finding in find_claims("环保 eco bottle 有机")]
    assert terms == ["环保", "eco", "有机"]
