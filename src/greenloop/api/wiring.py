"""The real domain parts behind the platform: impact, incentives, awards.

Incentives and awards read the operator's facilities and campaigns files and
write through the finance store, which keeps one loan and one award per
purchase id, so calling them again for the same purchase changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from greenloop.api.platform import Offer, Purchase
from greenloop.api.serialize import json_ready
from greenloop.categories import Status
from greenloop.identify.verdict import Verdict
from greenloop.impact.calculator import ImpactCalculator
from greenloop.impact.record import Impact
from greenloop.incentives import CampaignsFile, ineligibility_reason, load_campaigns
from greenloop.ledger.privacy import load_or_create_secret, pseudonym
from greenloop.lending import yuan_to_fen
from greenloop.lending.loans import GreenLoan

logger = logging.getLogger(__name__)

USER_SECRET_FILE = "user-hmac.key"
# The batch run's default log origin, so run and service share one log.
LEDGER_ORIGIN = "greenloop.local/green-assets"


def user_pseudonym(key_dir: Path, user_id: str) -> str:
    """Return the keyed hash that represents `user_id` in loans and the ledger."""
    return pseudonym(user_id, load_or_create_secret(key_dir / USER_SECRET_FILE))


def impact_calculator() -> ImpactCalculator:
    """Return the impact calculator with the packaged factor sets."""
    return ImpactCalculator.load()


def green_loan(
    purchase: Purchase,
    verdict: Verdict,
    periods: int,
    impact: Impact | None,
    user_key: str,
) -> GreenLoan:
    """Return the loan a green purchase in `periods` installments would create."""
    assert verdict.category is not None
    return GreenLoan(
        purchase_id=purchase.purchase_id or "decision",
        user_key=user_key,
        occurred_at=purchase.occurred_at or datetime.now(UTC),
        principal_fen=int(yuan_to_fen(purchase.amount)),
        periods=periods,
        category=verdict.category.value,
        region=purchase.region,
        merchant_id=purchase.merchant_id,
        kg_co2e_lifetime=impact.kg_co2e_lifetime if impact else None,
    )


class CampaignIncentives:
    """Lists the campaigns a purchase qualifies for, per offered period count."""

    def __init__(self, campaigns_path: Path) -> None:
        self.campaigns_path = campaigns_path
        self._campaigns: CampaignsFile | None = None
        self._modified: float | None = None

    def campaigns(self) -> CampaignsFile:
        """Return the campaigns file, read again when it changed on disk."""
        modified = self.campaigns_path.stat().st_mtime
        if self._campaigns is None or modified != self._modified:
            self._campaigns = load_campaigns(self.campaigns_path)
            self._modified = modified
        return self._campaigns

    def qualifying(
        self, purchase: Purchase, verdict: Verdict, offers: Sequence[Offer]
    ) -> list[dict[str, Any]]:
        """Return each campaign with the installment counts it would reward."""
        if verdict.status is not Status.GREEN or verdict.category is None:
            return []
        result = []
        for campaign in self.campaigns().campaigns:
            periods = [
                offer.periods
                for offer in offers
                if ineligibility_reason(
                    campaign, green_loan(purchase, verdict, offer.periods, None, "")
                )
                is None
            ]
            if periods:
                result.append(
                    {
                        "campaign_id": campaign.id,
                        "name": campaign.name,
                        "benefit": campaign.benefit.kind,
                        "periods": periods,
                        "ends_on": campaign.ends_on.isoformat(),
                    }
                )
        return result


class FinanceAwards:
    """Awards green loans and incentives through the finance store."""

    def __init__(
        self,
        engine: Engine,
        *,
        facilities_path: Path,
        campaigns_path: Path,
        key_dir: Path,
        origin: str = LEDGER_ORIGIN,
    ) -> None:
        self.engine = engine
        self.facilities_path = facilities_path
        self.campaigns_path = campaigns_path
        self.key_dir = key_dir
        self.origin = origin
        self._ledger: Any = None

    def _user_key(self, user_id: str) -> str:
        return user_pseudonym(self.key_dir, user_id)

    def award(
        self,
        purchase: Purchase,
        verdict: Verdict,
        offer: Offer | None,
        impact: Impact | None,
    ) -> list[dict[str, Any]]:
        """Record the loan of a green installment purchase and award incentives.

        A purchase paid at once, or not green, creates no loan and no award.
        """
        from greenloop.store.finance import process_green_loans

        if offer is None or verdict.status is not Status.GREEN or not purchase.user_id:
            return []
        loan = green_loan(
            purchase, verdict, offer.periods, impact, self._user_key(purchase.user_id)
        )
        outcome = process_green_loans(
            self.engine,
            [loan],
            self.facilities_path,
            self.campaigns_path,
            as_of=loan.occurred_at.date(),
        )
        result = outcome.loans.get(loan.purchase_id)
        if result is None:
            return []
        if result.error:
            logger.warning(
                "loan for purchase %s not recorded: %s", loan.purchase_id, result.error
            )
        ledger_index = self._append_to_ledger(loan, purchase, verdict, impact)
        awards: list[dict[str, Any]] = [
            {
                "kind": "green_loan",
                "ledger_index": ledger_index,
                "facility_id": result.facility_id,
                "periods": loan.periods,
                "principal": str(Decimal(loan.principal_fen) / 100),
                "consumer_fee_waived": result.consumer_fee_waived,
                "error": result.error,
            }
        ]
        for item in result.awards:
            awards.append(
                {
                    "kind": "incentive",
                    "campaign_id": item.campaign_id,
                    "benefit": item.benefit,
                    "amount": str(Decimal(item.amount_fen) / 100),
                    "status": item.status,
                }
            )
        return awards

    def _append_to_ledger(
        self,
        loan: GreenLoan,
        purchase: Purchase,
        verdict: Verdict,
        impact: Impact | None,
    ) -> int:
        """Append the green asset record; a logged purchase id keeps its index."""
        from greenloop.ledger import record_digest
        from greenloop.pipeline.assets import RECORD_TYPE, RECORD_VERSION
        from greenloop.store.ledger import LedgerStore

        if self._ledger is None:
            self._ledger = LedgerStore(
                self.engine, origin=self.origin, key_dir=self.key_dir
            )
        impact_json = json_ready(impact.to_dict()) if impact else None
        record = {
            "type": RECORD_TYPE,
            "version": RECORD_VERSION,
            "purchase_id": loan.purchase_id,
            "occurred_at": loan.occurred_at.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "user": loan.user_key,
            "merchant_id": loan.merchant_id,
            "category": loan.category,
            "standard_id": verdict.standard_id,
            "standard_version": verdict.standard_version,
            "region": loan.region,
            "amount_minor_units": loan.principal_fen,
            "currency": purchase.currency,
            "periods": loan.periods,
            "g_co2e_lifetime": (
                round(impact.kg_co2e_lifetime * 1000) if impact else None
            ),
            "verdict_digest": record_digest(json_ready(verdict.to_dict())),
            "impact_digest": record_digest(impact_json) if impact_json else None,
        }
        (result,) = self._ledger.append([(loan.purchase_id, record)])
        return int(result.index)

    def revoke(self, purchase_ids: Sequence[str], reason: str) -> dict[str, Any]:
        """Release the purchases' loans from facilities and substitute others."""
        from greenloop.store.finance import revoke_loans

        report = revoke_loans(
            self.engine, list(purchase_ids), reason, datetime.now(UTC).date()
        )
        return {
            "purchase_ids": list(report.purchase_ids),
            "not_found": list(report.not_found),
            "released": report.released,
            "added": report.added,
        }
