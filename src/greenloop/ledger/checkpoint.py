"""Checkpoints (c2sp.org/tlog-checkpoint): the signed tree head of the log.

The note text is the origin line, the tree size in decimal and the base64
root hash, each ending in a newline. Extension lines are accepted when
parsing but never written, because the format marks them NOT RECOMMENDED.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from greenloop.ledger.merkle import HASH_SIZE
from greenloop.ledger.note import NoteError, Signer, Verifier, open_note

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(ValueError):
    """A checkpoint is malformed, unsigned, or conflicts with another checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log origin, the tree size and the root hash at that size."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """Return the note text of this checkpoint."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text (without signatures)."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"checkpoint has {len(lines)} lines; it needs origin, tree size "
                "and root"
            )
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError(
                f"checkpoint tree size {size_text!r} is not a decimal without "
                "leading zeros"
            )
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as error:
            raise CheckpointError(
                f"checkpoint root {root_text!r} is not base64"
            ) from error
        if len(root) != HASH_SIZE:
            raise CheckpointError(
                f"checkpoint root is {len(root)} bytes, expected {HASH_SIZE}"
            )
        if any(not line for line in extensions):
            raise CheckpointError("checkpoint extension lines must not be empty")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(signer: Signer, checkpoint: Checkpoint) -> str:
    """Return the checkpoint as a note signed by `signer`."""
    return signer.sign(checkpoint.text())


def open_checkpoint(
    note: str, verifier: Verifier, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it.

    The origin must equal `origin`, or the verifier's key name when `origin`
    is None, so a checkpoint of one log is never taken for another's.
    """
    try:
        text = open_note(note, verifier)
    except NoteError as error:
        raise CheckpointError(f"checkpoint signature check failed: {error}") from error
    checkpoint = Checkpoint.parse(text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected log "
            f"{expected!r}"
        )
    return checkpoint
