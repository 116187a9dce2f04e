"""Commands that read a store, log or key fail on a missing one and create nothing.

Each command runs in an empty working folder, with its inputs in a folder
beside it, so any file or folder it creates shows up in the working folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from greenloop.cli import app
from greenloop.ledger.note import signer_path, verifier_path
from greenloop.store.base import StoreError, database_url, make_engine
from greenloop.store.ledger import LedgerStore, log_origins

ORIGIN = "greenloop.local/green-assets"
MISSING_URL = "sqlite:///absent.sqlite3"
MADE_BY_RUN = "expected a store made by `greenloop run` or `greenloop demo`"
MADE_BY_UPGRADE = "expected a store made by `greenloop db upgrade`"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return an empty working folder, made current, with no database variable."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("GREENLOOP_DATABASE_URL", raising=False)
    return folder


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Write two checkpoints of one log, their verifier key and a seed file."""
    folder = tmp_path / "inputs"
    keys = folder / "keys"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'source.sqlite3'}")
    log = LedgerStore(engine, origin=ORIGIN, key_dir=keys)
    log.append([(f"p-{index}", {"purchase_id": f"p-{index}"}) for index in range(3)])
    old = folder / "old.checkpoint"
    old.write_text(log.checkpoint())
    log.append([(f"p-{index}", {"purchase_id": f"p-{index}"}) for index in range(5)])
    new = folder / "new.checkpoint"
    new.write_text(log.checkpoint())
    engine.dispose()
    seed = folder / "seed.hex"
    seed.write_text("00" * 32)
    return {
        "old": old,
        "new": new,
        "key": verifier_path(keys, ORIGIN),
        "seed": seed,
        "store": folder / "source.sqlite3",
    }


def _invoke(arguments: list[str]) -> Result:
    return CliRunner().invoke(app, arguments)


def _error_line(result: Result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# Commands that read or act on a store made before: the command line without
# --database, and what the message expects to have made the store.
READING_COMMANDS = {
    "runs list": (["runs", "list"], MADE_BY_RUN),
    "ledger checkpoint": (["ledger", "checkpoint", "--key-dir", "keys"], MADE_BY_RUN),
    "ledger receipt": (["ledger", "receipt", "p-1", "--key-dir", "keys"], MADE_BY_RUN),
    "ledger audit": (["ledger", "audit", "--key-dir", "keys"], MADE_BY_RUN),
    "ledger export-tiles": (["ledger", "export-tiles", "tiles"], MADE_BY_RUN),
    "facilities reconcile": (["facilities", "reconcile", "f-1"], MADE_BY_RUN),
    "draw commit": (
        [
            "draw",
            "commit",
            "--campaign",
            "lottery",
            "--seed-file",
            "seed.hex",
            "--out",
            "commitment.json",
        ],
        MADE_BY_RUN,
    ),
    "apikey create": (
        ["apikey", "create", "--role", "operator", "--tenant", "ops-1"],
        MADE_BY_UPGRADE,
    ),
    "serve": (["serve", "--port", "0"], MADE_BY_UPGRADE),
}


@pytest.mark.parametrize("name", sorted(READING_COMMANDS))
def test_missing_store_creates_nothing(work: Path, name: str) -> None:
    arguments, expectation = READING_COMMANDS[name]
    result = _invoke([*arguments, "--database", MISSING_URL])
    line = _error_line(result)
    assert result.exit_code == 1, result.output
    assert line.startswith("error: no store at absent.sqlite3 (URL from --database)")
    assert expectation in line
    assert list(work.iterdir()) == []


def test_draw_reveal_missing_store(work: Path, inputs: dict[str, Path]) -> None:
    result = _invoke(
        [
            "draw",
            "reveal",
            "--draw-id",
            "lottery-1",
            "--seed-file",
            str(inputs["seed"]),
            "--out",
            "record.json",
            "--database",
            MISSING_URL,
        ]
    )
    line = _error_line(result)
    assert result.exit_code == 1, result.output
    assert line.startswith("error: no store at absent.sqlite3")
    assert list(work.iterdir()) == []


def test_consistency_missing_store(work: Path, inputs: dict[str, Path]) -> None:
    result = _invoke(
        [
            "ledger",
            "consistency",
            str(inputs["old"]),
            str(inputs["new"]),
            "--key",
            str(inputs["key"]),
            "--database",
            MISSING_URL,
        ]
    )
    line = _error_line(result)
    assert result.exit_code == 1, result.output
    assert line.startswith("error: no store at absent.sqlite3")
    assert list(work.iterdir()) == []


def test_missing_store_names_variable(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENLOOP_DATABASE_URL", MISSING_URL)
    result = _invoke(["ledger", "audit"])
    line = _error_line(result)
    assert result.exit_code == 1
    assert "no store at absent.sqlite3 (URL from GREENLOOP_DATABASE_URL)" in line
    assert list(work.iterdir()) == []


def test_missing_default_store(work: Path) -> None:
    result = _invoke(["runs", "list"])
    line = _error_line(result)
    assert result.exit_code == 1
    assert "no store at greenloop.sqlite3 (the default URL)" in line
    assert list(work.iterdir()) == []


def test_ledger_key_missing_folder(work: Path) -> None:
    result = _invoke(["ledger", "key", "--key-dir", "keys"])
    line = _error_line(result)
    assert result.exit_code == 1
    assert line.startswith("error: key folder keys not found")
    assert "--create" in line
    assert list(work.iterdir()) == []


def test_ledger_key_missing_file(work: Path) -> None:
    (work / "keys").mkdir()
    result = _invoke(["ledger", "key", "--key-dir", "keys"])
    line = _error_line(result)
    assert result.exit_code == 1
    assert f"no signing key of log {ORIGIN!r} at keys/" in line
    assert list((work / "keys").iterdir()) == []


def test_ledger_key_create_flag(work: Path) -> None:
    result = _invoke(["ledger", "key", "--key-dir", "keys", "--create"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{ORIGIN}+")
    assert signer_path(work / "keys", ORIGIN).is_file()


@pytest.mark.parametrize("command", ["checkpoint", "audit"])
def test_signed_log_needs_key(
    work: Path, inputs: dict[str, Path], command: str
) -> None:
    url = f"sqlite:///{inputs['store']}"
    result = _invoke(["ledger", command, "--database", url, "--key-dir", "keys"])
    line = _error_line(result)
    assert result.exit_code == 1, result.output
    assert line.startswith("error: key folder keys not found")
    assert "which has signed checkpoints" in line
    assert "runs/keys" in line
    assert list(work.iterdir()) == []


def test_checkpoint_unknown_origin(work: Path, inputs: dict[str, Path]) -> None:
    url = f"sqlite:///{inputs['store']}"
    result = _invoke(
        ["ledger", "checkpoint", "--database", url, "--origin", "example.org/typo"]
    )
    line = _error_line(result)
    engine = make_engine(url)
    origins = log_origins(engine)
    engine.dispose()
    assert result.exit_code == 1
    assert "no log with origin 'example.org/typo'" in line
    assert f"logs in it: {ORIGIN!r}" in line
    assert origins == [ORIGIN]
    assert list(work.iterdir()) == []


def test_first_checkpoint_creates_key(work: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unsigned.sqlite3'}"
    engine = make_engine(url)
    LedgerStore(engine, origin=ORIGIN).append([("p-1", {"purchase_id": "p-1"})])
    engine.dispose()
    result = _invoke(["ledger", "checkpoint", "--database", url])
    assert result.exit_code == 0, result.output
    assert signer_path(work / "keys", ORIGIN).is_file()


# Invalid URLs: the value, and the start of the message after its source.
INVALID_URLS = [
    ("runs/greenloop.sqlite3", "is not a database URL"),
    ("foo://host/database", "names the unknown database driver 'foo'"),
    ("postgresql+nosuch://host/database", "names the unknown database driver"),
]


@pytest.mark.parametrize(("url", "problem"), INVALID_URLS)
@pytest.mark.parametrize(
    "arguments", [["runs", "list"], ["ledger", "checkpoint"], ["db", "upgrade"]]
)
def test_invalid_variable_named(
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    problem: str,
    arguments: list[str],
) -> None:
    monkeypatch.setenv("GREENLOOP_DATABASE_URL", url)
    result = _invoke(arguments)
    line = _error_line(result)
    assert result.exit_code == 1
    assert line.startswith(f"error: GREENLOOP_DATABASE_URL={url!r} {problem}")
    assert list(work.iterdir()) == []


def test_invalid_option_named(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENLOOP_DATABASE_URL", MISSING_URL)
    result = _invoke(["runs", "list", "--database", "runs/greenloop.sqlite3"])
    line = _error_line(result)
    assert result.exit_code == 1
    assert line.startswith("error: --database='runs/greenloop.sqlite3' is not")
    assert "sqlite:///runs/greenloop.sqlite3" in line


def test_missing_driver_hides_password(work: Path) -> None:
    url = "postgresql+pg8000://user:secret@127.0.0.1/test"
    result = _invoke(["db", "upgrade", "--database", url])
    line = _error_line(result)
    assert result.exit_code == 1
    assert "needs the Python module 'pg8000'" in line
    assert "secret" not in line


def test_invalid_variable_in_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENLOOP_DATABASE_URL", "greenloop.sqlite3")
    with pytest.raises(StoreError, match=r"^GREENLOOP_DATABASE_URL='greenloop"):
        database_url()


def test_invalid_variable_in_process(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "greenloop.cli", "ledger", "audit"],
        cwd=tmp_path,
        env={**os.environ, "GREENLOOP_DATABASE_URL": "mysql//host/db"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith(
        "error: GREENLOOP_DATABASE_URL='mysql//host/db' is not a database URL"
    )
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []
