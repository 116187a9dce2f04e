"""Certification of merchants' products: self-certification, review, certification.

The package is pure: the state machine (`workflow`), the end dates of
certifications (`validity`) and the automatic check against the identifier
(`checks`). The store keeps certifications and their transitions, and the API
exposes them to merchants, reviewers and the lender.
"""

from greenloop.certify.checks import (
    CheckResult,
    Document,
    Identifies,
    Outcome,
    SelfCertification,
    check,
)
from greenloop.certify.validity import valid_until
from greenloop.certify.workflow import (
    RULES,
    TERMINAL_STATES,
    Action,
    Role,
    State,
    Transition,
    TransitionError,
    next_state,
    transition,
)

__all__ = [
    "RULES",
    "TERMINAL_STATES",
    "Action",
    "CheckResult",
    "Document",
    "Identifies",
    "Outcome",
    "Role",
    "SelfCertification",
    "State",
    "Transition",
    "TransitionError",
    "check",
    "next_state",
    "transition",
    "valid_until",
]
