"""Pseudonyms: users enter the ledger only as a keyed hash the operator holds."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

SECRET_BYTES = 32
PRIVATE_FILE_MODE = 0o600


class KeyFileError(ValueError):
    """A secret or key file is unreadable, malformed or readable by others."""


def pseudonym(user_id: str, secret: bytes) -> str:
    """Return HMAC-SHA256(secret, user_id) as lowercase hex.

    Without the secret nobody can link a pseudonym back to a user id, and the
    operator, who holds it, gets the same pseudonym for the same user every time.
    """
    if not user_id:
        raise ValueError("user_id is empty; a pseudonym needs the user's id")
    if len(secret) < SECRET_BYTES:
        raise ValueError(
            f"pseudonym secret is {len(secret)} bytes; use at least {SECRET_BYTES} "
            "bytes from load_or_create_secret"
        )
    return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path) -> bytes:
    """Return the secret at `path`, first creating 32 random bytes with mode 0600.

    Raises KeyFileError when the file is readable by group or others, or is
    too short to be a secret this function wrote.
    """
    path = Path(path)
    if not path.exists():
        write_private_file(path, secrets.token_bytes(SECRET_BYTES))
    check_private_mode(path)
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise KeyFileError(
            f"secret file {path} contains {len(secret)} bytes, expected at least "
            f"{SECRET_BYTES}; restore it from backup, because a new secret changes "
            "every pseudonym"
        )
    return secret


def check_private_mode(path: Path) -> None:
    """Raise KeyFileError when `path` is accessible to group or others."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"private file {path} has mode {mode:04o}; run `chmod 600 {path}`"
        )


def write_private_file(path: Path, content: bytes) -> None:
    """Create `path` with mode 0600 holding `content`, unless it already exists.

    The content goes to a temporary file first and is then hard-linked into
    place, so a reader never sees a half-written secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, PRIVATE_FILE_MODE)
        with contextlib.suppress(FileExistsError):
            # Another process created the file first; its content stays.
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
