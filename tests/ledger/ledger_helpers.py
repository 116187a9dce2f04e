"""Shared helpers for the ledger tests: a reference Merkle tree and sample records."""

from __future__ import annotations

from typing import Any

from greenloop.ledger import EMPTY_ROOT, leaf_hash, node_hash


def reference_root(entries: list[bytes]) -> bytes:
    """Compute the RFC 9162 root by the recursive definition, for cross-checks."""
    if not entries:
        return EMPTY_ROOT
    if len(entries) == 1:
        return leaf_hash(entries[0])
    split = 1 << ((len(entries) - 1).bit_length() - 1)
    return node_hash(reference_root(entries[:split]), reference_root(entries[split:]))


def asset(index: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    """Return a (purchase_id, record) pair shaped like the batch run's green assets."""
    key = f"purchase-{index:06d}"
    record: dict[str, Any] = {
        "purchase_id": key,
        "user": f"{index:064x}",
        "category": "appliance",
        "status": "green",
        "amount": f"{1000 + index}.50",
        "currency": "CNY",
        "kg_co2e_per_year": 12.5 + index / 8,
    }
    record.update(extra)
    return key, record
