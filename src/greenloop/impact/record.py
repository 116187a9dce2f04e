"""The Impact record: the CO2 a green purchase avoids, with its provenance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Basis(StrEnum):
    """The basis of an impact figure. Totals keep the two bases apart."""

    ACTIVITY = "activity"
    SPEND_ESTIMATE = "spend_estimate"


@dataclass(frozen=True, slots=True)
class FactorRef:
    """A reference to one emission factor value: its set, id, version and year."""

    factor_set: str
    factor_id: str
    version: str
    year: int | None = None


@dataclass(frozen=True, slots=True)
class Impact:
    """Avoided emissions of one purchase line (all its quantity), in kgCO2e."""

    method: str
    method_version: str
    basis: Basis
    kg_co2e_per_year: float
    kg_co2e_lifetime: float
    low_kg_co2e_lifetime: float
    high_kg_co2e_lifetime: float
    lifetime_years: float
    factors: tuple[FactorRef, ...] = ()
    assumptions: tuple[str, ...] = ()
    region_used: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Which grid factor an electricity-based method used: "provincial",
    # "regional" or "national"; None for methods that use no grid factor.
    grid_level: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the impact as plain JSON-ready values."""
        return asdict(self)
