"""The `greenloop` command line.

Each area of the system adds its commands from its own module through a
`register(app)` function, so the modules stay small and import their heavy
dependencies only inside the commands that need them.
"""

from __future__ import annotations

import importlib
import logging
import os

import typer

COMMAND_MODULES = (
    "greenloop.cli.run",
    "greenloop.cli.runs",
    "greenloop.cli.standards",
    "greenloop.cli.identify",
    "greenloop.cli.evaluate",
    "greenloop.cli.impact",
    "greenloop.cli.ledger",
    "greenloop.cli.lending",
    "greenloop.cli.incentives",
    "greenloop.cli.serve",
)

app = typer.Typer(
    name="greenloop",
    help="Green consumer finance: identify, account, record, fund and reward.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def configure(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log DEBUG messages as well as INFO."
    ),
) -> None:
    """Configure logging once for every command."""
    level = logging.DEBUG if verbose else logging.INFO
    level_name = os.environ.get("GREENLOOP_LOG_LEVEL")
    if level_name:
        level = logging.getLevelNamesMapping().get(level_name.upper(), level)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


for _module_name in COMMAND_MODULES:
    importlib.import_module(_module_name).register(app)


def main() -> None:
    """Run the command line.

    A store that cannot be opened or reached ends any command with one line,
    as each command's own errors do, instead of a trace. With `--verbose`,
    a store that cannot be reached shows the trace.
    """
    from sqlalchemy.exc import OperationalError

    from greenloop.store.base import StoreError

    # Raised outside the command, so `fail`'s typer.Exit would not be handled.
    try:
        app()
    except StoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    except OperationalError as error:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        typer.echo(f"error: {store_failure(error)}", err=True)
        raise SystemExit(1) from None


def store_failure(error: Exception) -> str:
    """Return one line on a database error: the driver's first line and the fix."""
    from sqlalchemy.exc import DBAPIError

    cause = error.orig if isinstance(error, DBAPIError) else error
    lines = str(cause).strip().splitlines()
    first_line = lines[0] if lines else type(cause).__name__
    return (
        f"database error: {first_line}; check the database URL (--database or "
        "GREENLOOP_DATABASE_URL) and that its server is running and reachable "
        "(run with --verbose for the full trace)"
    )
