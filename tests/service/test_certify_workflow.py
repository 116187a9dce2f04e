"""The certification state machine, end dates and the automatic check."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from service_support import RuleIdentifier

from greenloop.categories import Category
from greenloop.certify import (
    RULES,
    TERMINAL_STATES,
    Action,
    Document,
    Outcome,
    Role,
    SelfCertification,
    State,
    TransitionError,
    check,
    next_state,
    transition,
    valid_until,
)
from greenloop.certify.validity import add_years, load_terms

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

ALLOWED = [
    (State.SUBMITTED, Action.PASS_AUTOMATIC_CHECK, Role.SYSTEM, State.IN_REVIEW),
    (State.SUBMITTED, Action.FAIL_AUTOMATIC_CHECK, Role.SYSTEM, State.REJECTED),
    (State.IN_REVIEW, Action.APPROVE, Role.REVIEWER, State.PLATFORM_APPROVED),
    (State.IN_REVIEW, Action.REJECT, Role.REVIEWER, State.REJECTED),
    (State.PLATFORM_APPROVED, Action.CERTIFY, Role.LENDER, State.CERTIFIED),
    (State.PLATFORM_APPROVED, Action.REJECT, Role.LENDER, State.REJECTED),
    (State.IN_REVIEW, Action.WITHDRAW, Role.MERCHANT, State.WITHDRAWN),
    (State.CERTIFIED, Action.EXPIRE, Role.SYSTEM, State.EXPIRED),
    (State.CERTIFIED, Action.REVOKE, Role.LENDER, State.REVOKED),
    (State.CERTIFIED, Action.REVOKE, Role.OPERATOR, State.REVOKED),
]


@pytest.mark.parametrize(("source", "action", "role", "target"), ALLOWED)
def test_allowed_transition_moves(
    source: State, action: Action, role: Role, target: State
) -> None:
    assert next_state(source, action, role) is target


ILLEGAL = [
    (State.SUBMITTED, Action.APPROVE, Role.REVIEWER),
    (State.IN_REVIEW, Action.CERTIFY, Role.LENDER),
    (State.IN_REVIEW, Action.APPROVE, Role.MERCHANT),
    (State.IN_REVIEW, Action.APPROVE, Role.LENDER),
    (State.PLATFORM_APPROVED, Action.CERTIFY, Role.REVIEWER),
    (State.CERTIFIED, Action.WITHDRAW, Role.MERCHANT),
    (State.CERTIFIED, Action.REVOKE, Role.MERCHANT),
    (State.REJECTED, Action.APPROVE, Role.REVIEWER),
    (State.REVOKED, Action.CERTIFY, Role.LENDER),
    (State.EXPIRED, Action.REVOKE, Role.LENDER),
]


@pytest.mark.parametrize(("source", "action", "role"), ILLEGAL)
def test_illegal_transition_is_rejected(
    source: State, action: Action, role: Role
) -> None:
    with pytest.raises(TransitionError):
        next_state(source, action, role)


def test_final_state_names_no_action() -> None:
    with pytest.raises(TransitionError, match="final state"):
        next_state(State.REVOKED, Action.REVOKE, Role.LENDER)


def test_transition_records_actor_and_reason() -> None:
    record = transition(
        State.IN_REVIEW,
        Action.APPROVE,
        role=Role.REVIEWER,
        actor_id="r-1",
        reason="label checked",
        at=NOW,
    )
    assert record.source is State.IN_REVIEW
    assert record.target is State.PLATFORM_APPROVED
    assert record.actor_id == "r-1"
    assert record.reason == "label checked"
    assert record.occurred_at == NOW


def test_transition_needs_a_reason() -> None:
    with pytest.raises(TransitionError, match="reason is empty"):
        transition(
            State.IN_REVIEW,
            Action.APPROVE,
            role=Role.REVIEWER,
            actor_id="r",
            reason=" ",
            at=NOW,
        )


def test_transition_needs_utc_time() -> None:
    with pytest.raises(TransitionError, match="time zone"):
        transition(
            State.IN_REVIEW,
            Action.APPROVE,
            role=Role.REVIEWER,
            actor_id="r",
            reason="ok",
            at=datetime(2026, 1, 1),
        )


def test_green_food_lasts_three_years() -> None:
    end = valid_until(Category.GREEN_FOOD, date(2026, 3, 1))
    assert end == date(2029, 3, 1)


def test_green_food_code_year_caps_end() -> None:
    end = valid_until(
        Category.GREEN_FOOD, date(2026, 3, 1), certificate_codes=("GF110101240001",)
    )
    assert end == date(2027, 12, 31)


def test_registry_date_wins() -> None:
    end = valid_until(
        Category.GREEN_FOOD, date(2026, 3, 1), registry_valid_until=date(2026, 9, 30)
    )
    assert end == date(2026, 9, 30)


def test_category_without_term_has_no_end() -> None:
    assert valid_until(Category.APPLIANCE, date(2026, 3, 1)) is None


def test_leap_day_moves_to_february_28() -> None:
    assert add_years(date(2024, 2, 29), 3) == date(2027, 2, 28)


def test_terms_file_has_sources() -> None:
    term = load_terms()[Category.GREEN_FOOD]
    assert term.years == 3
    assert term.source_url.startswith("http")


def _claim(**changes: object) -> SelfCertification:
    values: dict[str, object] = {
        "merchant_id": "m-1",
        "sku": "s-1",
        "title": "Fridge",
        "claimed_category": Category.APPLIANCE,
        **changes,
    }
    return SelfCertification(**values)  # type: ignore[arg-type]


def test_check_verifies_registry_evidence() -> None:
    result = check(_claim(energy_label_grade=1), RuleIdentifier())
    assert result.outcome is Outcome.VERIFIED
    assert result.registry_valid_until == date(2030, 1, 31)


def test_check_fails_without_evidence_or_documents() -> None:
    result = check(_claim(), RuleIdentifier())
    assert result.outcome is Outcome.FAILED


def test_check_sends_documents_to_review() -> None:
    document = Document("certificate.pdf", "a" * 64)
    result = check(_claim(documents=(document,)), RuleIdentifier())
    assert result.outcome is Outcome.UNVERIFIED


def test_check_sends_wrong_category_to_review() -> None:
    claim = _claim(claimed_category=Category.GREEN_FOOD, energy_label_grade=1)
    result = check(claim, RuleIdentifier())
    assert result.outcome is Outcome.UNVERIFIED


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(Action)), st.sampled_from(list(Role))),
        max_size=12,
    )
)
@settings(max_examples=200, deadline=None)
def test_random_moves_follow_rules(steps: list[tuple[Action, Role]]) -> None:
    state = State.SUBMITTED
    allowed = {
        (rule.source, rule.action, role): rule.target
        for rule in RULES
        for role in rule.roles
    }
    for action, role in steps:
        expected = allowed.get((state, action, role))
        if expected is None:
            with pytest.raises(TransitionError):
                next_state(state, action, role)
            continue
        assert state not in TERMINAL_STATES
        state = next_state(state, action, role)
        assert state is expected
