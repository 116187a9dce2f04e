"""Tamper-evident ledger of green assets: an RFC 9162 Merkle log with C2SP formats.

Pure domain code: hashing, proofs, tiles, canonical JSON, signed notes,
checkpoints, receipts and the audit. The database adapter is
`greenloop.store.ledger.LedgerStore`.
"""

from greenloop.ledger.audit import AuditReport, Finding
from greenloop.ledger.canonical import PERSONAL_DATA_KEYS, canonical_json, record_digest
from greenloop.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from greenloop.ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from greenloop.ledger.note import NoteError, Signer, Verifier, load_or_create_signer
from greenloop.ledger.privacy import KeyFileError, load_or_create_secret, pseudonym
from greenloop.ledger.receipt import ReceiptError, VerifiedReceipt, verify_receipt
from greenloop.ledger.tiles import MemoryTileLog

__all__ = [
    "EMPTY_ROOT",
    "PERSONAL_DATA_KEYS",
    "AuditReport",
    "Checkpoint",
    "CheckpointError",
    "Finding",
    "KeyFileError",
    "MemoryTileLog",
    "NoteError",
    "ProofError",
    "ReceiptError",
    "Signer",
    "VerifiedReceipt",
    "Verifier",
    "canonical_json",
    "leaf_hash",
    "load_or_create_secret",
    "load_or_create_signer",
    "node_hash",
    "open_checkpoint",
    "pseudonym",
    "record_digest",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt",
]
