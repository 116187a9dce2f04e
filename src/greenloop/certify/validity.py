"""When a certification ends: the registry's date, or the category's term.

The terms live in `data/validity.yaml` with their sources. A registry's own
`valid_until` always wins. A Green Food certification without one ends three
years after it was certified, and never later than the end of the third year
after the year its GF code was issued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from greenloop.categories import Category

VALIDITY_FILE = Path(__file__).with_name("data") / "validity.yaml"
GREEN_FOOD_CODE = re.compile(r"^GF(\d{6})(\d{2})(\d{4})$")


class ValidityFileError(ValueError):
    """The validity terms file is malformed."""


@dataclass(frozen=True, slots=True)
class Term:
    """How many years a category's certification lasts, with its source."""

    category: Category
    years: int
    source_title: str
    source_url: str


@cache
def load_terms(path: Path = VALIDITY_FILE) -> dict[Category, Term]:
    """Read the validity terms, rejecting unknown categories and keys."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown_top = set(document) - {"last_checked", "terms"}
    if unknown_top:
        raise ValidityFileError(
            f"{path}: unknown keys {sorted(unknown_top)}; expected last_checked, terms"
        )
    terms: dict[Category, Term] = {}
    for name, entry in (document.get("terms") or {}).items():
        terms[_category(path, name)] = _term(path, name, entry)
    return terms


def _category(path: Path, name: str) -> Category:
    try:
        return Category(name)
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise ValidityFileError(
            f"{path}: unknown category {name!r} under terms; use one of {valid}"
        ) from None


def _term(path: Path, name: str, entry: dict[str, Any]) -> Term:
    unknown = set(entry) - {"years", "since", "source"}
    if unknown:
        raise ValidityFileError(
            f"{path}: terms.{name} has unknown keys {sorted(unknown)}; "
            "expected years, since, source"
        )
    years = entry.get("years")
    if not isinstance(years, int) or years <= 0:
        raise ValidityFileError(
            f"{path}: terms.{name}.years is {years!r}; expected a positive integer"
        )
    source = entry.get("source") or {}
    if not source.get("title") or not source.get("url"):
        raise ValidityFileError(
            f"{path}: terms.{name}.source needs a title and a url naming where "
            "the term comes from"
        )
    return Term(Category(name), years, str(source["title"]), str(source["url"]))


def add_years(day: date, years: int) -> date:
    """Return `day` moved by whole years; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def valid_until(
    category: Category,
    certified_on: date,
    *,
    registry_valid_until: date | None = None,
    certificate_codes: tuple[str, ...] = (),
) -> date | None:
    """Return the last day the certification is valid, or None for no end date.

    NOTE: categories without a term and without a registry date get no end
    date; they stay valid until revoked.
    """
    if registry_valid_until is not None:
        return registry_valid_until
    term = load_terms().get(category)
    if term is None:
        return None
    end = add_years(certified_on, term.years)
    if category is Category.GREEN_FOOD:
        for code in certificate_codes:
            match = GREEN_FOOD_CODE.match(code.strip().upper())
            if match:
                issued_year = 2000 + int(match.group(2))
                end = min(end, date(issued_year + term.years, 12, 31))
    return end
