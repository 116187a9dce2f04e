"""ImpactCalculator: activity savings and spend estimates from packaged factors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from greenloop.categories import Category, Status
from greenloop.identify.verdict import Verdict
from greenloop.impact.factorsets import (
    FactorSetError,
    LoadedFactorSet,
    load_packaged_factor_sets,
)
from greenloop.impact.grid import CN_GRID_SET, US_GRID_SET, GridSelector
from greenloop.impact.methods import ACTIVITY_METHODS, FactorBook
from greenloop.impact.record import Impact
from greenloop.impact.regions import country_of, normalize_region
from greenloop.impact.spend import (
    CATEGORY_SET,
    CONVERSION_SET,
    MCC_SET,
    SpendEstimator,
)

logger = logging.getLogger(__name__)

# Distinct (category, attributes, region) results kept for reuse. A batch run
# calls impact() once per distinct product and region, so this bounds memory
# for very large catalogues rather than sizing a working set.
UNIT_IMPACT_CACHE_SIZE = 65_536

# Spend estimates for a purchase with no known region use China's factors,
# because greenloop's purchases are Chinese unless their region states otherwise.
DEFAULT_SPEND_COUNTRY = "CN"


def scale_impact(impact: Impact, quantity: float) -> Impact:
    """Return `impact` with every kgCO2e value multiplied by `quantity`."""
    if quantity == 1.0:
        return replace(impact, extra=dict(impact.extra))
    return replace(
        impact,
        kg_co2e_per_year=impact.kg_co2e_per_year * quantity,
        kg_co2e_lifetime=impact.kg_co2e_lifetime * quantity,
        low_kg_co2e_lifetime=impact.low_kg_co2e_lifetime * quantity,
        high_kg_co2e_lifetime=impact.high_kg_co2e_lifetime * quantity,
        extra={**impact.extra, "quantity": quantity},
    )


class ImpactCalculator:
    """Compute Impacts from factor sets loaded once, fixed to an as-of date."""

    def __init__(self, sets: Mapping[str, LoadedFactorSet], as_of: date) -> None:
        self.as_of = as_of
        self.sets = dict(sets)
        for required in (CN_GRID_SET, MCC_SET, CATEGORY_SET, CONVERSION_SET):
            if required not in self.sets:
                raise FactorSetError(
                    f"factor set {required!r} not found; the packaged factors "
                    "folder greenloop/impact/factors must contain it"
                )
        grid = GridSelector(self.sets[CN_GRID_SET], self.sets.get(US_GRID_SET), as_of)
        method_sets = {
            set_id: factor_set
            for set_id, factor_set in self.sets.items()
            if factor_set.spec.for_methods
        }
        self.book = FactorBook(method_sets, grid)
        self.spend = SpendEstimator(
            self.sets[MCC_SET], self.sets[CATEGORY_SET], self.sets[CONVERSION_SET]
        )
        self._cached_unit_impact = lru_cache(maxsize=UNIT_IMPACT_CACHE_SIZE)(
            self._unit_impact
        )

    @classmethod
    def load(cls, as_of: date | None = None) -> ImpactCalculator:
        """Load the packaged factor sets, using values published by `as_of`.

        `as_of` defaults to today. It selects the newest grid-factor year whose
        announcement date is on or before it.
        """
        day = as_of if as_of is not None else date.today()
        calculator = cls(load_packaged_factor_sets(), day)
        logger.debug(
            "loaded %d factor sets as of %s (China grid year %d)",
            len(calculator.sets),
            day.isoformat(),
            calculator.book.grid.cn_year,
        )
        return calculator

    def versions(self) -> dict[str, str]:
        """Return factor set id -> version for every loaded set."""
        return {set_id: s.version for set_id, s in sorted(self.sets.items())}

    @property
    def grid_year(self) -> int:
        """Year of the China grid factors in use."""
        return self.book.grid.cn_year

    @property
    def currencies(self) -> frozenset[str]:
        """Currencies that spend estimates can convert."""
        return self.spend.currencies

    def impact(
        self, verdict: Verdict, quantity: float = 1.0, region: str | None = None
    ) -> Impact | None:
        """Compute the activity-based avoided emissions of a green verdict.

        Returns None when the verdict is not green, its category has no activity
        method (organic food, for example), or an attribute or factor the method
        needs is missing. `region` may be a code or a name; it is normalized.
        """
        if verdict.status != Status.GREEN or verdict.category is None:
            return None
        method = ACTIVITY_METHODS.get(Category(verdict.category))
        if method is None:
            return None
        if quantity < 0:
            raise ValueError(
                f"invalid quantity {quantity}: expected zero or more units; "
                "book returns as their own rows"
            )
        region_code = normalize_region(region) if region is not None else None
        attributes = tuple(sorted(verdict.attributes.items()))
        try:
            unit_impact = self._cached_unit_impact(
                verdict.category, attributes, region_code
            )
        except TypeError:
            # An unhashable attribute value (a list, say) cannot key the cache.
            unit_impact = method(self.book, verdict, region_code)
        if unit_impact is None:
            return None
        return scale_impact(unit_impact, quantity)

    def _unit_impact(
        self,
        category: Category,
        attributes: tuple[tuple[str, Any], ...],
        region_code: str | None,
    ) -> Impact | None:
        """Compute the Impact of one unit, since methods read only the attributes."""
        method = ACTIVITY_METHODS[Category(category)]
        verdict = Verdict(
            status=Status.GREEN,
            category=Category(category),
            standard_id=None,
            standard_version=None,
            attributes=dict(attributes),
        )
        return method(self.book, verdict, region_code)

    def spend_estimate(
        self,
        amount: Decimal,
        currency: str,
        mcc: int | None,
        category: str | None,
        region: str | None,
        year: int | None,
    ) -> Impact | None:
        """Estimate a purchase's footprint from its amount (basis spend_estimate).

        The MCC factor applies when the merchant's country has one, else the
        category factor. Returns None when neither exists, or when the currency is
        missing or has no exchange rate (`currencies` lists the supported ones).
        """
        if not currency:
            return None
        region_code = normalize_region(region) if region is not None else None
        country = country_of(region_code) if region_code else DEFAULT_SPEND_COUNTRY
        estimate = self.spend.estimate(
            Decimal(amount), currency.upper(), mcc, category, country, year
        )
        if estimate is not None and region_code is None:
            estimate = replace(
                estimate,
                assumptions=(
                    *estimate.assumptions,
                    f"Purchase region unknown: {DEFAULT_SPEND_COUNTRY} factors apply.",
                ),
            )
        return estimate
