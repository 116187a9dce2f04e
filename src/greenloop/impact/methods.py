"""Activity-based methods: the CO2 one unit of a green purchase avoids.

Each method returns the Impact of one unit (one appliance, one vehicle, one
trip, one second-hand item); the calculator scales it by the quantity. A method
returns None when the verdict lacks an attribute it needs or the factor sets have
no value for the case, so the caller can tell "no method" from "zero saving".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from greenloop.categories import Category
from greenloop.identify.verdict import Verdict
from greenloop.impact.factorsets import Factor, LoadedFactorSet
from greenloop.impact.grid import GridChoice, GridSelector
from greenloop.impact.record import Basis, FactorRef, Impact


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """The id and version of a method, recorded on every Impact it produces."""

    id: str
    version: str
    title: str


APPLIANCE_GRADE = MethodSpec(
    "appliance-grade-savings",
    "1.0",
    "China Energy Label grade versus the market-average grade,"
    " x grid factor x lifetime",
)
ENERGY_STAR = MethodSpec(
    "energy-star-savings",
    "1.0",
    "ENERGY STAR annual kWh versus the US federal standard, x grid factor x lifetime",
)
NEV_USE_PHASE = MethodSpec(
    "nev-use-phase-savings",
    "1.0",
    "Petrol car fuel CO2 minus NEV charging CO2 per km, x km per year x years",
)
PUBLIC_TRANSPORT_TRIP = MethodSpec(
    "public-transport-trip-savings",
    "1.0",
    "CO2 avoided per public-transport trip against the car trip it replaces",
)
SECOND_HAND = MethodSpec(
    "second-hand-avoided-new",
    "1.0",
    "Embodied CO2 of a new item x share of purchases that replace a new item",
)
SPEND_ESTIMATE = MethodSpec(
    "spend-estimate",
    "1.0",
    "Amount in base-year EUR x EXIOBASE kgCO2e per EUR (footprint, not a saving)",
)

ALL_METHODS = (
    APPLIANCE_GRADE,
    ENERGY_STAR,
    NEV_USE_PHASE,
    PUBLIC_TRANSPORT_TRIP,
    SECOND_HAND,
    SPEND_ESTIMATE,
)


class FactorBook:
    """The loaded factor sets, with helpers that record which factor was read."""

    def __init__(self, sets: Mapping[str, LoadedFactorSet], grid: GridSelector):
        self.sets = dict(sets)
        self.grid = grid
        # Every factor with its reference, built once so methods only look up.
        self._entries: dict[tuple[str, str], tuple[Factor, FactorRef]] = {
            (set_id, factor.id): (
                factor,
                FactorRef(set_id, factor.id, factor_set.version, factor.year),
            )
            for set_id, factor_set in self.sets.items()
            for factor in factor_set.spec.factors
        }

    def entry(self, set_id: str, factor_id: str) -> tuple[Factor, FactorRef] | None:
        """Return a factor and its reference, or None when the set lacks it."""
        return self._entries.get((set_id, factor_id))

    def find(self, set_id: str, factor_id: str) -> Factor | None:
        """Return a factor, or None when the set lacks it."""
        found = self._entries.get((set_id, factor_id))
        return found[0] if found is not None else None


@dataclass
class _Draft:
    """An Impact under construction: values plus the factors and assumptions used."""

    method: MethodSpec
    book: FactorBook
    # A dict keeps the order of first use and drops repeats.
    factors: dict[FactorRef, None] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def use(self, set_id: str, factor_id: str) -> Factor | None:
        found = self.book.entry(set_id, factor_id)
        if found is None:
            return None
        factor, ref = found
        self.factors[ref] = None
        return factor

    def use_grid(self, choice: GridChoice) -> None:
        self.factors[choice.ref] = None

    def finish(
        self,
        kg_per_year: float,
        years: float,
        low_lifetime: float,
        high_lifetime: float,
        grid: GridChoice | None = None,
    ) -> Impact:
        lifetime = kg_per_year * years
        return Impact(
            method=self.method.id,
            method_version=self.method.version,
            basis=Basis.ACTIVITY,
            kg_co2e_per_year=kg_per_year,
            kg_co2e_lifetime=lifetime,
            low_kg_co2e_lifetime=min(low_lifetime, lifetime),
            high_kg_co2e_lifetime=max(high_lifetime, lifetime),
            lifetime_years=years,
            factors=tuple(self.factors),
            assumptions=tuple(self.assumptions),
            region_used=grid.region_used if grid is not None else None,
            extra=dict(self.extra),
            grid_level=grid.level if grid is not None else None,
        )


def _grid_for(
    draft: _Draft, region: str | None, default_country: str
) -> GridChoice | None:
    choice = draft.book.grid.choose(region, default_country)
    if choice is None:
        return None
    draft.use_grid(choice)
    if region is None:
        draft.assumptions.append(
            f"Purchase region unknown: the {default_country} national grid factor "
            "applies."
        )
    elif choice.region_used != region and choice.level != "regional":
        draft.assumptions.append(
            f"No grid factor for region {region}: the {choice.region_used} "
            "national grid factor applies."
        )
    draft.extra["grid_kg_co2_per_kwh"] = choice.kg_per_kwh
    return choice


def _int_attribute(verdict: Verdict, key: str) -> int | None:
    value = verdict.attributes.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_attribute(verdict: Verdict, key: str) -> float | None:
    value = verdict.attributes.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- appliances graded by the China Energy Label -------------------------------


def _ac_kwh_per_year(draft: _Draft, appliance_type: str, grade: int) -> float | None:
    """Annual kWh of the reference unit at `grade`: capacity x load hours / APF."""
    set_id = "cn-appliance-energy"
    capacity = draft.use(set_id, f"{appliance_type}.rated_capacity_kw")
    hours = draft.use(set_id, f"{appliance_type}.load_hours")
    apf = draft.use(set_id, f"{appliance_type}.apf.grade_{grade}")
    if capacity is None or hours is None or apf is None or apf.value <= 0:
        return None
    return capacity.value * hours.value / apf.value


def appliance_grade_savings(
    book: FactorBook, verdict: Verdict, region: str | None
) -> Impact | None:
    """Compute the saving of one appliance bought at a better grade than baseline."""
    appliance_type = verdict.attributes.get("appliance_type")
    grade = _int_attribute(verdict, "energy_label_grade")
    if not isinstance(appliance_type, str) or grade is None:
        return None
    draft = _Draft(APPLIANCE_GRADE, book)
    set_id = "cn-appliance-energy"
    baseline = draft.use(set_id, f"{appliance_type}.baseline_grade")
    worst = draft.use(set_id, f"{appliance_type}.worst_grade")
    lifetime = draft.use("appliance-lifetimes", appliance_type)
    standard = draft.use(set_id, f"{appliance_type}.standard")
    if baseline is None or worst is None or lifetime is None:
        return None
    # A grade means nothing without its standard edition: grades under another
    # edition than the one the factor set describes get no saving.
    edition = verdict.attributes.get("energy_label_standard")
    if edition is not None and (standard is None or standard.label != edition):
        return None
    baseline_grade = int(baseline.value)
    worst_grade = int(worst.value)
    if not 1 <= grade <= worst_grade:
        return None

    purchased_kwh = _ac_kwh_per_year(draft, appliance_type, grade)
    baseline_kwh = _ac_kwh_per_year(draft, appliance_type, baseline_grade)
    # The range runs from the next grade down (the buyer's likely alternative at
    # the least) to the market-access floor (the most a buyer could have chosen).
    next_grade = min(grade + 1, worst_grade)
    next_kwh = _ac_kwh_per_year(draft, appliance_type, next_grade)
    worst_kwh = _ac_kwh_per_year(draft, appliance_type, worst_grade)
    if purchased_kwh is None or baseline_kwh is None:
        return None
    if next_kwh is None or worst_kwh is None:
        return None
    grid = _grid_for(draft, region, "CN")
    if grid is None:
        return None

    kwh_saved = max(0.0, baseline_kwh - purchased_kwh)
    kg_per_year = kwh_saved * grid.kg_per_kwh
    years = lifetime.value
    low = max(0.0, min(next_kwh, baseline_kwh) - purchased_kwh) * grid.kg_per_kwh
    high = max(0.0, worst_kwh - purchased_kwh) * grid.kg_per_kwh
    draft.extra.update(
        {
            "appliance_type": appliance_type,
            "energy_label_grade": grade,
            "baseline_grade": baseline_grade,
            "purchased_kwh_per_year": purchased_kwh,
            "baseline_kwh_per_year": baseline_kwh,
            "kwh_saved_per_year": kwh_saved,
        }
    )
    if standard is not None and standard.label:
        draft.extra["energy_label_standard"] = standard.label
    draft.assumptions.extend(
        [
            f"The buyer would otherwise have bought a grade-{baseline_grade} unit "
            "(market average).",
            "Reference unit and use: rated capacity x equivalent full-load hours "
            "from the factor set; the unit's own capacity is not known.",
            f"Saving counted over {years:g} years of use.",
        ]
    )
    if grade >= baseline_grade:
        draft.assumptions.append(
            f"Grade {grade} is not better than the baseline grade {baseline_grade}, "
            "so no saving is counted."
        )
    return draft.finish(kg_per_year, years, low * years, high * years, grid)


# --- ENERGY STAR ----------------------------------------------------------------


def energy_star_savings(
    book: FactorBook, verdict: Verdict, region: str | None
) -> Impact | None:
    """Compute the saving of one ENERGY STAR product against the federal standard."""
    product_type = verdict.attributes.get("product_type")
    annual_kwh = _float_attribute(verdict, "annual_kwh")
    if not isinstance(product_type, str) or annual_kwh is None or annual_kwh < 0:
        return None
    draft = _Draft(ENERGY_STAR, book)
    baseline_kwh = _float_attribute(verdict, "federal_standard_kwh")
    if baseline_kwh is None:
        baseline_kwh = _baseline_from_imef(draft, verdict, annual_kwh)
    if baseline_kwh is None:
        return None
    lifetime = draft.use("appliance-lifetimes", product_type)
    if lifetime is None:
        return None
    grid = _grid_for(draft, region, "US")
    if grid is None:
        return None

    kwh_saved = max(0.0, baseline_kwh - annual_kwh)
    kg_per_year = kwh_saved * grid.kg_per_kwh
    years = lifetime.value
    draft.extra.update(
        {
            "product_type": product_type,
            "annual_kwh": annual_kwh,
            "federal_standard_kwh": baseline_kwh,
            "kwh_saved_per_year": kwh_saved,
        }
    )
    if verdict.attributes.get("energy_star_id") is not None:
        draft.extra["energy_star_id"] = verdict.attributes["energy_star_id"]
    draft.assumptions.extend(
        [
            "The buyer would otherwise have bought a model that just meets the US "
            "federal standard.",
            "Annual kWh are the certified test-procedure values, not metered use.",
            f"Saving counted over {years:g} years of use.",
        ]
    )
    if baseline_kwh <= annual_kwh:
        draft.assumptions.append(
            "Certified use is at or above the federal standard, so no saving is "
            "counted."
        )
    low_factor, high_factor = _us_subregion_range(draft, grid)
    low = kwh_saved * low_factor * years
    high = kwh_saved * high_factor * years
    return draft.finish(kg_per_year, years, low, high, grid)


def _us_subregion_range(draft: _Draft, grid: GridChoice) -> tuple[float, float]:
    """Return the grid factors bounding a US purchase whose subregion is unknown.

    Outside the US national factor the range collapses to the factor used.
    NOTE: the kWh values themselves carry no uncertainty in this range.
    """
    if grid.region_used != "US":
        return grid.kg_per_kwh, grid.kg_per_kwh
    year = grid.factor.year
    lowest = draft.use("us-grid", f"subregion_min.{year}")
    highest = draft.use("us-grid", f"subregion_max.{year}")
    if lowest is None or highest is None:
        return grid.kg_per_kwh, grid.kg_per_kwh
    draft.assumptions.append(
        "Range spans the lowest and highest eGRID subregion factors, because the "
        "purchase's subregion is unknown."
    )
    return lowest.value, highest.value


def _baseline_from_imef(
    draft: _Draft, verdict: Verdict, annual_kwh: float
) -> float | None:
    """Scale a washer's kWh to the federal IMEF, since no federal kWh is published."""
    imef = _float_attribute(verdict, "imef")
    federal_imef = _float_attribute(verdict, "federal_standard_imef")
    if imef is None or federal_imef is None or federal_imef <= 0 or imef <= 0:
        return None
    draft.assumptions.append(
        "No federal kWh baseline exists for this product type: energy per cycle is "
        "taken as inversely proportional to IMEF, so baseline kWh = annual kWh x "
        "IMEF / federal IMEF."
    )
    return annual_kwh * imef / federal_imef


# --- new-energy vehicles --------------------------------------------------------


def nev_use_phase_savings(
    book: FactorBook, verdict: Verdict, region: str | None
) -> Impact | None:
    """Compute the use-phase saving of one NEV against a petrol car."""
    kind = verdict.attributes.get("vehicle_kind")
    if kind not in ("bev", "phev"):
        # NOTE: fuel-cell vehicles have no hydrogen emission factor yet.
        return None
    draft = _Draft(NEV_USE_PHASE, book)
    set_id = "cn-vehicles"
    names = (
        "petrol.consumption_l_per_100km",
        "petrol.kg_co2_per_litre",
        "bev.consumption_kwh_per_100km",
        "bev.consumption_kwh_per_100km_efficient",
        "bev.charging_loss_share",
        "activity.km_per_year",
        "activity.years_of_use",
    )
    values: dict[str, float] = {}
    for name in names:
        factor = draft.use(set_id, name)
        if factor is None:
            return None
        values[name] = factor.value
    shares = [1.0, 1.0, 1.0]
    if kind == "phev":
        shares = []
        for suffix in ("", "_low", "_high"):
            share = draft.use(set_id, f"phev.electric_share{suffix}")
            if share is None:
                return None
            shares.append(share.value)
    grid = _grid_for(draft, region, "CN")
    if grid is None:
        return None

    petrol_kg_per_km = (
        values["petrol.consumption_l_per_100km"]
        / 100
        * values["petrol.kg_co2_per_litre"]
    )

    def saving_per_km(kwh_per_100km: float, loss: float, share: float) -> float:
        bev_kg_per_km = kwh_per_100km / 100 * (1 + loss) * grid.kg_per_kwh
        return max(0.0, share * (petrol_kg_per_km - bev_kg_per_km))

    km = values["activity.km_per_year"]
    years = values["activity.years_of_use"]
    central_kwh = values["bev.consumption_kwh_per_100km"]
    efficient_kwh = values["bev.consumption_kwh_per_100km_efficient"]
    loss = values["bev.charging_loss_share"]
    kg_per_year = saving_per_km(central_kwh, 0.0, shares[0]) * km
    low = saving_per_km(central_kwh, loss, shares[1]) * km * years
    high = saving_per_km(efficient_kwh, 0.0, shares[2]) * km * years
    draft.extra.update(
        {
            "vehicle_kind": kind,
            "petrol_kg_co2_per_km": petrol_kg_per_km,
            "nev_kg_co2_per_km": central_kwh / 100 * grid.kg_per_kwh,
            "km_per_year": km,
        }
    )
    draft.assumptions.extend(
        [
            "Use phase only: vehicle and battery manufacture are not counted.",
            f"The NEV replaces a petrol car driven {km:g} km a year for {years:g} "
            "years.",
            "Central value excludes charging losses; the low end adds them.",
        ]
    )
    if kind == "phev":
        draft.assumptions.append(
            f"A plug-in hybrid drives {shares[0]:.0%} of its km on electricity "
            f"(range {shares[1]:.0%} to {shares[2]:.0%}) and the rest like the "
            "petrol car."
        )
    return draft.finish(kg_per_year, years, low, high, grid)


# --- public transport -----------------------------------------------------------


def _bus_trip_scale(draft: _Draft, set_id: str) -> float | None:
    """Return a bus trip's saving as a share of a metro trip's saving."""
    to_bus = draft.use(set_id, "ratio.car_to_bus_per_passenger_km")
    to_rail = draft.use(set_id, "ratio.car_to_rail_transit_per_passenger_km")
    if to_bus is None or to_rail is None:
        return None

    # Saving per passenger-km is car x (1 - 1/ratio). So a bus trip as long as
    # a metro trip saves (1 - 1/bus ratio) / (1 - 1/rail ratio) of its saving.
    draft.assumptions.append(
        "A bus trip is as long as the average metro trip and replaces the same "
        "car trip. Its saving scales by the Beijing car-to-bus and "
        "car-to-rail-transit emission ratios."
    )
    return (1 - 1 / to_bus.value) / (1 - 1 / to_rail.value)


def public_transport_trip_savings(
    book: FactorBook, verdict: Verdict, region: str | None
) -> Impact | None:
    """Compute the CO2 one public-transport trip avoids."""
    mode = verdict.attributes.get("mode")
    if region is not None and not region.startswith("CN"):
        # The per-trip values are Chinese measurements, and no other country has
        # any yet.
        return None
    if mode not in ("metro", "bus", "rail"):
        # NOTE: ferries have no per-trip factor yet.
        return None

    draft = _Draft(PUBLIC_TRANSPORT_TRIP, book)
    set_id = "cn-public-transport"
    central = draft.use(set_id, "metro.kg_avoided_per_trip")
    low = draft.use(set_id, "metro.kg_avoided_per_trip_mean")
    if central is None or low is None:
        return None

    scale: float | None = 1.0
    if mode == "bus":
        scale = _bus_trip_scale(draft, set_id)
    elif mode == "rail":
        draft.assumptions.append(
            "A rail trip counts like a metro trip, so longer intercity trips are "
            "undercounted."
        )
    if scale is None:
        return None

    draft.assumptions.extend(
        [
            "Per-trip values measured for the Guangzhou metro (2015) apply to every "
            "Chinese city.",
            "Avoided once per trip, in the year of travel.",
        ]
    )
    draft.extra["mode"] = mode
    kg = central.value * scale
    return draft.finish(kg, 1.0, low.value * scale, kg, None)


# --- second-hand ----------------------------------------------------------------


def second_hand_savings(
    book: FactorBook, verdict: Verdict, region: str | None
) -> Impact | None:
    """Compute the new production one second-hand item may avoid."""
    kind = verdict.attributes.get("item_kind")
    if not isinstance(kind, str):
        return None
    draft = _Draft(SECOND_HAND, book)
    embodied = draft.use("second-hand-embodied", f"embodied.{kind}")
    if embodied is None:
        # NOTE: books and "other" items have no embodied footprint in the set yet.
        return None
    rates = [
        draft.use("second-hand-displacement", f"displacement.{level}")
        for level in ("central", "low", "high")
    ]
    central, low, high = rates
    if central is None or low is None or high is None:
        return None
    kg = embodied.value * central.value
    draft.extra.update({"item_kind": kind, "embodied_kg_co2e": embodied.value})
    draft.assumptions.extend(
        [
            f"Uncertain: {central.value:.0%} of second-hand purchases replace a new "
            f"item (range {low.value:.0%} to {high.value:.0%}).",
            f"A new {kind} embodies the median footprint of comparable products.",
            "Avoided once, in the year of purchase.",
        ]
    )
    return draft.finish(
        kg, 1.0, embodied.value * low.value, embodied.value * high.value, None
    )


ACTIVITY_METHODS = {
    Category.APPLIANCE: appliance_grade_savings,
    Category.ENERGY_STAR: energy_star_savings,
    Category.NEW_ENERGY_VEHICLE: nev_use_phase_savings,
    Category.PUBLIC_TRANSPORT: public_transport_trip_savings,
    Category.SECOND_HAND: second_hand_savings,
}
