"""Emission-factor sets: dated, cited values loaded from YAML files.

One YAML file contains one factor set. Every value carries its unit, year, source
and the date someone last checked it against that source. Loading rejects
unknown keys and duplicate ids, naming the file and the key, so a typo in a data
file fails loudly instead of silently dropping a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PACKAGED_FACTORS = "greenloop.impact.factors"

# libyaml's loader parses the larger derived sets about ten times faster.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FactorSetError(ValueError):
    """A factor-set file is missing or malformed, or lacks a requested value."""


class FactorStatus(StrEnum):
    """How far a value is confirmed.

    `reported`: copied from the cited publication. `unverified`: taken from a
    secondary source and not yet checked against the primary one. `derived`:
    greenloop's own arithmetic on cited inputs, formula in `derivation`.
    `assumption`: a stated modelling choice with no published value behind it.
    """

    REPORTED = "reported"
    UNVERIFIED = "unverified"
    DERIVED = "derived"
    ASSUMPTION = "assumption"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The publication a value comes from."""

    title: str = Field(min_length=1)
    url: str | None = None
    publisher: str | None = None


class Factor(_Strict):
    """One emission factor or parameter value with its provenance."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    value: float
    unit: str = Field(min_length=1)
    year: int | None = Field(default=None, ge=1990, le=2100)
    published: date | None = None
    status: FactorStatus
    # What the value covers, e.g. "electricity consumption, location-based".
    scope: str | None = None
    source: Source
    last_checked: date
    label: str | None = None
    derivation: str | None = None
    note: str | None = None


class FactorSet(_Strict):
    """A versioned collection of factors that share a subject and a licence."""

    id: str = Field(pattern=r"^[a-z0-9\-]+$")
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str
    licence: str = Field(min_length=1)
    attribution: str | None = None
    last_checked: date
    for_methods: bool = True
    region_groups: dict[str, list[str]] = Field(default_factory=dict)
    factors: list[Factor]

    @field_validator("factors")
    @classmethod
    def _ids_unique(cls, factors: list[Factor]) -> list[Factor]:
        seen: set[str] = set()
        for factor in factors:
            if factor.id in seen:
                raise ValueError(f"duplicate factor id {factor.id!r}")
            seen.add(factor.id)
        return factors


@dataclass(frozen=True, slots=True)
class LoadedFactorSet:
    """A validated factor set with an index by factor id."""

    spec: FactorSet
    path: str
    by_id: dict[str, Factor]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version

    def get(self, factor_id: str) -> Factor:
        """Return one factor, or raise FactorSetError naming the set and id."""
        try:
            return self.by_id[factor_id]
        except KeyError:
            raise FactorSetError(
                f"factor {factor_id!r} not found in factor set {self.id!r} "
                f"({self.path}); add it to that file or choose another factor"
            ) from None

    def find(self, factor_id: str) -> Factor | None:
        """Return one factor, or None when the set lacks it."""
        return self.by_id.get(factor_id)

    def value(self, factor_id: str) -> float:
        """Return the value of one factor."""
        return self.get(factor_id).value

    def with_prefix(self, prefix: str) -> Iterator[Factor]:
        """Yield the factors whose id starts with `prefix`, in file order."""
        return (f for f in self.spec.factors if f.id.startswith(prefix))


def _format_validation_error(path: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{location}: {item['msg']}")
    return (
        f"invalid factor set {path}: "
        + "; ".join(problems)
        + ". Fix the named keys; allowed keys are listed in "
        "greenloop.impact.factorsets (FactorSet, Factor, Source)."
    )


def parse_factor_set(text: str, path: str) -> LoadedFactorSet:
    """Parse and validate the YAML text of one factor set."""
    try:
        raw: Any = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise FactorSetError(f"invalid YAML in factor set {path}: {error}") from error
    if not isinstance(raw, dict):
        raise FactorSetError(
            f"invalid factor set {path}: expected a mapping with keys id, version, "
            f"title, factors; found {type(raw).__name__}"
        )
    try:
        spec = FactorSet.model_validate(raw)
    except ValidationError as error:
        raise FactorSetError(_format_validation_error(path, error)) from error
    return LoadedFactorSet(spec=spec, path=path, by_id={f.id: f for f in spec.factors})


def load_factor_set(path: Path) -> LoadedFactorSet:
    """Load one factor-set file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FactorSetError(f"cannot read factor set {path}: {error}") from error
    return parse_factor_set(text, str(path))


def load_packaged_factor_sets() -> dict[str, LoadedFactorSet]:
    """Load every factor set shipped in greenloop/impact/factors, keyed by id."""
    folder = resources.files(PACKAGED_FACTORS)
    loaded: list[LoadedFactorSet] = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            path = f"{PACKAGED_FACTORS.replace('.', '/')}/{entry.name}"
            loaded.append(parse_factor_set(entry.read_text(encoding="utf-8"), path))
    return index_factor_sets(loaded)


def index_factor_sets(sets: Iterable[LoadedFactorSet]) -> dict[str, LoadedFactorSet]:
    """Key factor sets by id, rejecting two files that claim the same id."""
    indexed: dict[str, LoadedFactorSet] = {}
    for factor_set in sets:
        if factor_set.id in indexed:
            raise FactorSetError(
                f"factor set id {factor_set.id!r} is used by both "
                f"{indexed[factor_set.id].path} and {factor_set.path}; "
                "give each file its own id"
            )
        indexed[factor_set.id] = factor_set
    return indexed
