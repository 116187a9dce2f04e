"""Installment fee schedules as dated, cited data (`data/fee_schedules.yaml`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from greenloop.lending.configfile import load_yaml_model

DEFAULT_SCHEDULES_PATH = Path(__file__).parent / "data" / "fee_schedules.yaml"


class LongTermPricing(BaseModel):
    """Interest-bearing pricing for plans longer than the fee table covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_periods: int = Field(ge=2, description="the fewest periods priced this way")
    max_periods: int = Field(ge=2, le=120, description="the most periods accepted")
    annual_interest_rate: Decimal = Field(
        ge=0, lt=1, description="a nominal annual rate as a decimal, such as 0.035"
    )
    basis: str = Field(description="what the rate is and why it applies")
    sources: list[str] = Field(min_length=1, description="a list of citations")


class FeeSchedule(BaseModel):
    """The total fee, as a share of principal, for each number of periods."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="a short identifier such as huabei-2026")
    description: str = Field(description="one line naming the lender and product")
    currency: str = Field(description="an ISO 4217 code such as CNY")
    last_checked: date = Field(description="an ISO date such as 2026-12-04")
    sources: list[str] = Field(min_length=1, description="a list of citations")
    fee_rates: dict[int, Decimal] = Field(
        description="a map from periods to a decimal fee share, such as 12: '0.088'"
    )
    long_term: LongTermPricing | None = Field(
        default=None, description="a mapping with min_periods, max_periods and rate"
    )

    @model_validator(mode="after")
    def _check_rates(self) -> FeeSchedule:
        for periods, rate in self.fee_rates.items():
            if periods < 1 or not Decimal(0) <= rate < Decimal(1):
                raise ValueError(
                    f"fee rate {rate} for {periods} periods is out of range; expected"
                    " periods >= 1 and 0 <= rate < 1"
                )
        return self

    def pricing(self, periods: int) -> tuple[str, Decimal]:
        """Return ("fee", fee rate) or ("interest", annual rate) for `periods`.

        Raises KeyError naming the periods the schedule covers.
        """
        if periods in self.fee_rates:
            return "fee", self.fee_rates[periods]
        long_term = self.long_term
        if long_term and long_term.min_periods <= periods <= long_term.max_periods:
            return "interest", long_term.annual_interest_rate
        return "fee", self.fee_rate(periods)

    def fee_rate(self, periods: int) -> Decimal:
        """Return the fee rate for `periods`; raise KeyError naming the known ones."""
        try:
            return self.fee_rates[periods]
        except KeyError:
            known = ", ".join(str(key) for key in sorted(self.fee_rates))
            if self.long_term:
                known += (
                    f", or {self.long_term.min_periods} to"
                    f" {self.long_term.max_periods} with interest"
                )
            raise KeyError(
                f"schedule {self.id} has no fee rate for {periods} periods (it has"
                f" {known}); add the rate with its source to the schedule file"
            ) from None


class FeeScheduleFile(BaseModel):
    """The schedule file: its schedules and the one used when none is named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedules: list[FeeSchedule] = Field(
        min_length=1, description="a list of schedules"
    )
    default_schedule: str = Field(description="the id of one of the schedules")

    @model_validator(mode="after")
    def _check_default(self) -> FeeScheduleFile:
        if self.default_schedule not in {item.id for item in self.schedules}:
            raise ValueError(
                f"default_schedule {self.default_schedule!r} names no schedule in"
                " the file"
            )
        return self

    def get(self, schedule_id: str | None = None) -> FeeSchedule:
        """Return the schedule `schedule_id`, or the default one."""
        requested = schedule_id or self.default_schedule
        for schedule in self.schedules:
            if schedule.id == requested:
                return schedule
        known = ", ".join(item.id for item in self.schedules)
        raise KeyError(f"unknown fee schedule {requested!r}; expected one of {known}")


@cache
def load_fee_schedules(path: Path = DEFAULT_SCHEDULES_PATH) -> FeeScheduleFile:
    """Load and validate the fee schedule file (cached per path)."""
    return load_yaml_model(path, FeeScheduleFile)
