"""Static export in the c2sp.org/tlog-tiles layout, read back by a tile-based client."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import asset

from greenloop.ledger import leaf_hash, open_checkpoint
from greenloop.ledger.merkle import root_hash
from greenloop.ledger.tiles import (
    TILE_WIDTH,
    Tile,
    TileKey,
    encode_tile_index,
    entries_path,
    make_tile,
    read_nodes_from,
    tile_path,
)
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerError, LedgerStore


@pytest.mark.parametrize(
    ("index", "encoded"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
    ],
)
def test_tile_index_encoding(index: int, encoded: str) -> None:
    assert encode_tile_index(index) == encoded


def test_partial_tile_path() -> None:
    assert tile_path(1, 3, 17) == "tile/1/003.p/17"
    assert tile_path(0, 3) == "tile/0/003"


def _read_tiles(folder: Path, size: int) -> dict[TileKey, Tile]:
    tiles = {}
    level, count = 0, size
    while count:
        for index in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            data = (folder / tile_path(level, index, width)).read_bytes()
            tiles[TileKey(level, index)] = make_tile(level, index, data)
        count //= TILE_WIDTH
        level += 1
    return tiles


def _read_bundle(path: Path) -> list[bytes]:
    data = path.read_bytes()
    entries, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 2], "big")
        entries.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return entries


def test_export_rebuilds_checkpoint_root(sqlite_url: str, tmp_path: Path) -> None:
    log = LedgerStore(make_engine(sqlite_url), key_dir=tmp_path / "keys")
    log.append([asset(index) for index in range(700)])
    log.checkpoint()
    log.append([asset(index) for index in range(700, 900)])
    folder = tmp_path / "static"
    assert log.export_tiles(folder) == 700

    checkpoint = open_checkpoint((folder / "checkpoint").read_text(), log.verifier)
    tiles = _read_tiles(folder, 700)
    rebuilt = root_hash(700, lambda nodes: read_nodes_from(tiles, nodes))
    assert rebuilt == checkpoint.root
    bundle = _read_bundle(folder / entries_path(2, 700 - 512))
    assert [leaf_hash(entry) for entry in bundle] == [
        tiles[TileKey(0, 2)].hash_at(position) for position in range(700 - 512)
    ]


def test_export_before_checkpoint_fails(sqlite_url: str, tmp_path: Path) -> None:
    log = LedgerStore(make_engine(sqlite_url), key_dir=tmp_path / "keys")
    with pytest.raises(LedgerError, match="no signed checkpoint"):
        log.export_tiles(tmp_path / "static")
