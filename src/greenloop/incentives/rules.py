"""Campaign rules: eligibility of a loan, the cost of its benefit, budget checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from greenloop.incentives.config import (
    Budget,
    CampaignConfig,
    Coupon,
    FixedRedEnvelope,
    InterestFree,
    LotteryRedEnvelope,
)
from greenloop.lending.loans import GreenLoan
from greenloop.lending.money import ZERO, yuan_to_fen
from greenloop.lending.plans import InstallmentPlan
from greenloop.lending.subsidy import interest_free_cost

# Report groups for the incentive report. Organic food counts as green food and
# ENERGY STAR products as green appliances; other categories fall under "other".
REPORT_GROUPS = {
    "public_transport": "public_transport",
    "green_food": "green_food",
    "organic_food": "green_food",
    "appliance": "green_appliances",
    "energy_star": "green_appliances",
}
OTHER_GROUP = "other"


def report_group(category: str) -> str:
    """Return the incentive report group of a category."""
    return REPORT_GROUPS.get(category, OTHER_GROUP)


def ineligibility_reason(campaign: CampaignConfig, loan: GreenLoan) -> str | None:
    """Return why `loan` does not qualify for `campaign`, or None when it does."""
    rules = campaign.eligibility
    purchase_day = campaign.purchase_date(loan.occurred_at)
    if not campaign.starts_on <= purchase_day <= campaign.ends_on:
        return f"purchase date {purchase_day} is outside the campaign dates"
    if loan.category not in rules.categories:
        return f"category {loan.category} is not eligible"
    if rules.merchants is not None and loan.merchant_id not in rules.merchants:
        return f"merchant {loan.merchant_id} is not eligible"
    if rules.regions is not None and loan.region not in rules.regions:
        return f"region {loan.region} is not eligible"
    if Decimal(loan.principal_fen) < yuan_to_fen(rules.min_amount_yuan):
        return f"amount is below the minimum of {rules.min_amount_yuan} yuan"
    if rules.periods is not None and loan.periods not in rules.periods:
        return f"{loan.periods} installments are not eligible"
    benefit = campaign.benefit
    if isinstance(benefit, InterestFree) and loan.periods > benefit.max_periods:
        return (
            f"{loan.periods} installments exceed the interest-free"
            f" {benefit.max_periods}"
        )
    return None


@dataclass(frozen=True, slots=True)
class CampaignRules:
    """A campaign's eligibility rules, prepared once for checking many loans.

    `accepts` is true exactly when `ineligibility_reason` returns None.
    """

    campaign: CampaignConfig
    categories: frozenset[str]
    merchants: frozenset[str | None] | None
    regions: frozenset[str | None] | None
    min_amount_fen: int
    periods: frozenset[int] | None
    max_interest_free_periods: int | None

    @classmethod
    def of(cls, campaign: CampaignConfig) -> CampaignRules:
        """Prepare the rules of `campaign`."""
        rules = campaign.eligibility
        benefit = campaign.benefit
        return cls(
            campaign=campaign,
            categories=frozenset(str(item) for item in rules.categories),
            merchants=None if rules.merchants is None else frozenset(rules.merchants),
            regions=None if rules.regions is None else frozenset(rules.regions),
            min_amount_fen=int(yuan_to_fen(rules.min_amount_yuan)),
            periods=None if rules.periods is None else frozenset(rules.periods),
            max_interest_free_periods=(
                benefit.max_periods if isinstance(benefit, InterestFree) else None
            ),
        )

    def accepts(self, loan: GreenLoan, purchase_day: date) -> bool:
        """Tell whether `loan`, bought on `purchase_day`, qualifies.

        `purchase_day` is the purchase date in the campaign's time zone.
        """
        campaign = self.campaign
        return (
            loan.category in self.categories
            and campaign.starts_on <= purchase_day <= campaign.ends_on
            and (self.merchants is None or loan.merchant_id in self.merchants)
            and (self.regions is None or loan.region in self.regions)
            and loan.principal_fen >= self.min_amount_fen
            and (self.periods is None or loan.periods in self.periods)
            and (
                self.max_interest_free_periods is None
                or loan.periods <= self.max_interest_free_periods
            )
        )


def benefit_cost_fen(
    campaign: CampaignConfig,
    loan: GreenLoan,
    funding_rate: Decimal,
    standard_plan: InstallmentPlan,
) -> Decimal:
    """Return what the benefit costs the budget for `loan`, in fen.

    `standard_plan` is the plan the consumer would pay without the campaign; its
    fee and interest are what an interest-free offer forgoes. A lottery entry
    costs nothing until it wins, because the prize is charged at the draw.
    """
    benefit = campaign.benefit
    if isinstance(benefit, InterestFree):
        cost = interest_free_cost(
            Decimal(loan.principal_fen),
            loan.periods,
            funding_rate,
            standard_plan=standard_plan,
        )
        if benefit.cost_basis == "forgone_fee":
            return cost.forgone_fee_fen
        return cost.funding_cost_fen
    if isinstance(benefit, FixedRedEnvelope | Coupon):
        # NOTE: a coupon is charged at face value when issued and stays charged
        # even if it expires unredeemed; redemption is not tracked yet.
        return yuan_to_fen(benefit.amount_yuan)
    if isinstance(benefit, LotteryRedEnvelope):
        return ZERO
    raise TypeError(f"unknown benefit {benefit!r}")


@dataclass(frozen=True, slots=True)
class Spending:
    """A campaign's spending so far: in total, for one user and on one day."""

    total_fen: Decimal
    user_fen: Decimal
    user_awards: int
    day_fen: Decimal


def budget_rejection(
    budget: Budget, spent: Spending, amount_fen: Decimal
) -> str | None:
    """Return why awarding `amount_fen` would break a limit, or None when it fits."""
    if spent.total_fen + amount_fen > budget.total_fen:
        return "campaign budget exhausted"
    per_user = budget.per_user_fen
    if per_user is not None and spent.user_fen + amount_fen > per_user:
        return "per-user budget reached"
    if (
        budget.per_user_awards is not None
        and spent.user_awards + 1 > budget.per_user_awards
    ):
        return "per-user award count reached"
    per_day = budget.per_day_fen
    if per_day is not None and spent.day_fen + amount_fen > per_day:
        return "daily budget reached"
    return None
