"""Carbon impact accounting: cited emission factors, activity methods, estimates.

Activity-based methods compute the CO2 a green purchase avoids; spend-based
estimates give a purchase's footprint from its amount. The two bases are kept
apart in every result and summary.
"""

from greenloop.impact.calculator import ImpactCalculator, scale_impact
from greenloop.impact.factorsets import FactorSetError
from greenloop.impact.methods import ALL_METHODS, MethodSpec
from greenloop.impact.record import Basis, FactorRef, Impact
from greenloop.impact.regions import normalize_region
from greenloop.impact.summary import summarize_impacts

__all__ = [
    "ALL_METHODS",
    "Basis",
    "FactorRef",
    "FactorSetError",
    "Impact",
    "ImpactCalculator",
    "MethodSpec",
    "normalize_region",
    "scale_impact",
    "summarize_impacts",
]
