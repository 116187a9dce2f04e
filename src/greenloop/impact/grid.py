"""Grid emission factor selection: province, else regional grid, else national.

The selector is built once when the calculator loads, so picking a factor for a
purchase is a dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from greenloop.impact.factorsets import Factor, FactorSetError, LoadedFactorSet
from greenloop.impact.record import FactorRef
from greenloop.impact.regions import PROVINCE_CODES

CN_GRID_SET = "cn-grid"
US_GRID_SET = "us-grid"
GRID_UNITS = frozenset({"kgCO2/kWh", "kgCO2e/kWh"})


@dataclass(frozen=True, slots=True)
class GridChoice:
    """The grid factor chosen for one region, and at which level."""

    factor: Factor
    ref: FactorRef
    level: str
    region_used: str

    @property
    def kg_per_kwh(self) -> float:
        return self.factor.value


def _ref(factor_set: LoadedFactorSet, factor: Factor) -> FactorRef:
    return FactorRef(factor_set.id, factor.id, factor_set.version, factor.year)


def check_grid_set(factor_set: LoadedFactorSet) -> None:
    """Raise FactorSetError when a grid set has a bad unit or province grouping."""
    for factor in factor_set.spec.factors:
        if factor.unit not in GRID_UNITS:
            raise FactorSetError(
                f"factor {factor.id!r} in {factor_set.path} has unit {factor.unit!r}; "
                f"grid factors must be in {' or '.join(sorted(GRID_UNITS))}"
            )
    seen: dict[str, str] = {}
    for group, members in factor_set.spec.region_groups.items():
        for code in members:
            if code not in PROVINCE_CODES:
                raise FactorSetError(
                    f"region_groups.{group} in {factor_set.path} lists {code!r}, "
                    "which is not a Chinese province code such as CN-GD"
                )
            if code in seen:
                raise FactorSetError(
                    f"{code} is in both region_groups.{seen[code]} and "
                    f"region_groups.{group} in {factor_set.path}; keep it in one"
                )
            seen[code] = group
    missing = sorted(PROVINCE_CODES - seen.keys())
    if factor_set.spec.region_groups and missing:
        raise FactorSetError(
            f"region_groups in {factor_set.path} leave out {', '.join(missing)}; "
            "add each province to the regional grid that supplies it"
        )


def latest_published_year(
    factor_set: LoadedFactorSet, prefix: str, as_of: date
) -> int | None:
    """Return the newest year of `prefix.<year>` factors published by `as_of`."""
    years = []
    for factor in factor_set.with_prefix(prefix + "."):
        published = factor.published
        if factor.year is not None and published is not None and published <= as_of:
            years.append(factor.year)
    return max(years) if years else None


class GridSelector:
    """Choose grid factors for regions, fixed to the factors published by a date."""

    def __init__(
        self, cn_grid: LoadedFactorSet, us_grid: LoadedFactorSet | None, as_of: date
    ) -> None:
        self.as_of = as_of
        check_grid_set(cn_grid)
        if us_grid is not None:
            check_grid_set(us_grid)
        year = latest_published_year(cn_grid, "national", as_of)
        if year is None:
            raise FactorSetError(
                f"no national factor in factor set {cn_grid.id!r} ({cn_grid.path}) "
                f"was published on or before {as_of.isoformat()}; choose a later "
                "as_of date or add an older year"
            )
        self.cn_year = year
        self._choices: dict[str, GridChoice] = {}
        self._build_china(cn_grid, year)
        if us_grid is not None:
            self._build_us(us_grid)

    def _build_china(self, cn_grid: LoadedFactorSet, year: int) -> None:
        national = cn_grid.get(f"national.{year}")
        self._choices["CN"] = GridChoice(
            national, _ref(cn_grid, national), "national", "CN"
        )
        region_of: dict[str, str] = {}
        for group, members in cn_grid.spec.region_groups.items():
            for code in members:
                region_of[code] = group
        for province in sorted(PROVINCE_CODES):
            provincial = cn_grid.find(f"province.{province}.{year}")
            if provincial is not None:
                self._choices[province] = GridChoice(
                    provincial, _ref(cn_grid, provincial), "provincial", province
                )
                continue
            grid_region = region_of.get(province)
            regional = (
                cn_grid.find(f"region.{grid_region}.{year}") if grid_region else None
            )
            if grid_region is not None and regional is not None:
                self._choices[province] = GridChoice(
                    regional, _ref(cn_grid, regional), "regional", f"CN:{grid_region}"
                )
            else:
                self._choices[province] = self._choices["CN"]

    def _build_us(self, us_grid: LoadedFactorSet) -> None:
        year = latest_published_year(us_grid, "national", self.as_of)
        if year is None:
            return
        national = us_grid.get(f"national.{year}")
        self._choices["US"] = GridChoice(
            national, _ref(us_grid, national), "national", "US"
        )

    def choose(self, region: str | None, default_country: str) -> GridChoice | None:
        """Return the grid factor for `region`, or the default country's national one.

        A region without its own factor (an unknown place, or a country with no
        grid set) falls back to `default_country`. Returns None when even that
        country has no factor published by the as_of date.
        """
        if region is not None and region in self._choices:
            return self._choices[region]
        return self._choices.get(default_country)

    def has_country(self, country: str) -> bool:
        """Return whether a national factor exists for `country`."""
        return country in self._choices
