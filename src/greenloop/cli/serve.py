"""Commands of the service: `serve`, `db upgrade` and `apikey create`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import typer

from greenloop.cli.errors import fail

logger = logging.getLogger(__name__)

ROLES = ("merchant", "reviewer", "lender", "funder", "consumer", "operator")

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


def _quiet_migrations() -> None:
    # Alembic logs every plugin and context at INFO; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def register(app: typer.Typer) -> None:
    """Add `serve`, `db` and `apikey` to the application."""
    app.command("serve")(serve)
    db_app.command("upgrade")(db_upgrade)
    apikey_app.command("create")(apikey_create)
    app.add_typer(db_app, name="db")
    app.add_typer(apikey_app, name="apikey")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
    database: str = typer.Option(
        None,
        "--database",
        help="URL of a store made by `greenloop db upgrade`; default "
        "GREENLOOP_DATABASE_URL or greenloop.sqlite3.",
    ),
    access_log: bool = typer.Option(
        False, "--access-log", help="Log one line per request (method, path, status)."
    ),
) -> None:
    """Run the API service in one worker process (OpenAPI docs at /docs)."""
    _quiet_migrations()
    import uvicorn

    from greenloop.api.app import create_app
    from greenloop.api.settings import Settings
    from greenloop.cli.stores import MADE_BY_UPGRADE, existing_store_url

    # The service authenticates with keys stored by `apikey create`, so it
    # serves an existing store only.
    url = existing_store_url(database, MADE_BY_UPGRADE)
    try:
        settings = Settings.from_environment(database_url=url)
    except ValueError as error:
        fail(str(error))
    app = create_app(settings)
    logger.info("serving on http://%s:%d (docs at /docs)", host, port)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_config=None,
        server_header=False,
    )
    logger.info("service stopped")


def db_upgrade(
    database: str = typer.Option(
        None,
        "--database",
        help="Database URL; a missing SQLite file is created. Default: "
        "GREENLOOP_DATABASE_URL or greenloop.sqlite3.",
    ),
) -> None:
    """Bring the database to the newest schema (runs the Alembic migrations)."""
    _quiet_migrations()
    from greenloop.cli.stores import resolve_database_url
    from greenloop.store.base import StoreError
    from greenloop.store.schema import SchemaMismatchError, head_revision, upgrade

    try:
        upgrade(resolve_database_url(database))
    except (SchemaMismatchError, StoreError) as error:
        fail(str(error))
    typer.echo(f"database at revision {head_revision()}")


def apikey_create(
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    tenant: str = typer.Option(
        ...,
        "--tenant",
        help="Merchant id, facility id, user id, or staff id the key acts for.",
    ),
    label: str = typer.Option("created with the CLI", "--label", help="A note."),
    database: str = typer.Option(
        None,
        "--database",
        help="URL of a store made by `greenloop db upgrade`; default "
        "GREENLOOP_DATABASE_URL or greenloop.sqlite3.",
    ),
) -> None:
    """Create an API key and print it once; only its SHA-256 is stored."""
    _quiet_migrations()
    from greenloop.certify import Role
    from greenloop.cli.stores import MADE_BY_UPGRADE, existing_store_url
    from greenloop.store import repositories
    from greenloop.store.base import make_engine
    from greenloop.store.schema import upgrade

    if role not in ROLES:
        fail(f"invalid role {role!r}; use one of: {', '.join(ROLES)}")
    engine = make_engine(existing_store_url(database, MADE_BY_UPGRADE))
    upgrade(engine)
    try:
        with engine.begin() as connection:
            presented, key = repositories.create_api_key(
                connection,
                role=Role(role),
                tenant_id=tenant,
                label=label,
                now=datetime.now(UTC),
            )
    except ValueError as error:
        fail(str(error))
    finally:
        engine.dispose()
    logger.info("API key %s created for role %s, tenant %s", key.key_id, role, tenant)
    typer.echo(presented)
