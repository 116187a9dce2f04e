"""Verdict builders shared by the impact tests."""

from __future__ import annotations

from typing import Any

from greenloop.categories import Category, Status
from greenloop.identify.verdict import Verdict


def green(category: Category, **attributes: Any) -> Verdict:
    """Return a green verdict of `category` carrying `attributes`."""
    return Verdict(
        status=Status.GREEN,
        category=category,
        standard_id=f"test-{category}",
        standard_version="test",
        attributes=dict(attributes),
    )
