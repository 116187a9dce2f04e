"""Commit-reveal draws: digests, ranking, reveal checks and verification."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
from dataclasses import replace

import pytest

from greenloop.incentives import draws
from greenloop.incentives.draws import (
    DrawError,
    commit,
    entries_digest,
    rank_entries,
    reveal,
    verify_record,
)

SEED = bytes(range(32))
ENTRIES = [f"purchase-{index:03d}" for index in range(50)]


def test_entries_digest_is_order_independent() -> None:
    assert entries_digest(["b", "a"]) == entries_digest(["a", "b"])


def test_entries_digest_known_value() -> None:
    expected = hashlib.sha256(b"a\nb\n").hexdigest()
    assert entries_digest(["b", "a"]) == expected


def test_ranking_uses_hmac_of_seed_and_public_value() -> None:
    ranked = rank_entries(SEED, "round-42", ["x", "y", "z"])
    key = SEED + b"round-42"
    scores = {
        entry: hmac.new(key, entry.encode(), hashlib.sha256).hexdigest()
        for entry in ["x", "y", "z"]
    }
    assert ranked == sorted(scores, key=scores.__getitem__)


def test_public_value_changes_ranking() -> None:
    assert rank_entries(SEED, "a", ENTRIES) != rank_entries(SEED, "b", ENTRIES)


def test_reveal_then_verify_passes() -> None:
    commitment = commit("d1", SEED, ENTRIES, winners=5, public_value="beacon")
    record = reveal(commitment, SEED, list(reversed(ENTRIES)))
    assert len(record.winners) == 5
    assert verify_record(record) == []


def test_reveal_rejects_other_seed() -> None:
    commitment = commit("d1", SEED, ENTRIES, winners=5)
    with pytest.raises(DrawError, match="seed does not match"):
        reveal(commitment, bytes(32), ENTRIES)


def test_reveal_rejects_added_entry() -> None:
    commitment = commit("d1", SEED, ENTRIES, winners=5)
    with pytest.raises(DrawError, match="entries do not match"):
        reveal(commitment, SEED, [*ENTRIES, "late-entry"])


def test_verify_detects_swapped_winner() -> None:
    record = reveal(commit("d1", SEED, ENTRIES, winners=3), SEED, ENTRIES)
    loser = next(entry for entry in ENTRIES if entry not in record.winners)
    forged = replace(record, winners=(loser, *record.winners[1:]))
    assert any("differ from the recomputed" in item for item in verify_record(forged))


def test_verify_detects_changed_seed() -> None:
    record = reveal(commit("d1", SEED, ENTRIES, winners=3), SEED, ENTRIES)
    forged = replace(record, seed_hex=bytes(32).hex())
    assert "SHA-256 of the revealed seed differs from seed_sha256" in verify_record(
        forged
    )


def test_record_round_trips_through_json(tmp_path: object) -> None:
    record = reveal(commit("d1", SEED, ENTRIES, winners=3), SEED, ENTRIES)
    parsed = draws.record_from_dict(__import__("json").loads(record.to_json()), "x")
    assert parsed == record


def test_duplicate_entries_rejected() -> None:
    with pytest.raises(DrawError, match="duplicate entry ids: a"):
        entries_digest(["a", "a"])


def test_short_seed_rejected() -> None:
    with pytest.raises(DrawError, match="too short"):
        commit("d1", b"short", ENTRIES, winners=1)


def test_draws_module_never_imports_random() -> None:
    tree = ast.parse(inspect.getsource(draws))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert "random" not in imported
    assert "secrets" in imported


def test_new_seeds_differ() -> None:
    assert draws.new_seed() != draws.new_seed()
