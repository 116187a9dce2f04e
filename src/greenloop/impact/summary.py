"""Impact totals for run and impact reports, with an ICMA-shaped table.

The impact table follows the ICMA impact-reporting metric "annual GHG emissions
reduced/avoided (tCO2e)". It reports the metric per category, with the methods
and factor sources behind each figure. Activity
results and spend estimates are totalled apart and never summed together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from greenloop.impact.factorsets import LoadedFactorSet, load_packaged_factor_sets
from greenloop.impact.record import Basis, FactorRef, Impact

KG_PER_TONNE = 1000.0
ICMA_METRIC = "Annual GHG emissions reduced/avoided (tCO2e)"
GRID_LEVELS = ("provincial", "regional", "national")
UNKNOWN = "unknown"


@lru_cache(maxsize=1)
def _packaged_sets() -> dict[str, LoadedFactorSet]:
    return load_packaged_factor_sets()


class _Total:
    """Running sums of one group of impacts, in kgCO2e."""

    def __init__(self) -> None:
        self.purchases = 0
        self.per_year: list[float] = []
        self.lifetime: list[float] = []
        self.low: list[float] = []
        self.high: list[float] = []

    def add(self, impact: Impact, purchases: int = 1) -> None:
        self.purchases += purchases
        self.per_year.append(impact.kg_co2e_per_year)
        self.lifetime.append(impact.kg_co2e_lifetime)
        self.low.append(impact.low_kg_co2e_lifetime)
        self.high.append(impact.high_kg_co2e_lifetime)

    def as_dict(self) -> dict[str, Any]:
        return {
            "purchases": self.purchases,
            "t_co2e_per_year": math.fsum(self.per_year) / KG_PER_TONNE,
            "t_co2e_lifetime": math.fsum(self.lifetime) / KG_PER_TONNE,
            "low_t_co2e_lifetime": math.fsum(self.low) / KG_PER_TONNE,
            "high_t_co2e_lifetime": math.fsum(self.high) / KG_PER_TONNE,
        }


class _BasisTotals:
    """Totals of one basis: per run, per category, per region, per method."""

    def __init__(self) -> None:
        self.run = _Total()
        self.by_category: dict[str, _Total] = {}
        self.by_region: dict[str, _Total] = {}
        self.methods: dict[tuple[str, str], int] = {}
        self.methods_by_category: dict[str, set[str]] = {}
        self.factors_by_category: dict[str, set[FactorRef]] = {}
        self.grid_use = dict.fromkeys(GRID_LEVELS, 0)
        self.without_grid = 0

    def add(
        self, category: str, region: str, impact: Impact, purchases: int = 1
    ) -> None:
        self.run.add(impact, purchases)
        self.by_category.setdefault(category, _Total()).add(impact, purchases)
        self.by_region.setdefault(region, _Total()).add(impact, purchases)
        key = (impact.method, impact.method_version)
        self.methods[key] = self.methods.get(key, 0) + purchases
        method_label = f"{impact.method}@{impact.method_version}"
        self.methods_by_category.setdefault(category, set()).add(method_label)
        self.factors_by_category.setdefault(category, set()).update(impact.factors)
        if impact.grid_level in self.grid_use:
            self.grid_use[impact.grid_level] += purchases
        else:
            self.without_grid += purchases

    def as_dict(self, with_grid: bool) -> dict[str, Any]:
        result: dict[str, Any] = {
            "run": self.run.as_dict(),
            "by_category": {
                key: total.as_dict() for key, total in sorted(self.by_category.items())
            },
            "by_region": {
                key: total.as_dict() for key, total in sorted(self.by_region.items())
            },
            "methods": [
                {"method": method, "version": version, "purchases": count}
                for (method, version), count in sorted(self.methods.items())
            ],
        }
        if with_grid:
            result["grid_factor_use"] = {
                **self.grid_use,
                "no_grid_factor": self.without_grid,
            }
        return result


def _factor_source(ref: FactorRef) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "factor_set": ref.factor_set,
        "factor_id": ref.factor_id,
        "version": ref.version,
        "year": ref.year,
    }
    factor_set = _packaged_sets().get(ref.factor_set)
    factor = factor_set.find(ref.factor_id) if factor_set is not None else None
    if factor_set is not None and factor is not None:
        entry.update(
            {
                "value": factor.value,
                "unit": factor.unit,
                "status": str(factor.status),
                "source": factor.source.title,
                "url": factor.source.url,
                "licence": factor_set.spec.licence,
            }
        )
    return entry


def _icma_table(activity: _BasisTotals) -> dict[str, Any]:
    rows = []
    for category, total in sorted(activity.by_category.items()):
        sums = total.as_dict()
        rows.append(
            {
                "category": category,
                "purchases": sums["purchases"],
                "annual_t_co2e_avoided": sums["t_co2e_per_year"],
                "lifetime_t_co2e_avoided": sums["t_co2e_lifetime"],
                "low_lifetime_t_co2e": sums["low_t_co2e_lifetime"],
                "high_lifetime_t_co2e": sums["high_t_co2e_lifetime"],
                "methods": sorted(activity.methods_by_category[category]),
                "factor_sets": sorted(
                    {ref.factor_set for ref in activity.factors_by_category[category]}
                ),
            }
        )
    run = activity.run.as_dict()
    return {
        "metric": ICMA_METRIC,
        "basis": str(Basis.ACTIVITY),
        "rows": rows,
        "total_annual_t_co2e_avoided": run["t_co2e_per_year"],
        "total_lifetime_t_co2e_avoided": run["t_co2e_lifetime"],
    }


def summarize_impacts(
    rows: Iterable[
        tuple[str | None, str | None, Impact]
        | tuple[str | None, str | None, Impact, int]
    ],
) -> dict[str, Any]:
    """Total impacts per category, region and run, keeping the two bases apart.

    Each row is (category, region, impact) for one purchase, or (category,
    region, impact, purchases) where the impact already sums that many
    purchases. Returns plain JSON
    values: `activity` and `spend_estimate` totals in tCO2e per year and over
    lifetimes, how many activity results used a provincial, regional or national
    grid factor, the ICMA-shaped table of annual tCO2e avoided (activity only),
    and every method and factor source used.
    """
    activity = _BasisTotals()
    spend = _BasisTotals()
    all_factors: set[FactorRef] = set()
    for row in rows:
        category, region, impact = row[0], row[1], row[2]
        purchases = row[3] if len(row) == 4 else 1
        totals = activity if impact.basis == Basis.ACTIVITY else spend
        totals.add(category or UNKNOWN, region or UNKNOWN, impact, purchases)
        all_factors.update(impact.factors)

    from greenloop.impact.methods import ALL_METHODS

    titles = {method.id: method.title for method in ALL_METHODS}
    used_methods = sorted({*activity.methods, *spend.methods})
    return {
        "activity": activity.as_dict(with_grid=True),
        "spend_estimate": spend.as_dict(with_grid=False),
        "icma_impact_table": _icma_table(activity),
        "methods": [
            {"method": method, "version": version, "title": titles.get(method)}
            for method, version in used_methods
        ],
        "factor_sources": [
            _factor_source(ref)
            for ref in sorted(
                all_factors, key=lambda r: (r.factor_set, r.factor_id, r.version)
            )
        ],
        "notes": [
            "Activity results are avoided emissions; spend estimates are purchase "
            "footprints. The two are never added together.",
        ],
    }
