"""Helpers the routers share: time, error mapping and certification output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from greenloop.api.problems import ProblemError
from greenloop.api.schemas import CertificationOut, TransitionOut
from greenloop.certify import TransitionError
from greenloop.store import repositories


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn store and workflow errors into problem details."""
    try:
        yield
    except repositories.NotFoundError as error:
        raise ProblemError(404, "not-found", f"{error}; check the id") from None
    except repositories.ConflictError as error:
        raise ProblemError(409, "conflict", str(error)) from None
    except TransitionError as error:
        raise ProblemError(
            409, "illegal-transition", str(error), title="Illegal transition"
        ) from None


def certification_out(
    connection: Connection, row: dict[str, Any], *, with_transitions: bool = True
) -> CertificationOut:
    """Return a certification row, with its transitions, as a response model."""
    transitions = (
        [
            TransitionOut.model_validate(item)
            for item in repositories.list_transitions(connection, row["id"])
        ]
        if with_transitions
        else []
    )
    return CertificationOut.model_validate({**row, "transitions": transitions})
