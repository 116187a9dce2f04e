"""Incentive campaigns as data, budget rules and verifiable commit-reveal draws.

Pure domain code; the store adapter applies budgets transactionally.
"""

from greenloop.incentives.config import (
    Budget,
    CampaignConfig,
    CampaignsFile,
    Coupon,
    Eligibility,
    FixedRedEnvelope,
    InterestFree,
    LotteryRedEnvelope,
    load_campaigns,
)
from greenloop.incentives.draws import (
    DrawCommitment,
    DrawError,
    DrawRecord,
    commit,
    entries_digest,
    entry_score,
    new_seed,
    rank_entries,
    reveal,
    verify_record,
)
from greenloop.incentives.rules import (
    Spending,
    benefit_cost_fen,
    budget_rejection,
    ineligibility_reason,
    report_group,
)

__all__ = [
    "Budget",
    "CampaignConfig",
    "CampaignsFile",
    "Coupon",
    "DrawCommitment",
    "DrawError",
    "DrawRecord",
    "Eligibility",
    "FixedRedEnvelope",
    "InterestFree",
    "LotteryRedEnvelope",
    "Spending",
    "benefit_cost_fen",
    "budget_rejection",
    "commit",
    "entries_digest",
    "entry_score",
    "ineligibility_reason",
    "load_campaigns",
    "new_seed",
    "rank_entries",
    "report_group",
    "reveal",
    "verify_record",
]
