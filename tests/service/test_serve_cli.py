"""The service's commands: `db upgrade` and `apikey create`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from greenloop.cli import app
from greenloop.store import repositories
from greenloop.store.base import make_engine
from greenloop.store.schema import head_revision

runner = CliRunner()


def test_db_upgrade_reports_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = runner.invoke(app, ["db", "upgrade", "--database", url])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output


def test_apikey_create_prints_working_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    upgraded = runner.invoke(app, ["db", "upgrade", "--database", url])
    assert upgraded.exit_code == 0, upgraded.output
    result = runner.invoke(
        app,
        ["apikey", "create", "--role", "funder", "--tenant", "f-1", "--database", url],
    )
    presented = result.stdout.strip().splitlines()[-1]
    engine = make_engine(url)
    with engine.connect() as connection:
        key = repositories.find_api_key(connection, presented)
    engine.dispose()
    assert result.exit_code == 0, result.output
    assert key is not None
    assert key.tenant_id == "f-1"
    assert key.role.value == "funder"


def test_apikey_create_rejects_unknown_role(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = runner.invoke(
        app, ["apikey", "create", "--role", "boss", "--tenant", "x", "--database", url]
    )
    assert result.exit_code == 1
    assert "invalid role 'boss'" in result.output
