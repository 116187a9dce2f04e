"""The ledger commands: key, checkpoint, receipt, verify, consistency and audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ledger_helpers import asset
from sqlalchemy import text
from typer.testing import CliRunner

from greenloop.cli import app
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore

runner = CliRunner()


@pytest.fixture
def workspace(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    log = LedgerStore(make_engine(sqlite_url), key_dir=tmp_path / "keys")
    log.append([asset(index) for index in range(40)])
    return {"url": sqlite_url, "keys": str(tmp_path / "keys"), "dir": str(tmp_path)}


def _run(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments))
    return result.exit_code, result.output


def _options(workspace: dict[str, str]) -> list[str]:
    return ["--database", workspace["url"], "--key-dir", workspace["keys"]]


def _receipt(workspace: dict[str, str], purchase: str, name: str) -> Path:
    path = Path(workspace["dir"]) / name
    code, output = _run(
        "ledger", "receipt", purchase, *_options(workspace), "--output", str(path)
    )
    assert code == 0, output
    return path


def test_verify_accepts_valid_receipt(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000007", "receipt.json")
    code, key = _run("ledger", "key", "--key-dir", workspace["keys"])
    assert code == 0
    code, output = _run("verify", str(receipt), "--key", key.strip())
    assert code == 0, output
    assert "entry 7" in output


def test_verify_rejects_edited_receipt(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000007", "receipt.json")
    document = json.loads(receipt.read_text())
    document["tlog_proof"] = document["tlog_proof"].replace("index 7", "index 8")
    receipt.write_text(json.dumps(document))
    _, key = _run("ledger", "key", "--key-dir", workspace["keys"])
    code, output = _run("verify", str(receipt), "--key", key.strip())
    assert code == 1
    assert "invalid" in output


def test_verify_reads_key_file(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000001", "receipt.tlog-proof")
    key_files = list(Path(workspace["keys"]).glob("*.verifier-key"))
    code, output = _run("verify", str(receipt), "--key", str(key_files[0]))
    assert code == 0, output


def test_verify_key_folder_names_file(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000001", "receipt.tlog-proof")
    code, output = _run("verify", str(receipt), "--key", workspace["keys"])
    key_file = next(Path(workspace["keys"]).glob("*.verifier-key"))
    assert code == 1
    assert "is a folder" in output
    assert str(key_file) in output


def test_verify_wrong_key_file_named(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000001", "receipt.tlog-proof")
    not_a_key = Path(workspace["dir"]) / "notes.md"
    notes = "# notes\n" + "a line of notes\n" * 500
    not_a_key.write_text(notes, encoding="utf-8")
    code, output = _run("verify", str(receipt), "--key", str(not_a_key))
    assert code == 1
    assert f"verifier key file {not_a_key} is invalid" in output
    assert f"({len(notes.strip()):,} characters)" in output
    assert "greenloop ledger key" in output
    assert len(output) < 400


def test_verify_binary_key_file_named(workspace: dict[str, str]) -> None:
    _run("ledger", "checkpoint", *_options(workspace))
    receipt = _receipt(workspace, "purchase-000001", "receipt.tlog-proof")
    binary = Path(workspace["dir"]) / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00+")
    code, output = _run("verify", str(receipt), "--key", str(binary))
    assert code == 1
    assert f"cannot read verifier key file {binary}" in output
    assert "Traceback" not in output


def test_consistency_between_checkpoints(workspace: dict[str, str]) -> None:
    old = Path(workspace["dir"]) / "old.checkpoint"
    new = Path(workspace["dir"]) / "new.checkpoint"
    _run("ledger", "checkpoint", *_options(workspace), "--output", str(old))
    LedgerStore(make_engine(workspace["url"]), key_dir=Path(workspace["keys"])).append(
        [asset(index) for index in range(40, 90)]
    )
    _run("ledger", "checkpoint", *_options(workspace), "--output", str(new))
    proof = Path(workspace["dir"]) / "proof.txt"
    code, output = _run(
        "ledger",
        "consistency",
        str(old),
        str(new),
        *_options(workspace),
        "--save-proof",
        str(proof),
    )
    assert code == 0, output
    assert "extends size 40" in output


def test_consistency_offline_with_proof(workspace: dict[str, str]) -> None:
    old = Path(workspace["dir"]) / "old.checkpoint"
    new = Path(workspace["dir"]) / "new.checkpoint"
    proof = Path(workspace["dir"]) / "proof.txt"
    _run("ledger", "checkpoint", *_options(workspace), "--output", str(old))
    LedgerStore(make_engine(workspace["url"]), key_dir=Path(workspace["keys"])).append(
        [asset(index) for index in range(40, 90)]
    )
    _run("ledger", "checkpoint", *_options(workspace), "--output", str(new))
    _run(
        "ledger",
        "consistency",
        str(old),
        str(new),
        *_options(workspace),
        "--save-proof",
        str(proof),
    )
    key_file = str(next(Path(workspace["keys"]).glob("*.verifier-key")))
    offline = ["ledger", "consistency", str(old), str(new), "--key", key_file]
    code, output = _run(*offline, "--proof", str(proof))
    assert code == 0, output
    lines = proof.read_text().split()
    lines[0] = ("B" if lines[0][0] != "B" else "C") + lines[0][1:]
    proof.write_text("\n".join(lines) + "\n")
    code, output = _run(*offline, "--proof", str(proof))
    assert code == 1
    assert "does not extend" in output


def test_audit_reports_changed_entry(workspace: dict[str, str]) -> None:
    with make_engine(workspace["url"]).begin() as connection:
        connection.execute(
            text("UPDATE ledger_entry SET record = :r WHERE entry_index = 3"),
            {"r": b'{"purchase_id":"purchase-000003"}'},
        )
    code, output = _run("ledger", "audit", *_options(workspace))
    assert code == 1
    assert "entry_changed index 3" in output


def test_audit_clean_log_exits_zero(workspace: dict[str, str]) -> None:
    code, output = _run("ledger", "audit", *_options(workspace))
    assert code == 0, output
    assert "audit ok: 40 entries" in output


def test_receipt_before_checkpoint_fails(workspace: dict[str, str]) -> None:
    code, output = _run("ledger", "receipt", "purchase-000001", *_options(workspace))
    assert code == 1
    assert "greenloop ledger checkpoint" in output
