"""Verifiable commit-reveal draws for lottery red envelopes.

Before the draw the operator publishes the SHA-256 of a secret seed, the
SHA-256 of the frozen entry list and, optionally, a public value fixed in
advance (such as a future drand round). After the draw the seed is revealed.
Each entry is scored by HMAC-SHA256 with key seed || public value and message
the entry id; the lowest scores win. Anyone holding the published record can
recompute the winners, and the operator cannot change the seed or the entries
after committing without changing a published digest.

The seed comes from `secrets`; the `random` module is never used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SEED_BYTES = 32
MIN_SEED_BYTES = 16
RECORD_VERSION = 1


class DrawError(ValueError):
    """An invalid entry list, seed or draw record."""


@dataclass(frozen=True, slots=True)
class DrawCommitment:
    """The data published before the draw."""

    draw_id: str
    seed_sha256: str
    entries_sha256: str
    entry_count: int
    winners: int
    public_value: str
    committed_at: str


@dataclass(frozen=True, slots=True)
class DrawRecord:
    """The published result of a draw: commitment, seed, entries and winners."""

    commitment: DrawCommitment
    seed_hex: str
    entries: tuple[str, ...]
    winners: tuple[str, ...]

    def to_json(self) -> str:
        """Serialise the record as stable, indented JSON."""
        payload = {
            "version": RECORD_VERSION,
            "commitment": asdict(self.commitment),
            "seed_hex": self.seed_hex,
            "entries": list(self.entries),
            "winners": list(self.winners),
        }
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def new_seed() -> bytes:
    """Return a fresh secret seed of 32 bytes from the operating system."""
    return secrets.token_bytes(SEED_BYTES)


def canonical_entries(entries: Iterable[str]) -> tuple[str, ...]:
    """Sort entry ids; raise DrawError for empty, duplicate or multi-line ids."""
    listed = list(entries)
    problems = [
        entry for entry in listed if not entry or "\n" in entry or "\r" in entry
    ]
    if problems:
        raise DrawError(
            f"invalid entry ids {problems[:3]!r}: expected one-line, non-empty ids"
        )
    if len(set(listed)) != len(listed):
        duplicated = sorted({entry for entry in listed if listed.count(entry) > 1})
        raise DrawError(f"duplicate entry ids: {', '.join(duplicated[:5])}")
    return tuple(sorted(listed))


def entries_digest(entries: Sequence[str]) -> str:
    """Return the SHA-256 (hex) of the sorted entry ids, one per line, UTF-8."""
    text = "".join(f"{entry}\n" for entry in canonical_entries(entries))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seed_digest(seed: bytes) -> str:
    """Return the SHA-256 (hex) of the seed bytes."""
    return hashlib.sha256(seed).hexdigest()


def entry_score(seed: bytes, public_value: str, entry: str) -> str:
    """Return HMAC-SHA256(key = seed || public value, message = entry) in hex."""
    key = seed + public_value.encode("utf-8")
    return hmac.new(key, entry.encode("utf-8"), hashlib.sha256).hexdigest()


def rank_entries(seed: bytes, public_value: str, entries: Sequence[str]) -> list[str]:
    """Order entries by score, lowest first; ties (never expected) by entry id."""
    ordered = canonical_entries(entries)
    return sorted(
        ordered, key=lambda entry: (entry_score(seed, public_value, entry), entry)
    )


def commit(
    draw_id: str,
    seed: bytes,
    entries: Sequence[str],
    winners: int,
    public_value: str = "",
    committed_at: datetime | None = None,
) -> DrawCommitment:
    """Build the commitment to publish before the draw."""
    if len(seed) < MIN_SEED_BYTES:
        raise DrawError(
            f"seed of {len(seed)} bytes is too short: expected {MIN_SEED_BYTES} or more"
        )
    return commit_seed_digest(
        draw_id, seed_digest(seed), entries, winners, public_value, committed_at
    )


def commit_seed_digest(
    draw_id: str,
    seed_sha256: str,
    entries: Sequence[str],
    winners: int,
    public_value: str = "",
    committed_at: datetime | None = None,
) -> DrawCommitment:
    """Build the commitment from the seed's digest, for a holder who lacks the seed."""
    if winners < 1:
        raise DrawError(f"invalid winners {winners}: expected 1 or more")
    digest = seed_sha256.lower()
    if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
        raise DrawError(
            f"invalid seed_sha256 {seed_sha256!r}: expected 64 hexadecimal digits"
        )
    frozen = canonical_entries(entries)
    moment = committed_at or datetime.now().astimezone()
    return DrawCommitment(
        draw_id=draw_id,
        seed_sha256=digest,
        entries_sha256=entries_digest(frozen),
        entry_count=len(frozen),
        winners=winners,
        public_value=public_value,
        committed_at=moment.isoformat(),
    )


def commitment_to_dict(commitment: DrawCommitment) -> dict[str, Any]:
    """Return the commitment as a JSON-ready mapping."""
    return asdict(commitment)


def reveal(
    commitment: DrawCommitment, seed: bytes, entries: Sequence[str]
) -> DrawRecord:
    """Draw the winners, after checking the seed and entries against the commitment."""
    if seed_digest(seed) != commitment.seed_sha256:
        raise DrawError("the seed does not match the committed seed_sha256")
    if entries_digest(entries) != commitment.entries_sha256:
        raise DrawError("the entries do not match the committed entries_sha256")
    ranked = rank_entries(seed, commitment.public_value, entries)
    return DrawRecord(
        commitment=commitment,
        seed_hex=seed.hex(),
        entries=canonical_entries(entries),
        winners=tuple(ranked[: commitment.winners]),
    )


def verify_record(record: DrawRecord) -> list[str]:
    """Recompute a published draw; return the problems found (empty when valid)."""
    problems = []
    commitment = record.commitment
    try:
        seed = bytes.fromhex(record.seed_hex)
    except ValueError:
        return [f"seed_hex {record.seed_hex[:16]!r}... is not hexadecimal"]
    if seed_digest(seed) != commitment.seed_sha256:
        problems.append("SHA-256 of the revealed seed differs from seed_sha256")
    try:
        digest = entries_digest(record.entries)
    except DrawError as error:
        return [*problems, str(error)]
    if digest != commitment.entries_sha256:
        problems.append("SHA-256 of the entry list differs from entries_sha256")
    if len(record.entries) != commitment.entry_count:
        problems.append(
            f"{len(record.entries)} entries listed, {commitment.entry_count} committed"
        )
    expected = rank_entries(seed, commitment.public_value, record.entries)
    expected_winners = tuple(expected[: commitment.winners])
    if tuple(record.winners) != expected_winners:
        problems.append(
            f"published winners {list(record.winners)} differ from the recomputed"
            f" {list(expected_winners)}"
        )
    return problems


def read_record(path: Path) -> DrawRecord:
    """Read a draw record JSON file; raise DrawError naming the file and field."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DrawError(f"draw record {path} not found") from error
    except json.JSONDecodeError as error:
        raise DrawError(f"draw record {path} is not valid JSON: {error}") from error
    return record_from_dict(payload, str(path))


def record_from_dict(payload: Any, source: str) -> DrawRecord:
    """Build a DrawRecord from parsed JSON; raise DrawError on a missing field."""
    try:
        commitment = DrawCommitment(**payload["commitment"])
        return DrawRecord(
            commitment=commitment,
            seed_hex=str(payload["seed_hex"]),
            entries=tuple(str(entry) for entry in payload["entries"]),
            winners=tuple(str(entry) for entry in payload["winners"]),
        )
    except KeyError as error:
        raise DrawError(
            f"draw record {source}: missing field {error.args[0]!r}"
        ) from error
    except TypeError as error:
        raise DrawError(
            f"draw record {source}: invalid commitment ({error}); expected the fields"
            " draw_id, seed_sha256, entries_sha256, entry_count, winners,"
            " public_value, committed_at"
        ) from error


def read_commitment(path: Path) -> DrawCommitment:
    """Read a commitment JSON file written by `greenloop draw commit`."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return DrawCommitment(**payload)
    except FileNotFoundError as error:
        raise DrawError(f"commitment {path} not found") from error
    except (json.JSONDecodeError, TypeError) as error:
        raise DrawError(f"commitment {path} is invalid: {error}") from error
