"""Earmarked green funding facilities: allocation, substitution, savings, checks.

Pure domain code; the store adapter persists allocations and accruals.
"""

from greenloop.funding.allocation import (
    AllocationResult,
    LoanPosition,
    LoanStatus,
    allocate,
    financing_share,
    ineligibility_reason,
)
from greenloop.funding.config import (
    Drawdown,
    FacilitiesFile,
    FacilityConfig,
    load_facilities,
)
from greenloop.funding.reconciliation import Reconciliation, reconcile
from greenloop.funding.savings import DailySaving, accrue_savings

__all__ = [
    "AllocationResult",
    "DailySaving",
    "Drawdown",
    "FacilitiesFile",
    "FacilityConfig",
    "LoanPosition",
    "LoanStatus",
    "Reconciliation",
    "accrue_savings",
    "allocate",
    "financing_share",
    "ineligibility_reason",
    "load_facilities",
    "reconcile",
]
