"""The `greenloop run` command's checks of its options, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.cli import app
from greenloop.cli.run import _entries

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


def test_unwritable_out_folder_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    purchases = tmp_path / "purchases.csv"
    purchases.write_text(
        "purchase_id,occurred_at,amount,currency\np1,2026-05-01,10,CNY\n",
        encoding="utf-8",
    )
    # A file where the output folder should be: the run folder cannot be made.
    (tmp_path / "taken").write_text("not a folder", encoding="utf-8")

    result = runner.invoke(app, ["run", str(purchases), "--out", "taken"])

    assert result.exit_code == 1
    last_line = result.output.strip().splitlines()[-1]
    assert last_line.startswith("error: cannot write the output folder taken (--out)")
    assert "give --out a folder" in last_line


@pytest.mark.parametrize(("count", "words"), [(1, "1 entry"), (7_297, "7,297 entries")])
def test_ledger_entries_counted_in_words(count: int, words: str) -> None:
    assert _entries(count) == words
