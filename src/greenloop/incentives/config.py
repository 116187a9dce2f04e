"""Incentive campaigns defined as data (YAML), validated with pydantic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from greenloop.categories import Category
from greenloop.lending.configfile import load_yaml_model
from greenloop.lending.money import yuan_to_fen


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Eligibility(_Strict):
    """Eligibility rules of a campaign. A missing list means any value qualifies."""

    categories: list[Category] = Field(
        min_length=1, description="category ids such as appliance, green_food"
    )
    merchants: list[str] | None = Field(
        default=None, description="merchant ids, or omit for every merchant"
    )
    regions: list[str] | None = Field(
        default=None, description="region codes such as CN-SH, or omit for any region"
    )
    min_amount_yuan: Decimal = Field(
        default=Decimal(0), ge=0, description="the smallest purchase amount in yuan"
    )
    periods: list[int] | None = Field(
        default=None, description="installment counts such as [3, 6, 12], or omit"
    )


class InterestFree(_Strict):
    """The fee is waived for installment plans of up to `max_periods`."""

    kind: Literal["interest_free"]
    max_periods: int = Field(
        ge=1, le=36, description="the maximum periods waived, 1 to 36"
    )
    cost_basis: Literal["funding_cost", "forgone_fee"] = Field(
        default="funding_cost",
        description="funding_cost (present-value gap at the facility rate) or"
        " forgone_fee (the standard fee waived)",
    )


class FixedRedEnvelope(_Strict):
    """A fixed cash reward for every eligible loan."""

    kind: Literal["fixed_red_envelope"]
    amount_yuan: Decimal = Field(gt=0, description="the reward in yuan, such as '5'")


class LotteryRedEnvelope(_Strict):
    """Eligible loans enter a draw; the winners of a commit-reveal draw get a prize."""

    kind: Literal["lottery_red_envelope"]
    prize_yuan: Decimal = Field(gt=0, description="each prize in yuan, such as '88'")
    winners: int = Field(ge=1, description="the number of prizes, 1 or more")


class Coupon(_Strict):
    """A coupon against a later purchase, budgeted at face value when issued."""

    kind: Literal["coupon"]
    amount_yuan: Decimal = Field(gt=0, description="the coupon's face value in yuan")
    min_spend_yuan: Decimal = Field(
        default=Decimal(0), ge=0, description="the spend needed to redeem, in yuan"
    )
    valid_days: int = Field(ge=1, description="days the coupon stays valid, 1 or more")


Benefit = Annotated[
    InterestFree | FixedRedEnvelope | LotteryRedEnvelope | Coupon,
    Field(discriminator="kind"),
]


class Budget(_Strict):
    """Spending limits in yuan: in total, per user, per calendar day."""

    total_yuan: Decimal = Field(gt=0, description="the whole budget in yuan")
    per_user_yuan: Decimal | None = Field(
        default=None, gt=0, description="the maximum one user may receive, in yuan"
    )
    per_user_awards: int | None = Field(
        default=None, ge=1, description="the maximum number of awards per user"
    )
    per_day_yuan: Decimal | None = Field(
        default=None,
        gt=0,
        description="the maximum spent on one purchase date, in yuan",
    )

    @property
    def total_fen(self) -> Decimal:
        """The whole budget in fen."""
        return yuan_to_fen(self.total_yuan)

    @property
    def per_user_fen(self) -> Decimal | None:
        """The per-user limit in fen, if any."""
        return None if self.per_user_yuan is None else yuan_to_fen(self.per_user_yuan)

    @property
    def per_day_fen(self) -> Decimal | None:
        """The per-day limit in fen, if any."""
        return None if self.per_day_yuan is None else yuan_to_fen(self.per_day_yuan)


class Funding(_Strict):
    """The facility whose accrued interest savings pay for the campaign."""

    facility_id: str = Field(description="the id of a facility in the facilities file")


class CampaignConfig(_Strict):
    """One incentive campaign: dates, eligibility, benefit, budget, funding."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="a lower-case identifier such as nev-interest-free-2026",
    )
    name: str = Field(description="a short display name")
    starts_on: date = Field(description="an ISO date, the first purchase date rewarded")
    ends_on: date = Field(description="an ISO date, the last purchase date rewarded")
    timezone: str = Field(
        default="Asia/Shanghai",
        description="an IANA time zone such as Asia/Shanghai, for purchase dates",
    )
    eligibility: Eligibility = Field(description="a mapping with categories and limits")
    benefit: Benefit = Field(
        description="a mapping whose kind is interest_free, fixed_red_envelope,"
        " lottery_red_envelope or coupon"
    )
    budget: Budget = Field(description="a mapping with total_yuan and optional caps")
    funding: Funding = Field(description="a mapping with facility_id")
    sources: list[str] = Field(
        default_factory=list, description="citations for the campaign's figures"
    )

    @model_validator(mode="after")
    def _check_dates(self) -> CampaignConfig:
        if self.ends_on < self.starts_on:
            raise ValueError(
                f"ends_on {self.ends_on} is before starts_on {self.starts_on}"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown timezone {self.timezone!r}; expected an IANA name such as"
                " Asia/Shanghai"
            ) from error
        return self

    def purchase_date(self, occurred_at: datetime) -> date:
        """Return the calendar date of a purchase in the campaign's time zone.

        A timestamp without a time zone is taken as UTC, as purchase rows are.
        """
        moment = occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC)
        return moment.astimezone(ZoneInfo(self.timezone)).date()


class CampaignsFile(_Strict):
    """A campaigns file: one or more campaigns with distinct ids."""

    campaigns: list[CampaignConfig] = Field(
        min_length=1, description="a list of campaigns"
    )

    @model_validator(mode="after")
    def _check_unique_ids(self) -> CampaignsFile:
        ids = [item.id for item in self.campaigns]
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise ValueError(f"duplicate campaign ids: {', '.join(duplicates)}")
        return self


def load_campaigns(path: Path) -> CampaignsFile:
    """Load and validate a campaigns YAML file; raise ConfigError if invalid."""
    return load_yaml_model(path, CampaignsFile)
