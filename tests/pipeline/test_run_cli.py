"""The `greenloop run` command's checks of its options, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.cli import app

runner = CliRunner()


@pytest.mark.parametrize("memory_limit", ["abc", "10", "1GB'"])
def test_invalid_memory_limit_named(
    memory_limit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    purchases = tmp_path / "purchases.csv"
    purchases.write_text("purchase_id\n", encoding="utf-8")

    result = runner.invoke(app, ["run", str(purchases), "--memory-limit", memory_limit])

    assert result.exit_code == 1
    assert f"invalid --memory-limit {memory_limit!r}" in result.output
    assert "such as 512MB, 1GB or 2GiB" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "greenloop.sqlite3").exists()
    assert not (tmp_path / "runs").exists()
