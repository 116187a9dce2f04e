"""Load the dated green-consumption standards shipped in `standards/data`.

Each file `data/<jurisdiction>/<category>.yaml` becomes a `Standard`. A
parameter's value on a given date is the value keyed by the latest effective
date on or before it, and a standard's version on that date is the latest
effective date among all its values then in force.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from greenloop.categories import Category, Jurisdiction
from greenloop.standards.schema import (
    KIND_FORMS,
    DatedValue,
    Parameter,
    Source,
    StandardFile,
)

DATA_DIR = Path(__file__).resolve().parent / "data"

# The parameters the identifier reads from each category's file, with their
# kinds. A file that lacks one fails at load time instead of at the first
# purchase that needs it.
REQUIRED_PARAMETERS: dict[Category, dict[str, str]] = {
    Category.APPLIANCE: {
        "appliance_types": "string_list",
        "qualifying_max_grade": "integer",
        "top_tier_grade": "integer",
        "grade_count": "integer",
        "label_standards": "string_map",
    },
    Category.NEW_ENERGY_VEHICLE: {"vehicle_kinds": "string_list"},
    Category.PUBLIC_TRANSPORT: {
        "mcc_modes": "string_map",
        "excluded_mccs": "integer_list",
    },
    Category.ORGANIC_FOOD: {"code_pattern": "pattern"},
    Category.GREEN_FOOD: {
        "code_pattern": "pattern",
        "legacy_code_pattern": "pattern",
        "validity_years": "integer",
    },
    Category.GREEN_PRODUCT: {
        "qualifying_scope": "string",
        "attribute_scopes": "string_list",
    },
    Category.ENVIRONMENTAL_LABEL: {"backs_generic_claims": "boolean"},
    Category.SECOND_HAND: {
        "mccs": "integer_list",
        "vehicle_mccs": "integer_list",
        "item_kinds": "string_list",
    },
    Category.ENERGY_STAR: {"product_types": "string_list"},
    Category.EU_ECOLABEL: {
        "code_pattern": "pattern",
        "backs_generic_claims": "boolean",
    },
}


class StandardsError(ValueError):
    """A standards file that is missing, unreadable or not of the expected form."""


@dataclass(frozen=True)
class Standard:
    """One category's standard in one jurisdiction, with its dated parameters."""

    id: str
    jurisdiction: Jurisdiction
    category: Category
    title: str
    summary: str
    evidence: tuple[str, ...]
    registries: tuple[str, ...]
    parameters: dict[str, Parameter]
    path: Path

    def dated_value(self, name: str, as_of: date) -> tuple[date, DatedValue]:
        """Return the effective date and entry of parameter `name` on `as_of`.

        Raises KeyError when the file has no such parameter and LookupError when
        no value is in force yet on `as_of`.
        """
        parameter = self.parameters[name]
        in_force = [effective for effective in parameter.values if effective <= as_of]
        if not in_force:
            first = min(parameter.values).isoformat()
            raise LookupError(
                f"{self.id}: parameter {name!r} has no value in force on "
                f"{as_of.isoformat()}; its first value takes effect on {first}"
            )
        effective = max(in_force)
        return effective, parameter.values[effective]

    def value(self, name: str, as_of: date) -> Any:
        """Return the value of parameter `name` in force on `as_of`."""
        return self.dated_value(name, as_of)[1].value

    def source(self, name: str, as_of: date) -> Source:
        """Return the source of the value of `name` in force on `as_of`."""
        return self.dated_value(name, as_of)[1].source

    def in_force(self, as_of: date) -> bool:
        """Return whether every parameter has a value in force on `as_of`."""
        return all(
            min(parameter.values) <= as_of for parameter in self.parameters.values()
        )

    def version(self, as_of: date) -> str | None:
        """Return the latest effective date among values in force on `as_of`.

        The result is None when some parameter has no value in force yet.
        """
        if not self.in_force(as_of):
            return None
        latest = max(
            self.dated_value(name, as_of)[0] for name in sorted(self.parameters)
        )
        return latest.isoformat()


def load_standard_file(path: Path) -> Standard:
    """Read and validate one standards file.

    Raises StandardsError naming the file, the key and the expected form.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StandardsError(f"{path}: cannot read the file ({error})") from error
    except (yaml.YAMLError, ValueError) as error:
        # PyYAML raises ValueError for a date-like key such as 2024-13-01.
        raise StandardsError(f"{path}: invalid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise StandardsError(
            f"{path}: expected a mapping with keys id, jurisdiction, category, "
            f"title, summary, evidence, parameters; found {type(raw).__name__}"
        )
    try:
        parsed = StandardFile.model_validate(_iso_date_keys(raw))
    except ValidationError as error:
        raise StandardsError(_describe_validation_error(path, error)) from error

    _check_location(path, parsed)
    _check_required_parameters(path, parsed)
    return Standard(
        id=parsed.id,
        jurisdiction=parsed.jurisdiction,
        category=parsed.category,
        title=parsed.title,
        summary=parsed.summary,
        evidence=tuple(parsed.evidence),
        registries=tuple(parsed.registries),
        parameters=dict(parsed.parameters),
        path=path,
    )


def load_standards(
    jurisdiction: str | Jurisdiction, data_dir: Path | None = None
) -> dict[Category, Standard]:
    """Load every standards file of one jurisdiction, keyed by category."""
    code = _parse_jurisdiction(jurisdiction)
    folder = (data_dir or DATA_DIR) / code.value
    if not folder.is_dir():
        raise StandardsError(f"{folder}: no standards folder for jurisdiction {code}")
    return {
        standard.category: standard
        for standard in (
            load_standard_file(path) for path in sorted(folder.glob("*.yaml"))
        )
    }


@cache
def shipped_standards(jurisdiction: str) -> dict[Category, Standard]:
    """Return the shipped standards of one jurisdiction, loaded once per process."""
    return load_standards(jurisdiction)


def all_standards(data_dir: Path | None = None) -> list[Standard]:
    """Load the standards of every jurisdiction, ordered by id."""
    standards: list[Standard] = []
    for code in Jurisdiction:
        standards.extend(load_standards(code, data_dir).values())
    return sorted(standards, key=lambda standard: standard.id)


def _parse_jurisdiction(value: str | Jurisdiction) -> Jurisdiction:
    try:
        return Jurisdiction(value)
    except ValueError:
        allowed = ", ".join(code.value for code in Jurisdiction)
        raise StandardsError(
            f"unknown jurisdiction {value!r}; expected one of {allowed}"
        ) from None


def _check_location(path: Path, parsed: StandardFile) -> None:
    expected = (parsed.jurisdiction.value, f"{parsed.category.value}.yaml")
    if (path.parent.name, path.name) != expected:
        raise StandardsError(
            f"{path}: file declares {parsed.id} and must be stored as "
            f"{expected[0]}/{expected[1]}; move it or fix its jurisdiction and category"
        )


def _check_required_parameters(path: Path, parsed: StandardFile) -> None:
    required = REQUIRED_PARAMETERS[parsed.category]
    for name, kind in required.items():
        parameter = parsed.parameters.get(name)
        if parameter is None:
            raise StandardsError(
                f"{path}: parameters.{name} is missing; a {parsed.category} standard "
                f"needs it as {KIND_FORMS[kind]}"
            )
        if parameter.kind != kind:
            raise StandardsError(
                f"{path}: parameters.{name}.kind is {parameter.kind}; "
                f"expected {kind} ({KIND_FORMS[kind]})"
            )


def _describe_validation_error(path: Path, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        location = ".".join(_format_location(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            message = "unknown key; remove it or fix its spelling"
        elif problem["type"] == "missing":
            message = "required key is missing"
        else:
            message = problem["msg"]
        lines.append(f"{path}: {location or '(top level)'}: {message}")
    return "\n".join(lines)


def _iso_date_keys(value: Any) -> Any:
    # PyYAML reads 2024-01-01 as a date; as a string it appears in error paths
    # exactly as written, and pydantic still parses it into a date.
    if isinstance(value, dict):
        return {
            (key.isoformat() if isinstance(key, date) else key): _iso_date_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_iso_date_keys(item) for item in value]
    return value


def _format_location(part: Any) -> str:
    text = str(part)
    return text if re.fullmatch(r"[\w-]+", text) else repr(text)


def summarize(standards: Iterable[Standard], as_of: date) -> list[dict[str, str]]:
    """Return one row per standard: id, title, version on `as_of`, file name."""
    return [
        {
            "id": standard.id,
            "title": standard.title,
            "version": standard.version(as_of) or "not in force",
            "file": f"{standard.jurisdiction.value}/{standard.path.name}",
        }
        for standard in standards
    ]
