"""The form of a standards file, checked with pydantic.

A standards file describes one category in one jurisdiction. Each parameter
has a kind, a unit and a table of values keyed by the date each value takes
effect, and every dated value names its source and the date it was last
checked. Unknown keys are rejected so that a misspelt key cannot silently drop
a rule.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from greenloop.categories import Category, Jurisdiction

ParameterKind = Literal[
    "integer",
    "decimal",
    "string",
    "pattern",
    "boolean",
    "string_list",
    "integer_list",
    "string_map",
]

KIND_FORMS: dict[str, str] = {
    "integer": "a whole number, for example 2",
    "decimal": "a number, for example 0.6",
    "string": "a text, for example GB 21455-2019",
    "pattern": "a regular expression in quotes, for example '^GF\\d{12}$'",
    "boolean": "true or false",
    "string_list": "a list of texts, for example [refrigerator, television]",
    "integer_list": "a list of whole numbers, for example [4111, 4131]",
    "string_map": "a mapping of keys to texts, for example {4111: metro}",
}


class Source(BaseModel):
    """The document a value comes from: a title plus a URL or a document number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1)
    url: str | None = None
    document: str | None = None

    @model_validator(mode="after")
    def _require_reference(self) -> Source:
        if not self.url and not self.document:
            raise ValueError("a source needs a url or a document number")
        return self


class DatedValue(BaseModel):
    """One value of a parameter, in force from the date it is keyed by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Any
    source: Source
    last_checked: date
    note: str | None = None


class Parameter(BaseModel):
    """A value a standard sets, with its unit and its history of dated values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    kind: ParameterKind
    unit: str = Field(min_length=1)
    values: dict[date, DatedValue] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_values(self) -> Parameter:
        for effective, dated in self.values.items():
            problem = value_problem(self.kind, dated.value)
            if problem:
                raise ValueError(
                    f"value in force from {effective.isoformat()} is {dated.value!r}: "
                    f"{problem}; expected {KIND_FORMS[self.kind]}"
                )
        return self


class StandardFile(BaseModel):
    """The whole content of one standards YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    jurisdiction: Jurisdiction
    category: Category
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    evidence: list[str] = Field(min_length=1)
    registries: list[str] = Field(default_factory=list)
    parameters: dict[str, Parameter] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _check_id_form(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2}\.[a-z_]+", value):
            raise ValueError("expected JURISDICTION.CATEGORY, for example cn.appliance")
        return value

    @model_validator(mode="after")
    def _check_id_matches(self) -> StandardFile:
        expected = f"{self.jurisdiction.value}.{self.category.value}"
        if self.id != expected:
            raise ValueError(f"id {self.id!r} does not match jurisdiction and category")
        return self


def value_problem(kind: str, value: Any) -> str | None:
    """Return why `value` is not of `kind`, or None when it is."""
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "decimal":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind in ("string", "pattern"):
        ok = isinstance(value, str) and bool(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind == "integer_list":
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    elif kind == "string_map":
        ok = isinstance(value, dict) and all(
            isinstance(k, str | int) and isinstance(v, str) for k, v in value.items()
        )
    else:
        return f"unknown kind {kind!r}"
    if not ok:
        return f"not of kind {kind}"
    if kind == "pattern":
        try:
            re.compile(value)
        except re.error as error:
            return f"invalid regular expression ({error})"
    return None
