"""Load a YAML configuration file into a pydantic model with readable errors.

The funding and incentives packages load their files through `load_yaml_model`
too, so every bad file fails the same way: with the file, the field path, the
value found and the expected form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that is missing, not YAML, or fails validation."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid configuration file {path}:\n{listed}")


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read `path` as YAML and validate it as `model`; raise ConfigError if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(
            path, ["file not found; pass the path of a YAML file"]
        ) from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(path, [f"not valid YAML: {error}"]) from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(path, describe_validation_error(error, model)) from error


def describe_validation_error(
    error: ValidationError, model: type[BaseModel]
) -> list[str]:
    """Turn pydantic errors into one line each: field path, problem, value, form."""
    problems = []
    for item in error.errors():
        location = format_location(item["loc"])
        message = f"field {location}: {item['msg']}"
        if item["type"] != "missing":
            message += f" (found {item.get('input')!r})"
        expected = _field_description(model, item["loc"])
        if expected:
            message += f"; expected {expected}"
        problems.append(message)
    return problems


def format_location(location: tuple[Any, ...]) -> str:
    """Format a pydantic error location as `facilities[0].facility_rate`."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _field_description(model: type[BaseModel], location: tuple[Any, ...]) -> str | None:
    """Return the description of the field at `location`, following nested models."""
    current: Any = model
    description = None
    for part in location:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return description
        field = fields[part]
        description = field.description
        current = _nested_model(field.annotation)
    return description


def _nested_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        found = _nested_model(argument)
        if found is not None:
            return found
    return None
