"""The identifier's own thresholds and product-type words, loaded from `data/`.

`settings.yaml` contains thresholds that are greenloop design choices, each
with its reason. `terms.yaml` contains the words that show which registry a
title needs. Neither decides that an item is green.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greenloop.identify.evidence import padded_words

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


class LabelTagsFile(BaseModel):
    """Label tags that name no environmental attribute, and organic label tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    not_environmental: list[str]
    not_environmental_prefixes: list[str]
    organic: list[str]
    organic_patterns: list[str]


class TermsFile(BaseModel):
    """The content of `terms.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appliance_types: dict[str, list[str]]
    appliance_exclusions: list[str]
    energy_star_product_types: dict[str, list[str]]
    vehicle_terms: list[str]
    item_kinds: dict[str, list[str]]
    label_tags: LabelTagsFile


@dataclass(frozen=True)
class LabelTags:
    """Compiled label-tag lists; tags are compared in lower case."""

    not_environmental: frozenset[str] = frozenset()
    not_environmental_prefixes: tuple[str, ...] = ()
    organic: frozenset[str] = frozenset()
    organic_patterns: tuple[re.Pattern[str], ...] = ()

    def is_environmental(self, tag: str) -> bool:
        """Return False for a tag that states no environmental attribute."""
        lowered = tag.strip().lower()
        if lowered in self.not_environmental:
            return False
        return not lowered.startswith(self.not_environmental_prefixes)

    def is_organic(self, tag: str) -> bool:
        """Return whether a tag names an organic label or an organic control body."""
        lowered = tag.strip().lower()
        if lowered in self.organic:
            return True
        return any(pattern.fullmatch(lowered) for pattern in self.organic_patterns)


def compile_label_tags(tags: LabelTagsFile) -> LabelTags:
    """Compile the label-tag lists of `terms.yaml`, rejecting invalid patterns."""
    patterns = []
    for pattern in tags.organic_patterns:
        try:
            patterns.append(re.compile(pattern))
        except re.error as error:
            raise SettingsError(
                f"terms.yaml: label_tags.organic_patterns: invalid pattern "
                f"{pattern!r} ({error}); correct the regular expression"
            ) from error
    return LabelTags(
        not_environmental=frozenset(tag.lower() for tag in tags.not_environmental),
        not_environmental_prefixes=tuple(
            prefix.lower() for prefix in tags.not_environmental_prefixes
        ),
        organic=frozenset(tag.lower() for tag in tags.organic),
        organic_patterns=tuple(patterns),
    )


MAX_PHRASE_WORDS = 3


@dataclass(frozen=True)
class TermMatcher:
    """Terms grouped by key: Latin phrases in a dict, Chinese terms as substrings.

    Latin terms match whole words in any case, by looking up the title's word
    n-grams (see `phrases`), so "washer" does not match inside "dishwasher".
    Chinese terms match as substrings because Chinese has no word spaces.
    """

    keys: tuple[str, ...]
    latin: dict[str, str]
    chinese: tuple[tuple[str, str], ...]
    latin_phrases: frozenset[str] = frozenset()

    def find_all(self, phrases: frozenset[str], text: str) -> list[str]:
        """Return the keys with a term in the title, in key order."""
        found = {self.latin[phrase] for phrase in phrases & self.latin_phrases}
        if self.chinese and not text.isascii():
            found.update(key for term, key in self.chinese if term in text)
        if not found:
            return []
        return [key for key in self.keys if key in found]

    def find(self, phrases: frozenset[str], text: str) -> str | None:
        """Return the first key, in key order, with a term in the title."""
        found = self.find_all(phrases, text)
        return found[0] if found else None


def word_phrases(words: str, starts: frozenset[str] | None = None) -> frozenset[str]:
    """Return the word n-grams (1 to 3 words) of a title in `padded_words` form.

    With `starts`, longer n-grams are built only from words in it (the first
    words of multi-word terms), which keeps the set small.
    """
    tokens = words.split()
    grams = set(tokens)
    for start, token in enumerate(tokens):
        if starts is not None and token not in starts:
            continue
        for size in range(2, MAX_PHRASE_WORDS + 1):
            if start + size > len(tokens):
                break
            grams.add(" ".join(tokens[start : start + size]))
    return frozenset(grams)


def compile_terms(groups: dict[str, list[str]]) -> TermMatcher:
    """Compile terms grouped by key into a `TermMatcher`."""
    latin: dict[str, str] = {}
    chinese: list[tuple[str, str]] = []
    for key, terms in groups.items():
        for term in terms:
            if term.isascii():
                phrase = padded_words(term).strip()
                if len(phrase.split()) > MAX_PHRASE_WORDS:
                    raise SettingsError(
                        f"term {term!r} has more than {MAX_PHRASE_WORDS} words; "
                        "shorten it"
                    )
                latin.setdefault(phrase, key)
            else:
                chinese.append((term, key))
    return TermMatcher(tuple(groups), latin, tuple(chinese), frozenset(latin))


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
    phrase_starts: frozenset[str] = frozenset()
    latin_phrases: frozenset[str] = frozenset()
    label_tags: LabelTags = field(default_factory=LabelTags)

    def may_match(self, phrases: frozenset[str], text: str) -> bool:
        """Return whether any term list can match, checked in one set operation."""
        return not text.isascii() or not self.latin_phrases.isdisjoint(phrases)

    def phrases(self, words: str) -> frozenset[str]:
        """Return the n-grams of a title that the term matchers can match."""
        return word_phrases(words, self.phrase_starts)


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
    all_terms = [
        *(term for group in terms.appliance_types.values() for term in group),
        *terms.appliance_exclusions,
        *(term for group in terms.energy_star_product_types.values() for term in group),
        *terms.vehicle_terms,
        *(term for group in terms.item_kinds.values() for term in group),
    ]
    starts = frozenset(
        padded_words(term).split()[0]
        for term in all_terms
        if term.isascii() and len(padded_words(term).split()) > 1
    )
    return Vocabulary(
        appliance_types=compile_terms(terms.appliance_types),
        appliance_exclusions=compile_terms({"excluded": terms.appliance_exclusions}),
        energy_star_product_types=compile_terms(terms.energy_star_product_types),
        vehicle_terms=compile_terms({"vehicle": terms.vehicle_terms}),
        item_kinds=compile_terms(terms.item_kinds),
        model_review_min_probability=settings.model_review_min_probability.value,
        energy_star_max_age_days=int(settings.energy_star_max_age_days.value),
        label_min_credibility=int(settings.label_min_credibility.value),
        label_tags=compile_label_tags(terms.label_tags),
        phrase_starts=starts,
        latin_phrases=frozenset(
            padded_words(term).strip() for term in all_terms if term.isascii()
        ),
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
