"""Green-consumption standards as dated, cited data, one YAML file per category."""

from greenloop.standards.loader import (
    DATA_DIR,
    Standard,
    StandardsError,
    all_standards,
    load_standard_file,
    load_standards,
    shipped_standards,
)

__all__ = [
    "DATA_DIR",
    "Standard",
    "StandardsError",
    "all_standards",
    "load_standard_file",
    "load_standards",
    "shipped_standards",
]
