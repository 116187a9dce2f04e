"""The identifier's own thresholds and product-type words, loaded from `data/`.

`settings.yaml` holds thresholds that are greenloop design choices, each with
its reason; `terms.yaml` holds the words that tell which registry a title needs.
Neither decides that an item is green.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DATA_DIR = Path(__file__).resolve().parent / "data"


class SettingsError(ValueError):
    """An identifier settings or terms file that is not of the expected form."""


class Setting(BaseModel):
    """One threshold with its unit, meaning and reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    unit: str = Field(min_length=1)
    description: str = Field(min_length=1)
    source: str = Field(min_length=1)
    last_checked: date


class SettingsFile(BaseModel):
    """The content of `settings.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_review_min_probability: Setting
    energy_star_max_age_days: Setting
    label_min_credibility: Setting


class TermsFile(BaseModel):
    """The content of `terms.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appliance_types: dict[str, list[str]]
    appliance_exclusions: list[str]
    energy_star_product_types: dict[str, list[str]]
    vehicle_terms: list[str]
    item_kinds: dict[str, list[str]]


@dataclass(frozen=True)
class TermMatcher:
    """Words compiled into one regex whose named groups are the keys."""

    pattern: re.Pattern[str] | None
    keys: tuple[str, ...]

    def find(self, text: str) -> str | None:
        """Return the key of the first term found in `text`, or None."""
        if self.pattern is None:
            return None
        match = self.pattern.search(text)
        if match is None:
            return None
        return self.keys[int(match.lastgroup[1:])] if match.lastgroup else None

    def find_all(self, text: str) -> list[str]:
        """Return the keys of every term found in `text`, in key order."""
        if self.pattern is None:
            return []
        found = {
            self.keys[int(match.lastgroup[1:])]
            for match in self.pattern.finditer(text)
            if match.lastgroup
        }
        return [key for key in self.keys if key in found]


def compile_terms(groups: dict[str, list[str]]) -> TermMatcher:
    """Compile terms grouped by key; Latin terms match whole words, any case."""
    keys = tuple(groups)
    alternatives = []
    for index, key in enumerate(keys):
        terms = sorted(groups[key], key=len, reverse=True)
        body = "|".join(_term_pattern(term) for term in terms)
        if body:
            alternatives.append(f"(?P<k{index}>{body})")
    if not alternatives:
        return TermMatcher(None, keys)
    return TermMatcher(re.compile("|".join(alternatives), re.IGNORECASE), keys)


def _term_pattern(term: str) -> str:
    escaped = re.escape(term).replace(r"\ ", r"[\s\-]+")
    if term.isascii():
        return rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
    return escaped


@dataclass(frozen=True)
class Vocabulary:
    """Compiled product-type words and the identifier's thresholds."""

    appliance_types: TermMatcher
    appliance_exclusions: TermMatcher
    energy_star_product_types: TermMatcher
    vehicle_terms: TermMatcher
    item_kinds: TermMatcher
    model_review_min_probability: float
    energy_star_max_age_days: int
    label_min_credibility: int


@cache
def shipped_vocabulary() -> Vocabulary:
    """Load the shipped settings and terms once per process."""
    return load_vocabulary(DATA_DIR)


def load_vocabulary(folder: Path) -> Vocabulary:
    """Load `settings.yaml` and `terms.yaml` from `folder`."""
    settings = _parse(folder / "settings.yaml", SettingsFile)
    terms = _parse(folder / "terms.yaml", TermsFile)
    assert isinstance(settings, SettingsFile)
    assert isinstance(terms, TermsFile)
    return Vocabulary(
        appliance_types=compile_terms(terms.appliance_types),
        appliance_exclusions=compile_terms({"excluded": terms.appliance_exclusions}),
        energy_star_product_types=compile_terms(terms.energy_star_product_types),
        vehicle_terms=compile_terms({"vehicle": terms.vehicle_terms}),
        item_kinds=compile_terms(terms.item_kinds),
        model_review_min_probability=settings.model_review_min_probability.value,
        energy_star_max_age_days=int(settings.energy_star_max_age_days.value),
        label_min_credibility=int(settings.label_min_credibility.value),
    )


def _parse(path: Path, schema: type[BaseModel]) -> BaseModel:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return schema.model_validate(raw)
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"{path}: cannot read the file ({error})") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise SettingsError(f"{path}: {problems}") from error
