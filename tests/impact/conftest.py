"""Fixtures for the impact tests: calculators loaded once per session."""

from __future__ import annotations

from datetime import date

import pytest

from greenloop.impact import ImpactCalculator

# The 2023 China grid factors were announced in January 2026, the 2022 ones in
# December 2024, so these dates pin which year the calculator uses.
AS_OF_2023_FACTORS = date(2026, 12, 1)
AS_OF_2022_FACTORS = date(2025, 6, 1)


@pytest.fixture(scope="session")
def calculator() -> ImpactCalculator:
    """Return a calculator that uses the 2023 China grid factors."""
    return ImpactCalculator.load(AS_OF_2023_FACTORS)


@pytest.fixture(scope="session")
def calculator_2022() -> ImpactCalculator:
    """Return a calculator that uses the 2022 China grid factors."""
    return ImpactCalculator.load(AS_OF_2022_FACTORS)
