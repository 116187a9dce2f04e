"""The progress interface through which steps report without knowing the display."""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress from a step: a total, then advances, then the end."""

    def start(self, step: str, total: int | None) -> None:
        """Begin a step of `total` units (None when unknown)."""

    def advance(self, units: int) -> None:
        """Record that `units` more units are done."""

    def finish(self) -> None:
        """End the current step."""


class NoProgress:
    """A sink that discards progress, for library use and tests."""

    def start(self, step: str, total: int | None) -> None:
        """Discard the start of a step."""

    def advance(self, units: int) -> None:
        """Discard an advance."""

    def finish(self) -> None:
        """Discard the end of a step."""
