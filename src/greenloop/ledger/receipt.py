"""Offline receipts in the c2sp.org/tlog-proof@v1 layout.

A receipt proves that one green-asset record is entry `index` of the log
whose signed checkpoint it carries. The `extra` line contains the record's
canonical JSON in base64, so the text file alone suffices to recompute the
leaf hash: no database and no network are needed to verify it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenloop.ledger.canonical import canonical_json
from greenloop.ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from greenloop.ledger.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from greenloop.ledger.note import Verifier

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
RECEIPT_FORMAT = "greenloop.ledger.receipt/v1"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class ReceiptError(ValueError):
    """A receipt is malformed or does not verify; the message names the failed part."""


@dataclass(frozen=True)
class TlogProof:
    """The parts of a tlog-proof: index, inclusion proof, checkpoint and extra data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def text(self) -> str:
        """Return the proof in its text form."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(value).decode() for value in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        """Parse the text form of a tlog-proof."""
        head, separator, checkpoint = text.partition("\n\n")
        if not separator or not checkpoint:
            raise ReceiptError("tlog-proof has no blank line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != TLOG_PROOF_HEADER:
            raise ReceiptError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}")
        position = 1
        extra = None
        if position < len(lines) and lines[position].startswith("extra "):
            extra = _decode(lines[position][len("extra ") :], "extra data")
            position += 1
        if position >= len(lines) or not lines[position].startswith("index "):
            raise ReceiptError("tlog-proof has no `index` line")
        index_text = lines[position][len("index ") :]
        if not _DECIMAL.fullmatch(index_text):
            raise ReceiptError(
                f"tlog-proof index {index_text!r} is not a plain decimal"
            )
        proof = []
        for number, line in enumerate(lines[position + 1 :]):
            value = _decode(line, f"proof hash {number}")
            if len(value) != HASH_SIZE:
                raise ReceiptError(
                    f"proof hash {number} is {len(value)} bytes, not {HASH_SIZE}"
                )
            proof.append(value)
        return cls(int(index_text), tuple(proof), checkpoint, extra)


def _decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ReceiptError(f"{what} in the tlog-proof is not valid base64") from error


def build_receipt(
    purchase_id: str,
    entry: bytes,
    index: int,
    proof: Sequence[bytes],
    checkpoint_note: str,
) -> dict[str, Any]:
    """Assemble the receipt for one entry (its canonical record bytes) and its proof.

    The `tlog_proof` field is the whole proof; the other fields repeat what it
    contains, for people and programs that read the JSON.
    """
    checkpoint = Checkpoint.parse(checkpoint_note[: checkpoint_note.rfind("\n\n") + 1])
    tlog_proof = TlogProof(index, tuple(proof), checkpoint_note, entry)
    return {
        "format": RECEIPT_FORMAT,
        "purchase_id": purchase_id,
        "origin": checkpoint.origin,
        "index": index,
        "tree_size": checkpoint.size,
        "root": base64.b64encode(checkpoint.root).decode(),
        "record": json.loads(entry),
        "record_digest": hashlib.sha256(entry).hexdigest(),
        "leaf_hash": base64.b64encode(leaf_hash(entry)).decode(),
        "tlog_proof": tlog_proof.text(),
    }


@dataclass(frozen=True)
class VerifiedReceipt:
    """The facts a verified receipt proves: the record, its index and the tree head."""

    record: dict[str, Any]
    record_digest: str
    leaf_hash: bytes
    index: int
    checkpoint: Checkpoint


def verify_receipt(
    receipt: Mapping[str, Any] | str, verifier: Verifier
) -> VerifiedReceipt:
    """Verify a receipt (the JSON mapping or the bare tlog-proof text) offline.

    Checks the checkpoint signature, that the record bytes are canonical JSON,
    the inclusion proof against the signed root, and, for the JSON form, that
    every repeated field agrees with the proof. Raises ReceiptError.
    """
    text = receipt if isinstance(receipt, str) else _proof_text(receipt)
    proof = TlogProof.parse(text)
    try:
        checkpoint = open_checkpoint(proof.checkpoint, verifier)
    except CheckpointError as error:
        raise ReceiptError(str(error)) from error
    if proof.extra is None:
        raise ReceiptError(
            "tlog-proof has no `extra` line with the record; it cannot be checked"
        )
    record = _canonical_record(proof.extra)
    entry_hash = leaf_hash(proof.extra)
    try:
        verify_inclusion(
            entry_hash,
            proof.index,
            checkpoint.size,
            proof.proof,
            checkpoint.root,
        )
    except ProofError as error:
        raise ReceiptError(f"inclusion proof failed: {error}") from error
    verified = VerifiedReceipt(
        record,
        hashlib.sha256(proof.extra).hexdigest(),
        entry_hash,
        proof.index,
        checkpoint,
    )
    if not isinstance(receipt, str):
        _check_fields(receipt, verified)
    return verified


def _proof_text(receipt: Mapping[str, Any]) -> str:
    if receipt.get("format") != RECEIPT_FORMAT:
        raise ReceiptError(
            f"receipt format is {receipt.get('format')!r}, expected {RECEIPT_FORMAT!r}"
        )
    text = receipt.get("tlog_proof")
    if not isinstance(text, str):
        raise ReceiptError("receipt has no `tlog_proof` text")
    return text


def _canonical_record(entry: bytes) -> dict[str, Any]:
    try:
        record = json.loads(entry)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReceiptError(f"the record in the receipt is not JSON: {error}") from error
    if not isinstance(record, dict):
        raise ReceiptError("the record in the receipt is not a JSON object")
    try:
        canonical = canonical_json(record)
    except ValueError as error:
        raise ReceiptError(
            f"the record in the receipt is not allowed: {error}"
        ) from error
    if canonical != entry:
        raise ReceiptError(
            "the record in the receipt is not in RFC 8785 canonical form"
        )
    return record


def _check_fields(receipt: Mapping[str, Any], verified: VerifiedReceipt) -> None:
    expected = {
        "index": verified.index,
        "origin": verified.checkpoint.origin,
        "tree_size": verified.checkpoint.size,
        "root": base64.b64encode(verified.checkpoint.root).decode(),
        "record": verified.record,
        "record_digest": verified.record_digest,
        "leaf_hash": base64.b64encode(verified.leaf_hash).decode(),
    }
    for field, value in expected.items():
        stated_value = receipt.get(field)
        if stated_value == value:
            continue
        if isinstance(stated_value, dict) and isinstance(value, dict):
            raise ReceiptError(
                f"receipt field {field!r} differs from the record the proof covers: "
                f"{_differences(stated_value, value)}"
            )
        raise ReceiptError(
            f"receipt field {field!r} is {stated_value!r}, but the proof has {value!r}"
        )
    stated = verified.record.get("purchase_id")
    if stated is not None and receipt.get("purchase_id") != stated:
        raise ReceiptError(
            f"receipt purchase_id {receipt.get('purchase_id')!r} differs from the "
            f"record's {stated!r}"
        )


# The maximum number of differing keys a message about an edited record lists.
DIFFERENCES_SHOWN = 5


def _differences(stated: Mapping[str, Any], proven: Mapping[str, Any]) -> str:
    """Return the keys whose values differ, each with both values."""
    keys = sorted(set(stated) | set(proven))
    differing = [key for key in keys if stated.get(key) != proven.get(key)]
    listed = "; ".join(
        f"{key} is {stated.get(key)!r} in the receipt and {proven.get(key)!r} "
        "in the proof"
        for key in differing[:DIFFERENCES_SHOWN]
    )
    hidden = len(differing) - DIFFERENCES_SHOWN
    return listed + (f"; and {hidden} more keys" if hidden > 0 else "")
