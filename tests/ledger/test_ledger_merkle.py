"""Merkle tree, tiles and proofs: reference roots, known hashes, properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import reference_root

from greenloop.ledger import (
    EMPTY_ROOT,
    MemoryTileLog,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from greenloop.ledger.merkle import (
    CompactRange,
    Node,
    consistency_ranges,
    hash_ranges,
    inclusion_proof_from,
    inclusion_ranges,
)
from greenloop.ledger.tiles import TileError, read_nodes_from


def _log_of(entries: list[bytes]) -> MemoryTileLog:
    log = MemoryTileLog()
    log.append_hashes([leaf_hash(entry) for entry in entries])
    return log


def _flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8 % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex().startswith("e3b0c442")


def test_empty_entry_leaf_hash() -> None:
    assert leaf_hash(b"").hex().startswith("6e340b9c")


def test_tile_roots_match_reference_across_tiles() -> None:
    entries = [index.to_bytes(4, "big") for index in range(70_000)]
    log = MemoryTileLog()
    checked = 0
    for start, end in [(0, 1), (1, 255), (255, 257), (257, 65_536), (65_536, 70_000)]:
        log.append_hashes([leaf_hash(entry) for entry in entries[start:end]])
        assert log.root() == reference_root(entries[:end])
        checked += 1
    assert checked == 5


def test_old_sizes_read_from_grown_tiles() -> None:
    entries = [index.to_bytes(4, "big") for index in range(600)]
    log = _log_of(entries)
    for size in (1, 2, 255, 256, 257, 511, 512, 599):
        assert log.root(size) == reference_root(entries[:size]), size


def test_compact_range_matches_reference() -> None:
    entries = [bytes([index]) for index in range(40)]
    compact = CompactRange()
    for count, entry in enumerate(entries, start=1):
        compact.append(leaf_hash(entry))
        assert compact.root() == reference_root(entries[:count])


def test_inclusion_index_outside_tree_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_ranges(5, 5)


def test_consistency_from_empty_tree_rejected() -> None:
    with pytest.raises(ValueError, match="empty tree"):
        consistency_ranges(0, 4)


def test_short_hash_in_proof_rejected() -> None:
    log = _log_of([b"a", b"b"])
    with pytest.raises(ProofError, match="proof hash 0"):
        verify_inclusion(leaf_hash(b"a"), 0, 2, [b"short"], log.root())


@st.composite
def log_sizes(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    size = draw(st.integers(min_value=1, max_value=700))
    entries = [index.to_bytes(3, "big") + b"asset" for index in range(size)]
    first = draw(st.integers(min_value=1, max_value=size))
    return entries, first, size


@settings(max_examples=60, deadline=None)
@given(log_sizes())
def test_earlier_checkpoint_consistent_with_later(
    case: tuple[list[bytes], int, int],
) -> None:
    entries, first, size = case
    log = _log_of(entries)
    proof = log.consistency_proof(first, size)
    assert (
        verify_consistency(first, size, proof, log.root(first), log.root(size)) is None
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), min_size=2, max_size=6))
def test_every_checkpoint_pair_consistent(batch_sizes: list[int]) -> None:
    log = MemoryTileLog()
    heads: list[tuple[int, bytes]] = []
    count = 0
    for batch in batch_sizes:
        log.append_hashes([leaf_hash(f"{count + i}".encode()) for i in range(batch)])
        count += batch
        heads.append((log.size, log.root()))
    for position, (old_size, old_root) in enumerate(heads):
        for new_size, new_root in heads[position:]:
            proof = log.consistency_proof(old_size, new_size)
            assert (
                verify_consistency(old_size, new_size, proof, old_root, new_root)
                is None
            )


@settings(max_examples=60, deadline=None)
@given(log_sizes(), st.data())
def test_inclusion_proof_verifies(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    entries, _, size = case
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    log = _log_of(entries)
    proof = log.inclusion_proof(index)
    assert (
        verify_inclusion(leaf_hash(entries[index]), index, size, proof, log.root())
        is None
    )


@settings(max_examples=80, deadline=None)
@given(log_sizes(), st.data())
def test_flipped_bit_fails_inclusion(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    entries, _, size = case
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    log = _log_of(entries)
    proof = log.inclusion_proof(index)
    root = log.root()
    entry = entries[index]
    target = data.draw(
        st.sampled_from(["entry", "proof", "root"] if proof else ["entry", "root"])
    )
    bit = data.draw(st.integers(min_value=0, max_value=255))
    if target == "entry":
        entry = _flip(entry, bit)
    elif target == "root":
        root = _flip(root, bit)
    else:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[position] = _flip(proof[position], bit)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(entry), index, size, proof, root)


@settings(max_examples=80, deadline=None)
@given(log_sizes(), st.data())
def test_flipped_bit_fails_consistency(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    entries, first, size = case
    if first == size:
        first = max(1, size - 1)
    if first == size:
        return
    log = _log_of(entries)
    proof = log.consistency_proof(first, size)
    roots = [log.root(first), log.root(size)]
    target = data.draw(st.sampled_from(["proof", "root1", "root2"]))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    if target == "proof":
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof[position] = _flip(proof[position], bit)
    else:
        which = 0 if target == "root1" else 1
        roots[which] = _flip(roots[which], bit)
    with pytest.raises(ProofError):
        verify_consistency(first, size, proof, roots[0], roots[1])


def test_sha256_is_the_leaf_hash_function() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


def test_inclusion_proof_matches_range_layout() -> None:
    log = _log_of([str(number).encode() for number in range(1100)])
    sizes = [*range(1, 300), 511, 512, 513, 767, 1024, 1025, 1100]
    for size in sizes:
        for index in {0, size // 3, size // 2, size - 2, size - 1} - {-1}:
            expected = hash_ranges(inclusion_ranges(index, size), log.read_nodes)
            assert inclusion_proof_from(index, size, log.read_nodes) == expected, (
                index,
                size,
            )


@pytest.mark.parametrize("node", [Node(0, 5), Node(1, 2), Node(2, 1), Node(3, 0)])
def test_node_beyond_partial_tile_rejected(node: Node) -> None:
    log = _log_of([str(number).encode() for number in range(5)])
    with pytest.raises(TileError, match="too narrow"):
        read_nodes_from(log.tiles, [node])


def test_nodes_inside_partial_tile_read() -> None:
    entries = [str(number).encode() for number in range(7)]
    log = _log_of(entries)
    nodes = [Node(0, 6), Node(1, 2), Node(2, 0)]
    assert read_nodes_from(log.tiles, nodes) == [
        leaf_hash(entries[6]),
        reference_root(entries[4:6]),
        reference_root(entries[0:4]),
    ]
