"""Funding facility configuration (YAML), validated with pydantic."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from greenloop.categories import Category
from greenloop.lending.configfile import load_yaml_model
from greenloop.lending.money import yuan_to_fen


class Drawdown(BaseModel):
    """An amount drawn from the facility, or repaid to it, on one date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value_date: date = Field(description="an ISO date such as 2026-07-01")
    amount_yuan: Decimal = Field(
        gt=0, description="a positive amount in yuan, such as '200000000'"
    )


class FacilityConfig(BaseModel):
    """An earmarked green funding facility: lender, amounts, rates, dates, scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="a lower-case identifier such as cn-green-interbank-2026",
    )
    lender: str = Field(description="the lending bank's name")
    borrower: str = Field(description="the consumer lender that draws the facility")
    currency: Literal["CNY"] = Field(description="CNY, the only currency supported")
    committed_yuan: Decimal = Field(gt=0, description="the committed amount in yuan")
    drawdowns: list[Drawdown] = Field(
        min_length=1, description="a list of {value_date, amount_yuan} drawings"
    )
    repayments: list[Drawdown] = Field(
        default_factory=list,
        description="a list of {value_date, amount_yuan} repayments",
    )
    facility_rate: Decimal = Field(
        ge=0, lt=1, description="the facility's annual rate as a decimal, such as 0.025"
    )
    benchmark_rate: Decimal = Field(
        ge=0, lt=1, description="the annual benchmark rate as a decimal, such as 0.03"
    )
    benchmark: str = Field(description="the benchmark's name and source")
    day_count: Literal[360, 365] = Field(
        description="days per year for daily interest: 360 or 365"
    )
    start_date: date = Field(description="an ISO date, the facility's start")
    maturity_date: date = Field(description="an ISO date after start_date")
    eligible_categories: list[Category] = Field(
        min_length=1,
        description="category ids such as appliance, new_energy_vehicle",
    )
    standard: str = Field(description="the green standard that defines eligibility")
    lookback_months: int = Field(
        ge=0,
        le=120,
        description="months before the first drawdown in which loans may be refinanced",
    )
    min_loan_yuan: Decimal = Field(
        default=Decimal(0), ge=0, description="the smallest eligible loan in yuan"
    )
    unallocated_placement: str = Field(
        description="where unallocated proceeds are held, such as cash"
    )
    sources: list[str] = Field(min_length=1, description="a list of citations")

    @model_validator(mode="after")
    def _check_consistency(self) -> FacilityConfig:
        if self.maturity_date <= self.start_date:
            raise ValueError(
                f"maturity_date {self.maturity_date} is not after start_date"
                f" {self.start_date}"
            )
        for drawing in self.drawdowns:
            if not self.start_date <= drawing.value_date <= self.maturity_date:
                raise ValueError(
                    f"drawdown on {drawing.value_date} is outside the facility's dates"
                    f" {self.start_date} to {self.maturity_date}"
                )
        drawn = sum((item.amount_yuan for item in self.drawdowns), Decimal(0))
        if drawn > self.committed_yuan:
            raise ValueError(
                f"drawdowns total {drawn} yuan, more than the committed"
                f" {self.committed_yuan} yuan"
            )
        if self.facility_rate > self.benchmark_rate:
            raise ValueError(
                f"facility_rate {self.facility_rate} is above benchmark_rate"
                f" {self.benchmark_rate}, so the facility saves nothing"
            )
        return self

    @property
    def committed_fen(self) -> Decimal:
        """The committed amount in fen."""
        return yuan_to_fen(self.committed_yuan)

    @property
    def first_drawdown(self) -> date:
        """The date of the earliest drawdown."""
        return min(item.value_date for item in self.drawdowns)

    def drawn_fen(self, on: date) -> Decimal:
        """Return the amount drawn and not repaid at the end of `on`, in fen."""
        drawn = sum(
            (
                yuan_to_fen(item.amount_yuan)
                for item in self.drawdowns
                if item.value_date <= on
            ),
            Decimal(0),
        )
        repaid = sum(
            (
                yuan_to_fen(item.amount_yuan)
                for item in self.repayments
                if item.value_date <= on
            ),
            Decimal(0),
        )
        return drawn - repaid


class FacilitiesFile(BaseModel):
    """A facilities file: one or more facilities with distinct ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    facilities: list[FacilityConfig] = Field(
        min_length=1, description="a list of facilities"
    )

    @model_validator(mode="after")
    def _check_unique_ids(self) -> FacilitiesFile:
        ids = [item.id for item in self.facilities]
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise ValueError(f"duplicate facility ids: {', '.join(duplicates)}")
        return self

    def get(self, facility_id: str) -> FacilityConfig:
        """Return the facility `facility_id`; raise KeyError naming the known ids."""
        for facility in self.facilities:
            if facility.id == facility_id:
                return facility
        known = ", ".join(item.id for item in self.facilities)
        raise KeyError(f"unknown facility {facility_id!r}; expected one of {known}")


def load_facilities(path: Path) -> FacilitiesFile:
    """Load and validate a facilities YAML file; raise ConfigError if invalid."""
    return load_yaml_model(path, FacilitiesFile)
