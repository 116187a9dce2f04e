"""Signed notes (c2sp.org/signed-note) with Ed25519 keys, and the key files.

Key formats follow golang.org/x/mod/sumdb/note, which the C2SP tools read:
a verifier key is `<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>`
and a signer key is `PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || private seed)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from greenloop.ledger.privacy import (
    KeyFileError,
    check_private_mode,
    write_private_file,
)

ED25519_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
SIGNER_KEY_PREFIX = "PRIVATE+KEY+"
_KEY_NAME_FORBIDDEN = re.compile(r"[\s+]")


class NoteError(ValueError):
    """A signed note or key is malformed, or no trusted signature verifies."""


def check_key_name(name: str) -> str:
    """Return `name` if it is a valid note key name, or raise NoteError."""
    if not name or _KEY_NAME_FORBIDDEN.search(name):
        raise NoteError(
            f"key name {name!r} is invalid: it must be non-empty and contain no "
            "spaces or '+' (use the log origin, for example example.com/log)"
        )
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key
    ).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key: the key name, its key ID and the public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse a verifier key string `<name>+<hex key ID>+<base64 key>`."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(
                f"verifier key {_quote_shortened(text.strip())} must have the form "
                "<name>+<8 hex digits>+<base64 key>; print one with "
                "`greenloop ledger key`"
            )
        name, id_hex, encoded = parts
        check_key_name(name)
        try:
            identifier = bytes.fromhex(id_hex)
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as error:
            raise NoteError(
                f"verifier key for {name!r} is not valid hex and base64"
            ) from error
        if len(identifier) != 4 or len(key) != 33 or key[0] != ED25519_TYPE:
            raise NoteError(
                f"verifier key for {name!r} is not an Ed25519 note key "
                "(4-byte key ID, type byte 0x01, 32-byte public key)"
            )
        if key_id(name, key[1:]) != identifier:
            raise NoteError(
                f"verifier key for {name!r} has a key ID that does not match its key"
            )
        return cls(name, identifier, key[1:])

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Say whether `signature` is this key's Ed25519 signature over `text`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 note signer. Its private key never appears in a message or log."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._private_key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, key_id(name, public), public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a signer with a new random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Parse a signer key string `PRIVATE+KEY+<name>+<hex key ID>+<base64 seed>`."""
        if not text.startswith(SIGNER_KEY_PREFIX):
            raise NoteError("signer key must start with PRIVATE+KEY+")
        parts = text.strip()[len(SIGNER_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError(
                "signer key must have the form PRIVATE+KEY+<name>+<id>+<key>"
            )
        name, id_hex, encoded = parts
        try:
            seed = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise NoteError(f"signer key for {name!r} is not valid base64") from error
        if len(seed) != 33 or seed[0] != ED25519_TYPE:
            raise NoteError(f"signer key for {name!r} is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed[1:]))
        if signer.verifier.key_id.hex() != id_hex:
            raise NoteError(
                f"signer key for {name!r} has a key ID that does not match its key"
            )
        return signer

    def private_text(self) -> str:
        """Return the signer key string, for writing to a private key file only."""
        seed = self._private_key.private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode()
        return f"{SIGNER_KEY_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"Signer({self.verifier})"

    def sign(self, text: str) -> str:
        """Return the signed note: `text`, a blank line and this key's signature."""
        body = _check_text(text)
        signature = self._private_key.sign(body.encode("utf-8"))
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{body}\n{SIGNATURE_PREFIX}{self.name} {encoded}\n"


def _check_text(text: str) -> str:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(character) < 0x20 and character != "\n" for character in text):
        raise NoteError(
            "note text must not contain control characters other than newline"
        )
    return text


@dataclass(frozen=True)
class SignatureLine:
    """One signature line of a note: the key name, key ID and signature bytes."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """Split a signed note into its text and signature lines, checking the format."""
    _check_text(note)
    separator = note.rfind("\n\n")
    if separator < 0:
        raise NoteError("signed note has no blank line between its text and signatures")
    text = note[: separator + 1]
    lines = note[separator + 2 :].split("\n")
    if lines[-1] != "" or len(lines) < 2:
        raise NoteError(
            "signed note must end with at least one signature line and a newline"
        )
    if len(lines) - 1 > MAX_SIGNATURES:
        raise NoteError(f"signed note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines[:-1]:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(
                f"signature line {line[:40]!r} does not start with an em dash"
            )
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        check_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise NoteError(f"signature by {name!r} is not valid base64") from error
        if len(raw) < 5:
            raise NoteError(f"signature by {name!r} is too short to hold a key ID")
        signatures.append(SignatureLine(name, raw[:4], raw[4:]))
    return text, signatures


def open_note(note: str, verifier: Verifier) -> str:
    """Return the text of `note` after checking the signature by `verifier`.

    Lines from other keys are ignored, as the signed-note format requires;
    a failed signature by the trusted key rejects the whole note.
    """
    text, signatures = split_note(note)
    matching = [
        line
        for line in signatures
        if line.name == verifier.name and line.key_id == verifier.key_id
    ]
    if not matching:
        raise NoteError(
            f"note carries no signature by the trusted key {verifier.name!r}; "
            "check that the verifier key is the one of the log that signed the "
            "note (each run writes it to verifier-key.txt in its run folder)"
        )
    for line in matching:
        if not verifier.verify(text.encode("utf-8"), line.signature):
            raise NoteError(f"signature by {verifier.name!r} does not verify")
    return text


# Longer text is cut in error messages, because it may be a whole file given
# by mistake in place of a key.
MAX_SHOWN_KEY_CHARS = 100


def _quote_shortened(text: str) -> str:
    if len(text) <= MAX_SHOWN_KEY_CHARS:
        return repr(text)
    return f"{text[:MAX_SHOWN_KEY_CHARS]!r}... ({len(text):,} characters)"


def _key_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def signer_path(key_dir: Path, name: str) -> Path:
    """Return the private key file for key `name` under `key_dir`."""
    return Path(key_dir) / f"{_key_stem(name)}.signer-key"


def verifier_path(key_dir: Path, name: str) -> Path:
    """Return the verifier key file for key `name` under `key_dir`."""
    return Path(key_dir) / f"{_key_stem(name)}.verifier-key"


def load_or_create_signer(key_dir: Path, name: str) -> Signer:
    """Return the signer for `name`, generating and saving a key pair on first use.

    The private key file is created with mode 0600 and the verifier key is
    written beside it for publishing. A private key file readable by others,
    or one for another key name, raises KeyFileError.
    """
    private_path = signer_path(key_dir, name)
    if not private_path.exists():
        write_private_file(private_path, Signer.generate(name).private_text().encode())
    check_private_mode(private_path)
    try:
        signer = Signer.parse(private_path.read_text(encoding="utf-8"))
    except NoteError as error:
        raise KeyFileError(
            f"signer key file {private_path} is invalid: {error}"
        ) from error
    if signer.name != name:
        raise KeyFileError(
            f"signer key file {private_path} is for {signer.name!r}, not {name!r}; "
            "move it away or pass the matching origin"
        )
    public_path = verifier_path(key_dir, name)
    expected = f"{signer.verifier}\n"
    if not public_path.exists() or public_path.read_text(encoding="utf-8") != expected:
        public_path.write_text(expected, encoding="utf-8")
    return signer
