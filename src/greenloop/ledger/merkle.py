"""RFC 9162 Merkle tree hashing, proof layout and proof verification.

A perfect subtree is named by a `Node`: its height and its index among the
nodes of that height, so `Node(h, k)` covers leaves `[k * 2**h, (k + 1) * 2**h)`.
Every hash an RFC 9162 proof contains is the root of a range of leaves, and
every such range is a run of perfect subtrees whose hashes fold from the right.
Storage only has to return perfect-subtree hashes; this module does the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_HASH_SIZE_SET = {HASH_SIZE}


class ProofError(ValueError):
    """A Merkle proof, root or tree size failed verification, for the reason given."""


class Node(NamedTuple):
    """A perfect subtree: `height` levels above the leaves, `index` from the left."""

    height: int
    # The field shadows tuple.index, which nothing here calls.
    index: int  # type: ignore[assignment]


NodeReader = Callable[[Sequence[Node]], list[bytes]]
"""Return the hashes of the given perfect subtrees, in the same order."""


def leaf_hash(entry: bytes) -> bytes:
    """Hash one log entry as an RFC 9162 leaf: SHA-256(0x00 || entry)."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: SHA-256(0x01 || left || right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than `n` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Hash a power-of-two count of sibling hashes pairwise up to their root."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect-subtree hashes of a range, largest first, into its root."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def range_nodes(start: int, end: int) -> list[Node]:
    """Split the leaf range [start, end) into the perfect subtrees RFC 9162 hashes.

    The range must be one that the RFC's recursive split produces, so `start`
    is a multiple of the first subtree's width; otherwise it raises ValueError.
    """
    nodes: list[Node] = []
    while start < end:
        height = (end - start).bit_length() - 1
        if start & ((1 << height) - 1):
            raise ValueError(
                f"leaf range [{start}, {end}) is not aligned to a subtree of "
                f"height {height}; only ranges from the RFC 9162 split are valid"
            )
        nodes.append(Node(height, start >> height))
        start += 1 << height
    return nodes


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose roots form the inclusion proof, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        split = start + largest_power_of_two_below(end - start)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose roots form the consistency proof (RFC 9162 2.1.4.1).

    Equal sizes need no proof. An empty first tree has no proof at all, because
    verifiers reject every proof from size 0 to a larger size.
    """
    if not 0 <= size1 <= size2:
        raise ValueError(
            f"tree sizes must satisfy 0 <= size1 <= size2, got {size1}, {size2}"
        )
    if size1 == size2:
        return []
    if size1 == 0:
        raise ValueError(
            "no consistency proof exists from the empty tree; size1 must be > 0"
        )
    ranges: list[tuple[int, int]] = []
    start, end = 0, size2
    whole_subtree = True
    while True:
        if size1 == end:
            if not whole_subtree:
                ranges.append((start, end))
            break
        split = start + largest_power_of_two_below(end - start)
        if size1 <= split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
            whole_subtree = False
    ranges.reverse()
    return ranges


def hash_ranges(
    ranges: Sequence[tuple[int, int]], read_nodes: NodeReader
) -> list[bytes]:
    """Return the root of each leaf range, reading every perfect subtree once."""
    layouts = []
    for start, end in ranges:
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            # Most proof hashes are one perfect subtree: skip the general split.
            height = width.bit_length() - 1
            layouts.append([Node(height, start >> height)])
        else:
            layouts.append(range_nodes(start, end))
    needed = list(dict.fromkeys(node for nodes in layouts for node in nodes))
    known = dict(zip(needed, read_nodes(needed), strict=True))
    return [
        known[nodes[0]]
        if len(nodes) == 1
        else fold_right([known[node] for node in nodes])
        for nodes in layouts
    ]


def root_hash(size: int, read_nodes: NodeReader) -> bytes:
    """Return the root of the first `size` leaves (the empty root for size 0)."""
    if size == 0:
        return EMPTY_ROOT
    return hash_ranges([(0, size)], read_nodes)[0]


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes; a SHA-256 hash is {HASH_SIZE}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    Follows RFC 9162 section 2.1.3.2 and raises ProofError with the reason
    when the proof does not verify.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    if index < 0 or size < 0:
        raise ProofError(f"index {index} and size {size} must not be negative")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    computed = _root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} gives a different root"
        )


def _root_from_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    if set(map(len, proof)) - _HASH_SIZE_SET:
        for number, sibling in enumerate(proof):
            _check_hash(sibling, f"proof hash {number}")
    position, last = index, size - 1
    result = leaf_hash
    for sibling in proof:
        if last == 0:
            raise ProofError(
                f"inclusion proof has {len(proof)} hashes, more than needed"
            )
        if position & 1 or position == last:
            result = _sha256(NODE_PREFIX + sibling + result).digest()
            while not position & 1 and position != 0:
                position >>= 1
                last >>= 1
        else:
            result = _sha256(NODE_PREFIX + result + sibling).digest()
        position >>= 1
        last >>= 1
    if last != 0:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, fewer than needed")
    return result


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size1, root1) is a prefix of the tree (size2, root2).

    Follows RFC 9162 section 2.1.4.2 and raises ProofError with the reason
    when the proof does not verify. Equal sizes need an empty proof and equal
    roots; a proof from the empty tree to a larger one never verifies.
    """
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    if size1 < 0 or size2 < size1:
        raise ProofError(
            f"tree sizes must satisfy 0 <= size1 <= size2, got {size1}, {size2}"
        )
    if size1 == size2:
        if proof:
            raise ProofError(
                f"equal tree sizes need an empty proof, got {len(proof)} hashes"
            )
        if root1 != root2:
            raise ProofError(f"the two roots for tree size {size1} differ")
        return
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree cannot be verified")
    if not proof:
        raise ProofError(f"consistency proof from {size1} to {size2} is empty")
    for number, value in enumerate(proof):
        _check_hash(value, f"proof hash {number}")
    first_root, second_root = _roots_from_consistency(size1, size2, proof, root1)
    if first_root != root1:
        raise ProofError(
            f"consistency proof does not give the root of tree size {size1}"
        )
    if second_root != root2:
        raise ProofError(
            f"consistency proof does not give the root of tree size {size2}"
        )


def _roots_from_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is one perfect subtree of the new one, so the RFC leaves
        # its root out of the proof and the verifier puts it back in front.
        path.insert(0, root1)
    position, last = size1 - 1, size2 - 1
    while position & 1:
        position >>= 1
        last >>= 1
    first = second = path[0]
    for value in path[1:]:
        if last == 0:
            raise ProofError(
                f"consistency proof has {len(proof)} hashes, more than needed"
            )
        if position & 1 or position == last:
            first = node_hash(value, first)
            second = node_hash(value, second)
            while not position & 1 and position != 0:
                position >>= 1
                last >>= 1
        else:
            second = node_hash(second, value)
        position >>= 1
        last >>= 1
    if last != 0:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, fewer than needed"
        )
    return first, second


def inclusion_proof_from(index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    """Build the inclusion proof for leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    # Walk up from the leaf as the verifier does. At each height the proof
    # contains the sibling of the leaf's ancestor, unless that ancestor is the
    # last node of its height and a left child, which has no sibling. Only a
    # right sibling at the tree's right edge can be partial: its range is then
    # split into perfect subtrees and folded.
    single: list[Node] = []
    partial: tuple[int, list[Node]] | None = None
    position, last, height = index, size - 1, 0
    while last:
        if position & 1:
            single.append(Node(height, position - 1))
        elif position < last:
            start = (position + 1) << height
            if start + (1 << height) <= size:
                single.append(Node(height, position + 1))
            else:
                partial = (len(single), range_nodes(start, size))
        position >>= 1
        last >>= 1
        height += 1
    if partial is None:
        return read_nodes(single)
    at, nodes = partial
    hashes = read_nodes(single + nodes)
    folded = fold_right(hashes[len(single) :])
    return [*hashes[:at], folded, *hashes[at : len(single)]]


def consistency_proof_from(
    size1: int, size2: int, read_nodes: NodeReader
) -> list[bytes]:
    """Build the consistency proof from tree size `size1` to `size2`."""
    return hash_ranges(consistency_ranges(size1, size2), read_nodes)


class CompactRange:
    """The right edge of a growing tree: one perfect-subtree hash per set bit of size.

    Appending is amortized O(1) hashes and the root of the current prefix costs
    O(log n), so a single pass over the leaves yields the root at any size.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        stack = self._stack
        merged = leaf
        size = self.size
        while size & 1:
            merged = node_hash(stack.pop(), merged)
            size >>= 1
        stack.append(merged)
        self.size += 1

    def root(self) -> bytes:
        """Return the root of all leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        return fold_right(self._stack)
