"""One way for every command to fail: a one-line reason and a non-zero exit."""

from __future__ import annotations

from typing import NoReturn

import typer


class UsageError(Exception):
    """An error caused by the user's input, reported as one line without a trace."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: MESSAGE` to standard error and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
