"""Alembic environment: the shared metadata, on a connection or a URL.

`greenloop.store.schema.upgrade` passes an open connection in
`config.attributes["connection"]`; the `alembic` command line uses the URL
from `GREENLOOP_DATABASE_URL` or the default SQLite file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from greenloop.store.base import make_engine
from greenloop.store.schema import include_object, load_all_tables

config = context.config
target_metadata = load_all_tables()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    """Run the migrations on the given connection, or open one from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.begin() as opened:
        _run(opened)
    engine.dispose()


run_migrations()
