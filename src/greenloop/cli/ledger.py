"""Commands of the ledger area: offline verification, checkpoints, receipts, audit."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from greenloop.cli.errors import fail

if TYPE_CHECKING:
    from greenloop.ledger import Verifier
    from greenloop.store.ledger import LedgerStore

logger = logging.getLogger(__name__)

DEFAULT_ORIGIN = "greenloop.local/green-assets"

ledger_app = typer.Typer(
    help="The tamper-evident log of green assets: checkpoints, receipts, audit.",
    no_args_is_help=True,
)

DATABASE_OPTION = typer.Option(
    None,
    "--database",
    help=(
        "SQLAlchemy database URL, such as sqlite:///runs/greenloop.sqlite3 for "
        "the store of `greenloop demo`. Default: GREENLOOP_DATABASE_URL, else "
        "the SQLite file greenloop.sqlite3 in the current folder."
    ),
)
KEY_DIR_OPTION = typer.Option(
    Path("keys"),
    "--key-dir",
    help=(
        "Folder with the log's signing and verifier keys, such as runs/keys "
        "for `greenloop demo`. The first checkpoint of a log creates them."
    ),
)
ORIGIN_OPTION = typer.Option(
    DEFAULT_ORIGIN, "--origin", help="Origin (name) of the log."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the application."""
    app.command("verify")(verify)
    app.add_typer(ledger_app, name="ledger")


def _open_store(database: str | None, key_dir: Path, origin: str) -> LedgerStore:
    """Open an existing log, failing when its store or its origin is missing.

    `LedgerStore` creates the tables and the log row it does not find, so
    both are checked first.
    """
    from greenloop.cli.stores import existing_store_url
    from greenloop.store.base import make_engine
    from greenloop.store.ledger import LedgerStore, log_origins

    url = existing_store_url(database)
    engine = make_engine(url)
    origins = log_origins(engine)
    if origin not in origins:
        engine.dispose()
        known = ", ".join(repr(name) for name in origins) or "none"
        fail(
            f"no log with origin {origin!r} in the store (logs in it: {known}); "
            "pass --origin with the log's origin, or give --database the store "
            "that `greenloop run` wrote"
        )
    return LedgerStore(engine, origin=origin, key_dir=key_dir)


def _require_key_if_signed(store: LedgerStore, key_file: Path, name: str) -> None:
    """Fail when the log has signed checkpoints but `key_file` is missing.

    A log that has never been signed has no key yet: its first checkpoint
    creates the key pair.
    """
    from greenloop.cli.stores import require_key_file

    if store.latest_checkpoint() is not None:
        require_key_file(
            key_file, f"{name} of log {store.origin!r}, which has signed checkpoints"
        )


def _load_verifier(key: str) -> Verifier:
    """Read a verifier key given inline or as the path of a file holding it."""
    from greenloop.ledger import NoteError, Verifier

    path = Path(key)
    text = key
    if path.is_dir():
        keys = sorted(path.glob("*.verifier-key"))
        example = f" such as {keys[0]}" if keys else ""
        fail(
            f"verifier key {key} is a folder; pass the verifier key file{example} "
            "or the key itself"
        )
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"cannot read verifier key file {key}: {error}")
    elif "+" not in key:
        fail(f"verifier key file {key} not found; pass the file or the key itself")
    try:
        return Verifier.parse(text)
    except NoteError as error:
        if path.is_file():
            fail(f"verifier key file {key} is invalid: {error}")
        fail(str(error))


def verify(
    receipt: Path = typer.Argument(..., help="Receipt file: JSON or .tlog-proof text."),
    key: str = typer.Option(
        ..., "--key", help="Log verifier key, or a file holding it (from `ledger key`)."
    ),
) -> None:
    """Verify a green-asset receipt offline, without any database."""
    from greenloop.ledger import ReceiptError, verify_receipt

    verifier = _load_verifier(key)
    try:
        content = receipt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read receipt {receipt}: {error}")
    document: dict[str, object] | str = content
    if content.lstrip().startswith("{"):
        try:
            document = json.loads(content)
        except json.JSONDecodeError as error:
            fail(f"receipt {receipt} is not valid JSON: {error}")
    try:
        verified = verify_receipt(document, verifier)
    except ReceiptError as error:
        fail(f"receipt {receipt} is invalid: {error}")
    purchase = verified.record.get("purchase_id", "(no purchase_id in the record)")
    typer.echo(
        f"verified: purchase {purchase} is entry {verified.index} of "
        f"{verified.checkpoint.origin} at tree size {verified.checkpoint.size}; "
        f"record SHA-256 {verified.record_digest}"
    )


@ledger_app.command("key")
def key_command(
    key_dir: Path = KEY_DIR_OPTION,
    origin: str = ORIGIN_OPTION,
    create: bool = typer.Option(
        False,
        "--create",
        help="Create a new key pair in --key-dir when the log has none yet.",
    ),
) -> None:
    """Print the log's verifier key, read from its signing key in --key-dir."""
    from greenloop.cli.stores import require_key_file
    from greenloop.ledger import KeyFileError, load_or_create_signer
    from greenloop.ledger.note import signer_path

    if not create:
        require_key_file(
            signer_path(key_dir, origin),
            f"signing key of log {origin!r}",
            ", or pass --create to make a new key pair",
        )
    try:
        signer = load_or_create_signer(key_dir, origin)
    except KeyFileError as error:
        fail(str(error))
    typer.echo(str(signer.verifier))


@ledger_app.command("checkpoint")
def checkpoint_command(
    database: str | None = DATABASE_OPTION,
    key_dir: Path = KEY_DIR_OPTION,
    origin: str = ORIGIN_OPTION,
    output: Path | None = typer.Option(
        None, "--output", help="Also write the note here."
    ),
) -> None:
    """Sign a checkpoint for the log's current size and print it.

    The first checkpoint of a log creates its key pair in --key-dir. Later
    ones need that key.
    """
    from greenloop.ledger import CheckpointError, KeyFileError
    from greenloop.ledger.note import signer_path

    store = _open_store(database, key_dir, origin)
    _require_key_if_signed(store, signer_path(key_dir, origin), "signing key")
    try:
        note = store.checkpoint()
    except (CheckpointError, KeyFileError) as error:
        fail(str(error))
    if output is not None:
        output.write_text(note, encoding="utf-8")
    typer.echo(note, nl=False)


@ledger_app.command("receipt")
def receipt_command(
    purchase_id: str = typer.Argument(..., help="Purchase id of the green asset."),
    database: str | None = DATABASE_OPTION,
    key_dir: Path = KEY_DIR_OPTION,
    origin: str = ORIGIN_OPTION,
    tlog_proof: bool = typer.Option(
        False, "--tlog-proof", help="Print the bare c2sp.org/tlog-proof text, not JSON."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Write the receipt here."
    ),
) -> None:
    """Print the offline receipt of one green asset against the latest checkpoint."""
    from greenloop.store.ledger import LedgerError

    store = _open_store(database, key_dir, origin)
    try:
        receipt = store.receipt(purchase_id)
    except KeyError as error:
        fail(str(error.args[0]))
    except LedgerError as error:
        fail(str(error))
    text = receipt["tlog_proof"] if tlog_proof else json.dumps(receipt, indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)


@ledger_app.command("consistency")
def consistency_command(
    old: Path = typer.Argument(..., help="Earlier signed checkpoint file."),
    new: Path = typer.Argument(..., help="Later signed checkpoint file."),
    key: str | None = typer.Option(
        None, "--key", help="Verifier key or its file (default: the key in --key-dir)."
    ),
    proof: Path | None = typer.Option(
        None,
        "--proof",
        help="File with the consistency proof, one base64 hash a line; "
        "without it the proof is read from the database.",
    ),
    save_proof: Path | None = typer.Option(
        None,
        "--save-proof",
        help="Write the proof used here, one base64 hash a line, to give to a "
        "bank that checks offline with --proof.",
    ),
    database: str | None = DATABASE_OPTION,
    key_dir: Path = KEY_DIR_OPTION,
) -> None:
    """Check that the NEW checkpoint extends the OLD one, with nothing rewritten."""
    from greenloop.ledger import (
        CheckpointError,
        ProofError,
        open_checkpoint,
        verify_consistency,
    )

    old_note, new_note = _read_text(old), _read_text(new)
    verifier = _consistency_verifier(key, key_dir, old_note)
    try:
        first = open_checkpoint(old_note, verifier)
        second = open_checkpoint(new_note, verifier)
    except CheckpointError as error:
        fail(str(error))
    if proof is not None:
        hashes = _read_proof(proof)
    elif first.size == second.size or first.size == 0:
        hashes = []
    else:
        store = _open_store(database, key_dir, first.origin)
        hashes = store.consistency_proof(first.size, second.size)
    if save_proof is not None:
        lines = "".join(base64.b64encode(value).decode() + "\n" for value in hashes)
        save_proof.write_text(lines, encoding="utf-8")
    try:
        verify_consistency(first.size, second.size, hashes, first.root, second.root)
    except ProofError as error:
        fail(f"checkpoint {new} does not extend {old}: {error}")
    typer.echo(
        f"consistent: size {second.size} of {second.origin} extends size {first.size}"
    )


def _consistency_verifier(key: str | None, key_dir: Path, note: str) -> Verifier:
    if key is not None:
        return _load_verifier(key)
    from greenloop.ledger.note import verifier_path

    origin = note.split("\n", 1)[0]
    path = verifier_path(key_dir, origin)
    if not path.exists():
        fail(f"no verifier key for {origin!r} at {path}; pass --key")
    return _load_verifier(str(path))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {path}: {error}")


def _read_proof(path: Path) -> list[bytes]:
    hashes = []
    for number, line in enumerate(_read_text(path).split(), start=1):
        try:
            hashes.append(base64.b64decode(line, validate=True))
        except binascii.Error:
            fail(f"line {number} of {path} is not a base64 hash")
    return hashes


@ledger_app.command("audit")
def audit_command(
    database: str | None = DATABASE_OPTION,
    key_dir: Path = KEY_DIR_OPTION,
    origin: str = ORIGIN_OPTION,
) -> None:
    """Recompute the tree from the stored entries; list every tampered entry or tile.

    Checkpoint signatures are checked with the verifier key in --key-dir,
    which must exist once the log has a signed checkpoint.
    """
    from greenloop.ledger.note import verifier_path

    store = _open_store(database, key_dir, origin)
    _require_key_if_signed(store, verifier_path(key_dir, origin), "verifier key")
    report = store.audit()
    for finding in report.findings:
        where = "" if finding.index is None else f" index {finding.index}"
        if finding.level is not None:
            where = f" level {finding.level}{where}"
        typer.echo(f"{finding.kind}{where}: {finding.message}")
    for kind, count in report.suppressed.items():
        typer.echo(f"{kind}: {count} more not listed")
    if not report.ok:
        fail(
            f"audit of {origin} found {len(report.findings)} problems in "
            f"{report.entries_checked} entries and {report.tiles_checked} tiles"
        )
    typer.echo(
        f"audit ok: {report.entries_checked} entries and {report.tiles_checked} tiles "
        f"match the root of size {report.size}"
    )


@ledger_app.command("export-tiles")
def export_tiles_command(
    directory: Path = typer.Argument(..., help="Folder to write the static log into."),
    database: str | None = DATABASE_OPTION,
    key_dir: Path = KEY_DIR_OPTION,
    origin: str = ORIGIN_OPTION,
) -> None:
    """Write the log at its latest checkpoint as c2sp.org/tlog-tiles static files."""
    from greenloop.store.ledger import LedgerError

    store = _open_store(database, key_dir, origin)
    try:
        size = store.export_tiles(directory)
    except LedgerError as error:
        fail(str(error))
    typer.echo(f"exported {origin} at tree size {size} to {directory}")
