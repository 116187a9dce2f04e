"""Signed notes, key files, checkpoints and pseudonyms."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from greenloop.ledger import (
    Checkpoint,
    CheckpointError,
    KeyFileError,
    NoteError,
    Signer,
    Verifier,
    load_or_create_secret,
    load_or_create_signer,
    open_checkpoint,
    pseudonym,
    sign_checkpoint,
)
from greenloop.ledger.note import open_note, signer_path, verifier_path

ORIGIN = "example.org/test-log"


def test_key_id_follows_signed_note_rule() -> None:
    signer = Signer.generate(ORIGIN)
    verifier = signer.verifier
    expected = hashlib.sha256(
        ORIGIN.encode() + b"\n\x01" + verifier.public_key
    ).digest()[:4]
    assert verifier.key_id == expected


def test_verifier_key_round_trips() -> None:
    verifier = Signer.generate(ORIGIN).verifier
    assert Verifier.parse(str(verifier)) == verifier


def test_verifier_key_wrong_id_rejected() -> None:
    name, _, key = str(Signer.generate(ORIGIN).verifier).split("+", 2)
    with pytest.raises(NoteError, match="key ID"):
        Verifier.parse(f"{name}+00000000+{key}")


def test_signed_note_verifies() -> None:
    signer = Signer.generate(ORIGIN)
    note = signer.sign("hello\n")
    assert open_note(note, signer.verifier) == "hello\n"


def test_changed_note_text_rejected() -> None:
    signer = Signer.generate(ORIGIN)
    note = signer.sign("hello\n").replace("hello", "hullo")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note, signer.verifier)


def test_unknown_signature_lines_ignored() -> None:
    signer = Signer.generate(ORIGIN)
    witness = Signer.generate("witness.example")
    note = signer.sign("hello\n")
    cosigned = note + witness.sign("hello\n").split("\n\n", 1)[1]
    assert open_note(cosigned, signer.verifier) == "hello\n"


def test_note_without_trusted_signature_rejected() -> None:
    note = Signer.generate(ORIGIN).sign("hello\n")
    with pytest.raises(NoteError, match="no signature") as raised:
        open_note(note, Signer.generate(ORIGIN).verifier)
    assert "verifier-key.txt" in str(raised.value)


def test_checkpoint_text_layout() -> None:
    root = bytes(range(32))
    text = Checkpoint(ORIGIN, 10431, root).text()
    assert text == f"{ORIGIN}\n10431\n{base64.b64encode(root).decode()}\n"


def test_checkpoint_leading_zero_size_rejected() -> None:
    text = f"{ORIGIN}\n012\n{base64.b64encode(bytes(32)).decode()}\n"
    with pytest.raises(CheckpointError, match="leading zeros"):
        Checkpoint.parse(text)


def test_checkpoint_of_other_origin_rejected() -> None:
    signer = Signer.generate(ORIGIN)
    note = sign_checkpoint(signer, Checkpoint("other.example/log", 1, bytes(32)))
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(note, signer.verifier)


def test_signer_created_with_private_mode(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "keys", ORIGIN)
    private = signer_path(tmp_path / "keys", ORIGIN)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (
        verifier_path(tmp_path / "keys", ORIGIN).read_text() == f"{signer.verifier}\n"
    )


def test_signer_reloaded_unchanged(tmp_path: Path) -> None:
    first = load_or_create_signer(tmp_path, ORIGIN)
    second = load_or_create_signer(tmp_path, ORIGIN)
    assert first.verifier == second.verifier


def test_open_private_key_rejected(tmp_path: Path) -> None:
    load_or_create_signer(tmp_path, ORIGIN)
    signer_path(tmp_path, ORIGIN).chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_signer(tmp_path, ORIGIN)


def test_signer_repr_hides_private_key(tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path, ORIGIN)
    private_text = signer_path(tmp_path, ORIGIN).read_text().strip()
    # The base64 seed may itself contain "+", so split off exactly four fields.
    encoded_seed = private_text.split("+", 4)[-1]
    assert encoded_seed not in repr(signer)


def test_secret_created_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == secret


def test_pseudonym_is_hmac_sha256() -> None:
    import hmac

    secret = b"s" * 32
    expected = hmac.new(secret, b"user-1", hashlib.sha256).hexdigest()
    assert pseudonym("user-1", secret) == expected


def test_pseudonym_depends_on_secret() -> None:
    assert pseudonym("user-1", b"a" * 32) != pseudonym("user-1", b"b" * 32)


def test_short_secret_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        pseudonym("user-1", b"short")
