"""The certification state machine: who may move a certification where.

A merchant self-certifies a product (submitted). The identifier checks the
evidence automatically: a check that disproves the claim rejects it, any other
result puts it in the reviewer's queue (in_review). A platform reviewer approves
it (platform_approved) or rejects it. The lender certifies it (certified) or
rejects it. A certified product expires on its end date or is revoked. Every
transition records the actor, the time and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    """A certification's state."""

    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    PLATFORM_APPROVED = "platform_approved"
    CERTIFIED = "certified"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Action(StrEnum):
    """A request to move a certification to another state."""

    PASS_AUTOMATIC_CHECK = "pass_automatic_check"
    FAIL_AUTOMATIC_CHECK = "fail_automatic_check"
    APPROVE = "approve"
    REJECT = "reject"
    CERTIFY = "certify"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    REVOKE = "revoke"


class Role(StrEnum):
    """The parties of the system; an API key is bound to one of them."""

    MERCHANT = "merchant"
    REVIEWER = "reviewer"
    LENDER = "lender"
    FUNDER = "funder"
    CONSUMER = "consumer"
    OPERATOR = "operator"
    SYSTEM = "system"


TERMINAL_STATES = frozenset(
    {State.REJECTED, State.WITHDRAWN, State.EXPIRED, State.REVOKED}
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowed transition: from which state, to which, and by which roles."""

    action: Action
    source: State
    target: State
    roles: frozenset[Role]


RULES: tuple[Rule, ...] = (
    Rule(
        Action.PASS_AUTOMATIC_CHECK,
        State.SUBMITTED,
        State.IN_REVIEW,
        frozenset({Role.SYSTEM}),
    ),
    Rule(
        Action.FAIL_AUTOMATIC_CHECK,
        State.SUBMITTED,
        State.REJECTED,
        frozenset({Role.SYSTEM}),
    ),
    Rule(
        Action.APPROVE,
        State.IN_REVIEW,
        State.PLATFORM_APPROVED,
        frozenset({Role.REVIEWER}),
    ),
    Rule(Action.REJECT, State.IN_REVIEW, State.REJECTED, frozenset({Role.REVIEWER})),
    Rule(
        Action.CERTIFY,
        State.PLATFORM_APPROVED,
        State.CERTIFIED,
        frozenset({Role.LENDER}),
    ),
    Rule(
        Action.REJECT,
        State.PLATFORM_APPROVED,
        State.REJECTED,
        frozenset({Role.LENDER}),
    ),
    Rule(
        Action.WITHDRAW,
        State.SUBMITTED,
        State.WITHDRAWN,
        frozenset({Role.MERCHANT}),
    ),
    Rule(
        Action.WITHDRAW,
        State.IN_REVIEW,
        State.WITHDRAWN,
        frozenset({Role.MERCHANT}),
    ),
    Rule(
        Action.WITHDRAW,
        State.PLATFORM_APPROVED,
        State.WITHDRAWN,
        frozenset({Role.MERCHANT}),
    ),
    Rule(Action.EXPIRE, State.CERTIFIED, State.EXPIRED, frozenset({Role.SYSTEM})),
    Rule(
        Action.REVOKE,
        State.CERTIFIED,
        State.REVOKED,
        frozenset({Role.LENDER, Role.OPERATOR}),
    ),
)


class TransitionError(ValueError):
    """A transition that the rules do not allow."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded move of a certification: who, when, why."""

    source: State | None
    target: State
    actor_role: Role
    actor_id: str
    reason: str
    occurred_at: datetime


def next_state(current: State, action: Action, role: Role) -> State:
    """Return the state `action` by `role` leads to, or raise TransitionError."""
    for rule in RULES:
        if rule.action is action and rule.source is current:
            if role not in rule.roles:
                allowed = ", ".join(sorted(r.value for r in rule.roles))
                raise TransitionError(
                    f"role {role.value!r} may not {action.value} a certification "
                    f"in state {current.value!r}; only {allowed} may"
                )
            return rule.target
    allowed_actions = sorted({r.action.value for r in RULES if r.source is current})
    expected = ", ".join(allowed_actions) if allowed_actions else "none (final state)"
    raise TransitionError(
        f"cannot {action.value} a certification in state {current.value!r}; "
        f"allowed actions: {expected}"
    )


def transition(
    current: State,
    action: Action,
    *,
    role: Role,
    actor_id: str,
    reason: str,
    at: datetime,
) -> Transition:
    """Build the transition record for `action`, checking the rules and inputs."""
    if not actor_id.strip():
        raise TransitionError("actor_id is empty; every transition names its actor")
    if not reason.strip():
        raise TransitionError(
            f"reason is empty for {action.value}; every transition records why"
        )
    if at.tzinfo is None:
        raise TransitionError(f"occurred_at {at.isoformat()} has no time zone; use UTC")
    target = next_state(current, action, role)
    return Transition(current, target, role, actor_id, reason, at)
