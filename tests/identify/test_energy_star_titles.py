"""Every ENERGY STAR model is found from a title that names its brand and model.

The walk covers each row of the refrigerator and clothes-washer exports and
each comma-listed model number of a row. Every model number is written as the
registry does, with wildcards filled, with trailing wildcards dropped, with one
hinge side, with optional parts written or left out, in lower case and without
hyphens. The unit tests below check the same forms and their false matches on
single registry entries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from greenloop.categories import Category, Status
from greenloop.identify import Identifier, ProductQuery
from greenloop.identify.energy_star import EnergyStarRecord, read_energy_star_file
from greenloop.identify.evidence import model_candidates, normalize_model
from greenloop.identify.model_index import ModelIndex, expand_model_number, name_word

AS_OF = date(2026, 12, 4)
EXPORTS = ("refrigerators.csv", "clothes-washers.csv")
PRODUCT_WORDS = {"refrigerator": "refrigerator", "clothes_washer": "washing machine"}
_HINGE = re.compile(r"([A-Z0-9])/([A-Z0-9])$", re.IGNORECASE)
_OPTIONAL = re.compile(r"\(([^)]*)\)")


@dataclass(frozen=True)
class _NoProposal:
    category: Category | None = None
    probability: float = 0.0


class _NoModel:
    """A category model that never proposes a category."""

    version = "none-1"

    def propose(self, titles: Sequence[str]) -> list[_NoProposal]:
        return [_NoProposal() for _ in titles]


def seller_forms(written: str) -> set[str]:
    """Return the ways a seller may write one registry model number."""
    model = " ".join(written.split())
    forms = {model}
    for filler in ("X", "7"):
        forms.add(re.sub(r"[*#]", filler, model))
    dropped = model.rstrip("*#")
    if dropped != model and len(normalize_model(dropped)) >= 3:
        forms.add(dropped)
    hinge = _HINGE.search(model)
    if hinge:
        for side in (hinge.group(1), hinge.group(2)):
            forms.add(model[: hinge.start()] + side)
    if _OPTIONAL.search(model):
        forms.add(_OPTIONAL.sub("", model))
        forms.add(_OPTIONAL.sub(r"\1", model))
    for form in list(forms):
        filled = re.sub(r"[*#]", "X", form)
        forms.add(filled.lower())
        forms.add(filled.replace("-", ""))
    return forms


def seller_titles(record: EnergyStarRecord) -> list[str]:
    """Return titles that name the record's brand and one form of its model."""
    product_word = PRODUCT_WORDS[record.product_type]
    titles = []
    for listed in record.model_number.split(","):
        if not listed.strip():
            continue
        for form in sorted(seller_forms(listed)):
            titles.append(f"{record.brand} {form} {product_word}")
    return titles


def test_every_registry_model_found(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / name for name in EXPORTS]
    identifier = Identifier.load(
        "us", energy_star_files=files, as_of=AS_OF, model=_NoModel()
    )
    records = [
        record for path in files for record in read_energy_star_file(path).records
    ]
    assert len(records) == 3222
    titles = sorted({title for record in records for title in seller_titles(record)})
    verdicts = identifier.identify_many([ProductQuery(title) for title in titles])
    missed = [
        title
        for title, verdict in zip(titles, verdicts, strict=True)
        if verdict.status is not Status.GREEN
        or verdict.category is not Category.ENERGY_STAR
    ]
    assert missed == []


def test_seller_forms_cover_registry_spellings() -> None:
    forms = seller_forms("ARD1033F*14R/L")
    assert "ARD1033FX14R/L" in forms
    assert "ARD1033FX14R" in forms
    assert "ARD1033F*14L" in forms


def _index(*model_numbers: str) -> ModelIndex[str]:
    index: ModelIndex[str] = ModelIndex()
    for model_number in model_numbers:
        index.add(model_number, model_number)
    return index


@pytest.mark.parametrize(
    ("registry_model", "seller_model"),
    [
        ("ARD1033F*14R/L", "ARD1033FX14R/L"),
        ("ARD1033F*14R/L", "ARD1033FX14L/R"),
        ("ARD1033F*14R/L", "ARD1033FX14R"),
        ("ARD1033F*14R/L", "ARD1033FX14"),
        ("RS2484W***#", "RS2484WXXX#"),
        ("RS2484W***#", "RS2484W***#"),
        ("RS2484W***#", "RS2484WLUK1"),
        ("FAB28UL*#", "FAB28ULX#"),
        ("ABC123/ABC124", "ABC123"),
        ("ABC123/ABC124", "ABC124"),
        ("ABC123/ABC124", "ABC123/ABC124"),
        ("B10CB80NVW/01", "B10CB80NVW/01"),
        ("BI-30U/S/**", "BI-30U/S/TH"),
        ("BI-30U/S/**", "BI-30US"),
        ("HS-164LN(NA) LAGAN", "HS-164LN LAGAN"),
        ("HS-164LN(NA) LAGAN", "HS-164LN(NA) LAGAN"),
    ],
)
def test_registry_spelling_matches(registry_model: str, seller_model: str) -> None:
    index = _index(registry_model)
    assert index.lookup(normalize_model(seller_model)) == [registry_model]


@pytest.mark.parametrize(
    ("registry_model", "seller_model"),
    [
        ("ARD1033F*14R/L", "ARD1033FX14X"),
        ("ARD1033F*14R/L", "ARD1033FX14R/X"),
        ("ARD1033F*14R/L", "ARD1033FX14RL"),
        ("RS2484W***#", "RS2484WLUK12"),
        ("ABC123/ABC124", "ABC125"),
        ("ABC123/ABC124", "ABC123ABC124"),
        ("KFR-35GW/SAMPLE2", "SAMPLE2"),
        ("KFR-35GW/SAMPLE2", "KFR35GW7"),
        ("BI-30U/S/**", "BI-30U/T"),
    ],
)
def test_registry_spelling_rejects(registry_model: str, seller_model: str) -> None:
    index = _index(registry_model)
    assert index.lookup(normalize_model(seller_model)) == []


def test_slash_alternatives_need_shared_start() -> None:
    keys = [compiled.key for compiled in expand_model_number("ABC123/ABC124")]
    assert keys == ["ABC123/ABC124", "ABC123", "ABC124"]
    unsplit = [compiled.key for compiled in expand_model_number("KFR-35GW/SAMPLE2")]
    assert unsplit == ["KFR35GW/SAMPLE2"]


def test_name_word_of_spaced_names() -> None:
    assert name_word("SUPERKALL b-in refrigerator white NA") == "SUPERKALL"
    assert name_word("KFN 13823 D") is None
    assert name_word("HC 1030 PC") is None
    assert name_word("FÄRSKHET") is None


def test_name_lookup_finds_word_models() -> None:
    index = _index("SUPERKALL b-in refrigerator white NA", "CP*", "FÄRSKHET")
    assert index.lookup_name("SUPERKALL") == ["SUPERKALL b-in refrigerator white NA"]
    assert index.lookup_name("CPX") == ["CP*"]
    assert index.lookup_name("FÄRSKHET") == ["FÄRSKHET"]


def test_name_lookup_rejects_other_words() -> None:
    index = _index("SUPERKALL b-in refrigerator white NA", "CP*", "WH***12")
    assert index.lookup_name("SUPER") == []
    assert index.lookup_name("REFRIGERATOR") == []
    assert index.lookup_name("CPXL") == []
    assert index.lookup_name("WHITE") == []


def test_three_letter_words_are_name_candidates() -> None:
    candidates = model_candidates("Summit CPX refrigerator")
    assert "CPX" in candidates.without_digits
    assert candidates.with_digits == ()


def test_word_model_needs_brand(shared_data: Path) -> None:
    files = [shared_data / "energy-star" / "refrigerators.csv"]
    identifier = Identifier.load(
        "us", energy_star_files=files, as_of=AS_OF, model=_NoModel()
    )
    named = identifier.identify(ProductQuery("Ikea SUPERKALL built-in fridge"))
    assert named.status is Status.GREEN
    assert named.category is Category.ENERGY_STAR
    unnamed = identifier.identify(ProductQuery("SUPERKALL built-in fridge"))
    assert unnamed.status is not Status.GREEN
    longer = identifier.identify(ProductQuery("Summit CPXL refrigerator"))
    assert longer.status is not Status.GREEN
