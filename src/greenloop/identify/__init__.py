"""Identification of green purchases: evidence, registries, claims and verdicts."""

from greenloop.identify.certified import CertifiedProduct
from greenloop.identify.identifier import Identifier
from greenloop.identify.verdict import ClaimFinding, Evidence, ProductQuery, Verdict

__all__ = [
    "CertifiedProduct",
    "ClaimFinding",
    "Evidence",
    "Identifier",
    "ProductQuery",
    "Verdict",
]
