"""Spend-based footprint estimates: amount x kgCO2e per EUR of a base year.

An estimate gives roughly how much CO2 the money spent is associated with. It
never expresses a saving and is never added to activity-based results.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from greenloop.impact.factorsets import Factor, LoadedFactorSet
from greenloop.impact.methods import SPEND_ESTIMATE
from greenloop.impact.record import Basis, FactorRef, Impact

MCC_SET = "spend-mcc"
CATEGORY_SET = "spend-category"
CONVERSION_SET = "spend-conversion"
BASE_CURRENCY = "EUR"


@dataclass(frozen=True, slots=True)
class PriceConversion:
    """How many base-year EUR one unit of a currency spent in a year is worth."""

    eur_per_unit: Decimal
    factors: tuple[FactorRef, ...]
    assumptions: tuple[str, ...]
    price_year: int


class SpendEstimator:
    """Spend-based estimates from the MCC and category factor sets."""

    def __init__(
        self,
        mcc_set: LoadedFactorSet,
        category_set: LoadedFactorSet,
        conversion_set: LoadedFactorSet,
    ) -> None:
        self.mcc_set = mcc_set
        self.category_set = category_set
        self.conversion_set = conversion_set
        self.currencies = self._currencies()
        self._inflation = self._inflation_by_currency()
        # Conversions depend only on (currency, base year, purchase year), and a
        # batch has few distinct ones, so each is computed once.
        self._conversions: dict[tuple[str, int, int | None], PriceConversion | None]
        self._conversions = {}

    def _currencies(self) -> frozenset[str]:
        currencies = {BASE_CURRENCY}
        for factor in self.conversion_set.with_prefix("fx."):
            currencies.add(factor.id.split(".")[1].split("_per_")[0])
        return frozenset(currencies)

    def _inflation_by_currency(self) -> dict[str, dict[int, Factor]]:
        table: dict[str, dict[int, Factor]] = {}
        for factor in self.conversion_set.with_prefix("inflation."):
            _, currency, year = factor.id.split(".")
            table.setdefault(currency, {})[int(year)] = factor
        return table

    def _ref(self, factor_set: LoadedFactorSet, factor: Factor) -> FactorRef:
        return FactorRef(factor_set.id, factor.id, factor_set.version, factor.year)

    def convert(
        self, currency: str, base_year: int, purchase_year: int | None
    ) -> PriceConversion | None:
        """Return base-year EUR per currency unit, or None for an unknown currency."""
        key = (currency, base_year, purchase_year)
        if key not in self._conversions:
            self._conversions[key] = self._convert(currency, base_year, purchase_year)
        return self._conversions[key]

    def _convert(
        self, currency: str, base_year: int, purchase_year: int | None
    ) -> PriceConversion | None:
        refs: list[FactorRef] = []
        assumptions: list[str] = []
        if currency == BASE_CURRENCY:
            fx = Decimal(1)
        else:
            fx_factor = self.conversion_set.find(f"fx.{currency}_per_EUR.{base_year}")
            if fx_factor is None:
                return None
            refs.append(self._ref(self.conversion_set, fx_factor))
            fx = Decimal(str(fx_factor.value))

        rates = self._inflation.get(currency, {})
        if not rates:
            return None
        first_year = min(rates) - 1
        last_year = max(rates)
        year = purchase_year
        if year is None:
            year = last_year
            assumptions.append(f"Purchase year unknown: prices of {last_year} assumed.")
        elif year > last_year:
            assumptions.append(
                f"No {currency} inflation after {last_year}: {year} prices are "
                f"taken as {last_year} prices."
            )
            year = last_year
        elif year < first_year:
            assumptions.append(
                f"No {currency} inflation before {first_year + 1}: {year} prices "
                f"are taken as {first_year} prices."
            )
            year = first_year

        # price level of `year` relative to `base_year`
        level = Decimal(1)
        for step in range(min(base_year, year) + 1, max(base_year, year) + 1):
            factor = rates.get(step)
            if factor is None:
                return None
            refs.append(self._ref(self.conversion_set, factor))
            change = 1 + Decimal(str(factor.value)) / 100
            level = level * change if year > base_year else level / change
        eur_per_unit = 1 / (level * fx)
        return PriceConversion(eur_per_unit, tuple(refs), tuple(assumptions), year)

    def _spend_factor(
        self, mcc: int | None, category: str | None, country: str
    ) -> list[tuple[LoadedFactorSet, Factor]]:
        found = []
        if mcc is not None:
            factor = self.mcc_set.find(f"mcc.{mcc}.{country}")
            if factor is not None:
                found.append((self.mcc_set, factor))
        if category is not None:
            factor = self.category_set.find(f"category.{category}.{country}")
            if factor is not None:
                found.append((self.category_set, factor))
        return found

    def estimate(
        self,
        amount: Decimal,
        currency: str,
        mcc: int | None,
        category: str | None,
        country: str,
        year: int | None,
    ) -> Impact | None:
        """Estimate a purchase's footprint, or None when no factor or rate applies."""
        candidates = []
        for factor_set, factor in self._spend_factor(mcc, category, country):
            if factor.year is None:
                continue
            conversion = self.convert(currency, factor.year, year)
            if conversion is None:
                continue
            kg_exact = amount * conversion.eur_per_unit * Decimal(str(factor.value))
            candidates.append((float(kg_exact), factor_set, factor, conversion))
        if not candidates:
            return None

        # The MCC factor comes first when both exist, because it reflects the merchant's
        # trade.
        kg, factor_set, factor, conversion = candidates[0]
        values = [candidate[0] for candidate in candidates]
        refs = [self._ref(factor_set, factor), *conversion.factors]
        assumptions = [
            "Estimate of the purchase's footprint from spending, not a saving: "
            "never add it to activity-based results.",
            f"{currency} converted to EUR of {factor.year} with the "
            f"{factor.year} ECB annual average rate after deflating "
            f"{conversion.price_year} prices with {currency} consumer-price "
            "inflation.",
            *conversion.assumptions,
        ]
        if len(candidates) > 1:
            assumptions.append(
                "Range spans the MCC-based and category-based footprint tables."
            )
        return Impact(
            method=SPEND_ESTIMATE.id,
            method_version=SPEND_ESTIMATE.version,
            basis=Basis.SPEND_ESTIMATE,
            kg_co2e_per_year=kg,
            kg_co2e_lifetime=kg,
            low_kg_co2e_lifetime=min(values),
            high_kg_co2e_lifetime=max(values),
            lifetime_years=1.0,
            factors=tuple(refs),
            assumptions=tuple(assumptions),
            region_used=country,
            extra={
                "spend_factor": factor.id,
                "spend_factor_set": factor_set.id,
                "licence": factor_set.spec.licence,
                "attribution": factor_set.spec.attribution,
                "kg_co2e_per_eur": factor.value,
                "eur_per_currency_unit": str(conversion.eur_per_unit),
                "base_year": factor.year,
            },
        )
