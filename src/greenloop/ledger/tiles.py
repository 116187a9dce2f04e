"""Tiles: the tree stored as rows of 256 node hashes (the c2sp.org/tlog-tiles layout).

A tile at level L contains the hashes of consecutive nodes of height 8L; tile N
of level L starts at node 256N. Level 0 contains leaf hashes. A tile is full
(256 hashes) or, only at the right edge, partial. Appending never changes a
hash already stored, so a tile that has grown still serves every older tree
size from its prefix.

Each tile also carries `inner`: the hashes of its complete nodes 2, 4 and 6
levels above its base. With them, any node inside a tile costs at most one
hash to compute, where the 256 base hashes alone would need up to 127.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import NamedTuple

from greenloop.ledger.merkle import (
    HASH_SIZE,
    NODE_PREFIX,
    Node,
    consistency_proof_from,
    inclusion_proof_from,
    node_hash,
    perfect_root,
    root_hash,
)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
INNER_HEIGHTS = (2, 4, 6)


class TileError(ValueError):
    """A stored tile is missing, too narrow or malformed for the tree size."""


class TileKey(NamedTuple):
    """The address of a tile: its level and its index within the level."""

    level: int
    # The field shadows tuple.index, which nothing here calls.
    index: int  # type: ignore[assignment]


@dataclass(frozen=True)
class Tile:
    """One tile: the concatenated base hashes and the inner hashes built from them."""

    level: int
    index: int
    hashes: bytes
    inner: bytes

    @property
    def width(self) -> int:
        """Number of base hashes stored, 1 to 256."""
        return len(self.hashes) // HASH_SIZE

    @property
    def key(self) -> TileKey:
        """The tile's address."""
        return TileKey(self.level, self.index)

    def hash_at(self, position: int) -> bytes:
        """Return base hash number `position` (0 to width - 1)."""
        offset = position * HASH_SIZE
        return self.hashes[offset : offset + HASH_SIZE]

    def node(self, sub_height: int, first: int) -> bytes:
        """Return the node `sub_height` levels above base position `first`."""
        layer_height = _LAYER_FOR_SUB_HEIGHT[sub_height]
        count = 1 << (sub_height - layer_height)
        width = len(self.hashes) >> 5
        if layer_height == 0:
            data, offset, available = self.hashes, 0, width
        else:
            data, offset, available = (
                self.inner,
                _inner_offset(layer_height, width),
                width >> layer_height,
            )
        start = first >> layer_height
        if start + count > available:
            raise TileError(
                f"tile level {self.level} index {self.index} has width {width}, "
                f"too narrow for a node at base position {first} of height {sub_height}"
            )
        begin = offset + start * HASH_SIZE
        if count == 1:
            return data[begin : begin + HASH_SIZE]
        if count == 2:
            # The two children lie side by side: one slice is the hash input.
            return _sha256(NODE_PREFIX + data[begin : begin + 2 * HASH_SIZE]).digest()
        chunk = data[begin : begin + count * HASH_SIZE]
        return perfect_root(
            [chunk[i : i + HASH_SIZE] for i in range(0, len(chunk), HASH_SIZE)]
        )


# For each height above a tile's base (0 to 8), the stored layer to start
# from: the base hashes or an inner layer. No node costs more than 3 hashes.
_LAYER_FOR_SUB_HEIGHT = (0, 0, 2, 2, 4, 4, 6, 6, 6)


def _inner_offset(layer_height: int, width: int) -> int:
    """Return the byte offset of an inner layer within `Tile.inner`."""
    if layer_height == 2:
        return 0
    if layer_height == 4:
        return (width >> 2) * HASH_SIZE
    return ((width >> 2) + (width >> 4)) * HASH_SIZE


def build_inner(hashes: bytes) -> bytes:
    """Compute the inner layers (heights 2, 4 and 6) of a tile from its base hashes."""
    level = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
    parts: list[bytes] = []
    for height in range(1, INNER_HEIGHTS[-1] + 1):
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if height in INNER_HEIGHTS:
            parts.append(b"".join(level))
    return b"".join(parts)


def make_tile(level: int, index: int, hashes: bytes) -> Tile:
    """Build a tile with its inner layers from its base hashes."""
    if not hashes or len(hashes) % HASH_SIZE or len(hashes) > FULL_TILE_BYTES:
        raise TileError(f"tile hashes must be 1 to {TILE_WIDTH} SHA-256 hashes")
    return Tile(level, index, hashes, build_inner(hashes))


def tile_root(tile: Tile) -> bytes:
    """Return the root of a full tile: the node hash stored one level up."""
    return tile.node(TILE_HEIGHT, 0)


def locate(node: Node) -> tuple[TileKey, int, int]:
    """Return the tile holding `node`, its height in the tile and its first position."""
    level, sub_height = divmod(node.height, TILE_HEIGHT)
    first = node.index << sub_height
    return TileKey(level, first >> TILE_HEIGHT), sub_height, first & (TILE_WIDTH - 1)


def tiles_for(nodes: Iterable[Node]) -> set[TileKey]:
    """Return the set of tiles that hold the given nodes."""
    return {locate(node)[0] for node in nodes}


def read_nodes_from(
    tiles: Mapping[TileKey, Tile], nodes: Sequence[Node]
) -> list[bytes]:
    """Return the node hashes from a mapping of loaded tiles."""
    result = []
    for height, index in nodes:
        level = height >> 3
        sub_height = height & 7
        first = index << sub_height
        # A plain tuple hashes and compares as the TileKey it stands for.
        tile = tiles.get((level, first >> 8))  # type: ignore[call-overload]
        if tile is None:
            raise TileError(f"tile level {level} index {first >> 8} is missing")
        # The same steps as Tile.node, inlined because a proof reads about 20
        # nodes. Heights 1 to 7 start from layer 0, 2, 4 or 6 (height & 6), and
        # an odd height hashes two neighbours of that layer.
        width = len(tile.hashes) >> 5
        layer_height = sub_height & 6
        if layer_height == 0:
            data, offset, available = tile.hashes, 0, width
        else:
            data, available = tile.inner, width >> layer_height
            if layer_height == 2:
                offset = 0
            elif layer_height == 4:
                offset = width >> 2
            else:
                offset = (width >> 2) + (width >> 4)
        start = (first & 255) >> layer_height
        span = 1 + (sub_height & 1)
        if start + span > available:
            raise TileError(
                f"tile level {level} index {first >> 8} has width {width}, too "
                f"narrow for a node at base position {first & 255} of height "
                f"{sub_height}"
            )
        begin = (offset + start) << 5
        if span == 1:
            result.append(data[begin : begin + HASH_SIZE])
        else:
            result.append(
                _sha256(NODE_PREFIX + data[begin : begin + 2 * HASH_SIZE]).digest()
            )
    return result


def tail_keys(size: int) -> list[TileKey]:
    """Return the partial tiles at the right edge of a tree of `size` leaves."""
    keys = []
    level = 0
    count = size
    while count:
        if count % TILE_WIDTH:
            keys.append(TileKey(level, count // TILE_WIDTH))
        count //= TILE_WIDTH
        level += 1
    return keys


def extend_tiles(
    size: int, tails: Mapping[TileKey, Tile], leaves: Sequence[bytes]
) -> list[Tile]:
    """Return every tile that changes when `leaves` (leaf hashes) are appended.

    `tails` must hold the partial tiles of the tree of `size` leaves, as
    `tail_keys(size)` lists them. Full tiles that fill up push their root to
    the level above, so the result covers every level that changes.
    """
    changed: list[Tile] = []
    level = 0
    count = size
    new_hashes = list(leaves)
    while new_hashes:
        first_index = count // TILE_WIDTH
        tail = tails.get(TileKey(level, first_index))
        existing = tail.hashes if tail is not None and count % TILE_WIDTH else b""
        if len(existing) != (count % TILE_WIDTH) * HASH_SIZE:
            raise TileError(
                f"tile level {level} index {first_index} has "
                f"{len(existing) // HASH_SIZE} hashes; a tree of {size} leaves needs "
                f"{count % TILE_WIDTH}"
            )
        buffer = existing + b"".join(new_hashes)
        completed: list[bytes] = []
        for offset in range(0, len(buffer), FULL_TILE_BYTES):
            tile = make_tile(
                level,
                first_index + offset // FULL_TILE_BYTES,
                buffer[offset : offset + FULL_TILE_BYTES],
            )
            changed.append(tile)
            if tile.width == TILE_WIDTH:
                completed.append(tile_root(tile))
        new_hashes = completed
        count //= TILE_WIDTH
        level += 1
    return changed


class MemoryTileLog:
    """A Merkle log kept in memory as tiles, for tests and offline tools.

    It runs the same tile arithmetic as the database store, so a test against
    it exercises the proof and append code without a database.
    """

    def __init__(self) -> None:
        self.size = 0
        self.tiles: dict[TileKey, Tile] = {}

    def append_hashes(self, leaves: Sequence[bytes]) -> None:
        """Append leaf hashes to the log."""
        tails = {key: self.tiles[key] for key in tail_keys(self.size)}
        for tile in extend_tiles(self.size, tails, leaves):
            self.tiles[tile.key] = tile
        self.size += len(leaves)

    def read_nodes(self, nodes: Sequence[Node]) -> list[bytes]:
        """Return perfect-subtree hashes from the stored tiles."""
        return read_nodes_from(self.tiles, nodes)

    def root(self, size: int | None = None) -> bytes:
        """Return the root at `size` leaves (default: the current size)."""
        return root_hash(self.size if size is None else size, self.read_nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof for leaf `index` at `size` leaves."""
        return inclusion_proof_from(
            index, self.size if size is None else size, self.read_nodes
        )

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return the consistency proof from `size1` to `size2` leaves."""
        return consistency_proof_from(
            size1, self.size if size2 is None else size2, self.read_nodes
        )


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Return the tlog-tiles path of a tile, such as `tile/0/x001/x234/067.p/12`."""
    path = f"tile/{level}/{encode_tile_index(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Return the tlog-tiles path of an entry bundle, such as `tile/entries/000`."""
    path = f"tile/entries/{encode_tile_index(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def encode_tile_index(index: int) -> str:
    """Encode a tile index as 3-digit path elements: 1234067 is x001/x234/067."""
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Build a tlog-tiles entry bundle: each entry after a 2-byte big-endian length."""
    parts = []
    for entry in entries:
        if len(entry) > 0xFFFF:
            raise TileError(
                f"entry of {len(entry)} bytes exceeds the 65,535 bytes an entry bundle "
                "can hold"
            )
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)
