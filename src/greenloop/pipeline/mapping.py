"""Column mappings: how a foreign export becomes purchase fields.

A mapping is a YAML file. Each entry under `columns` maps a purchase field to a
source column, either by name or with a small spec:

```yaml
name: uci-online-retail
columns:
  purchase_id: {template: "{InvoiceNo}:{StockCode}", number_repeats: true}
  user_id: {column: CustomerID, integer_text: true}
  quantity: Quantity
constants:
  currency: GBP
returns:
  prefix: {column: InvoiceNo, value: C}
  negative_quantity: true
  match_on: [user_id, sku]
```

The shipped mappings live beside this module and can be named without a path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from greenloop.pipeline.schema import PURCHASE_FIELDS

SHIPPED_MAPPINGS = Path(__file__).parent / "mappings"
TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")
ROW_NUMBER_COLUMN = "__row__"
IDENTITY_MAPPING_NAME = "purchase-fields"


class MappingError(ValueError):
    """A mapping file is missing, unreadable or invalid."""


class ColumnSpec(BaseModel):
    """The source of one purchase field: a column or a template, and its parsing."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    template: str | None = None
    number_repeats: bool = Field(
        default=False,
        description="Append :2, :3 ... to repeated template values, in row order.",
    )
    integer_text: bool = Field(
        default=False, description="Render a numeric id such as 17850.0 as 17850."
    )
    negate: bool = Field(default=False, description="Multiply a number by -1.")
    date_format: str | None = Field(
        default=None, description="strptime format, for example %d/%m/%Y %H:%M."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSpec:
        if (self.column is None) == (self.template is None):
            raise ValueError("give exactly one of 'column' or 'template'")
        return self


class PrefixRule(BaseModel):
    """Rows whose `column` starts with `value` are returns."""

    model_config = ConfigDict(extra="forbid")

    column: str
    value: str


class ReturnRules(BaseModel):
    """The rules that recognise returns and cancellations and match them."""

    model_config = ConfigDict(extra="forbid")

    prefix: PrefixRule | None = None
    negative_quantity: bool = True
    match_on: list[str] = Field(default_factory=lambda: ["user_id", "sku"])


class ColumnMapping(BaseModel):
    """A complete mapping from one export format onto purchase fields."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    source: str = ""
    columns: dict[str, str | ColumnSpec] = Field(default_factory=dict)
    constants: dict[str, str | int | float] = Field(default_factory=dict)
    returns: ReturnRules = Field(default_factory=ReturnRules)

    @model_validator(mode="after")
    def _known_fields(self) -> ColumnMapping:
        for field in [*self.columns, *self.constants]:
            if field not in PURCHASE_FIELDS:
                known = ", ".join(PURCHASE_FIELDS)
                raise ValueError(f"unknown purchase field {field!r}; known: {known}")
        for field in self.returns.match_on:
            if field not in PURCHASE_FIELDS:
                raise ValueError(f"returns.match_on names unknown field {field!r}")
        return self

    def spec(self, field: str) -> ColumnSpec | None:
        """Return the column spec of `field`, or None when it is not mapped."""
        value = self.columns.get(field)
        if value is None:
            return None
        if isinstance(value, str):
            return ColumnSpec(column=value)
        return value

    def source_columns(self) -> set[str]:
        """Return every source column the mapping reads."""
        names: set[str] = set()
        for field in self.columns:
            spec = self.spec(field)
            assert spec is not None
            if spec.column:
                names.add(spec.column)
            if spec.template:
                names.update(TEMPLATE_FIELD.findall(spec.template))
        if self.returns.prefix:
            names.add(self.returns.prefix.column)
        names.discard(ROW_NUMBER_COLUMN)
        return names


def identity_mapping(columns: list[str]) -> ColumnMapping:
    """Return the mapping for an input whose columns already carry field names."""
    mapped = {name: name for name in columns if name in PURCHASE_FIELDS}
    return ColumnMapping(name=IDENTITY_MAPPING_NAME, columns=dict(mapped))


def load_mapping(name_or_path: str | Path) -> ColumnMapping:
    """Load a mapping from a file, or a shipped mapping by name."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = SHIPPED_MAPPINGS / f"{name_or_path}.yaml"
        if not shipped.exists():
            available = ", ".join(
                sorted(p.stem for p in SHIPPED_MAPPINGS.glob("*.yaml"))
            )
            raise MappingError(
                f"mapping {str(name_or_path)!r} not found: give a YAML file path or "
                f"one of the shipped mappings ({available})"
            )
        path = shipped
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(f"cannot read mapping {path}: {error}") from error
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MappingError(
            f"mapping {path} is not valid YAML: {_yaml_problem(error)}; "
            f"see the shipped mappings in {SHIPPED_MAPPINGS} for the format"
        ) from error
    if not isinstance(document, dict):
        raise MappingError(f"mapping {path} must be a YAML mapping with 'columns'")
    try:
        return ColumnMapping.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}"
            for item in error.errors()
        )
        raise MappingError(f"invalid mapping {path}: {problems}") from error


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Return a YAML syntax error on one line, with its line and column."""
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def shipped_mapping_names() -> list[str]:
    """Return the names of the mappings shipped with greenloop."""
    return sorted(path.stem for path in SHIPPED_MAPPINGS.glob("*.yaml"))
