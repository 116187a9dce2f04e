"""The green loan: the credit created for one green purchase paid in installments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class GreenLoan:
    """One green purchase financed in installments, as the batch run hands it over.

    `user_key` is a keyed hash of the user id, never the raw id. `kg_co2e_lifetime`
    is the activity-based avoided emissions of the purchase, or None when unknown.
    """

    purchase_id: str
    user_key: str
    occurred_at: datetime
    principal_fen: int
    periods: int
    category: str
    region: str | None
    merchant_id: str | None
    kg_co2e_lifetime: float | None
