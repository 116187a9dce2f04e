"""Store and key checks shared by the commands that read what a run created.

Opening a SQLite URL creates the file, and loading a log's signer creates a
key pair. Without these checks, a command that only reads would turn a
mistyped path into an empty store or a new key, and print that as its result.
"""

from __future__ import annotations

import os
from pathlib import Path

from greenloop.cli.errors import fail

DATABASE_OPTION_NAME = "--database"
KEY_DIR_OPTION_NAME = "--key-dir"
DEMO_STORE_URL = "sqlite:///runs/greenloop.sqlite3"
DEMO_KEY_DIR = Path("runs/keys")

# The commands that make the store, and the fix, per kind of command, for the
# message about a missing store.
MADE_BY_RUN = (
    "expected a store made by `greenloop run` or `greenloop demo`, so give "
    f"{DATABASE_OPTION_NAME} the URL of that store, such as {DEMO_STORE_URL} for "
    "the demo's store"
)
MADE_BY_UPGRADE = (
    "expected a store made by `greenloop db upgrade`, so run `greenloop db "
    f"upgrade {DATABASE_OPTION_NAME} URL` first or give {DATABASE_OPTION_NAME} "
    "the URL of an existing store"
)


def resolve_database_url(database: str | None) -> str:
    """Return the command's database URL, failing when it is invalid.

    The message names where the URL came from: the `--database` option or
    the GREENLOOP_DATABASE_URL environment variable.
    """
    from greenloop.store.base import StoreError, database_url

    try:
        return database_url(database, explicit_source=DATABASE_OPTION_NAME)
    except StoreError as error:
        fail(str(error))


def existing_store_url(database: str | None, expectation: str = MADE_BY_RUN) -> str:
    """Return the URL of a store that must exist already, and create nothing.

    A SQLite URL whose file is missing fails with the path, where the URL came
    from and `expectation`. Other databases are not checked here, because
    connecting to them creates nothing and reports a missing database itself.
    """
    from greenloop.store.base import sqlite_file

    url = resolve_database_url(database)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        fail(f"no store at {path} ({_url_source(database)}); {expectation}")
    return url


def _url_source(database: str | None) -> str:
    from greenloop.store.base import DATABASE_URL_VARIABLE

    if database:
        return f"URL from {DATABASE_OPTION_NAME}"
    if os.environ.get(DATABASE_URL_VARIABLE):
        return f"URL from {DATABASE_URL_VARIABLE}"
    return "the default URL"


def require_key_file(key_file: Path, description: str, fix: str = "") -> None:
    """Fail unless `key_file` exists, naming its folder when that is missing.

    `description` names the file, such as "signing key of log 'x'",
    and `fix` is appended to the default advice to give the right folder.
    """
    advice = (
        f"give {KEY_DIR_OPTION_NAME} the folder of the log's keys, such as "
        f"{DEMO_KEY_DIR} for the demo's log{fix}"
    )
    folder = key_file.parent
    if not folder.is_dir():
        fail(f"key folder {folder} not found, so there is no {description}; {advice}")
    if not key_file.is_file():
        fail(f"no {description} at {key_file}; {advice}")
