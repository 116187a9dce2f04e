"""Audit: recompute the tree from the stored entries and compare it with the tiles.

The audit reads entries and level-0 tiles in index order in one pass, so
memory stays bounded by the upper tile levels (1/256 of the leaves) and the
mismatches found. It names the index of every changed, deleted, inserted or
reordered entry, and the level and index of every tile that is wrong, missing
or out of place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from greenloop.ledger.merkle import CompactRange, leaf_hash
from greenloop.ledger.tiles import TILE_WIDTH, Tile, TileKey, build_inner, tile_root

MAX_FINDINGS_PER_KIND = 100
MAX_MISMATCHES_CLASSIFIED = 100_000

ENTRY_CHANGED = "entry_changed"
ENTRY_DELETED = "entry_deleted"
ENTRY_INSERTED = "entry_inserted"
ENTRY_REORDERED = "entry_reordered"
TILE_CHANGED = "tile_changed"
TILE_MISSING = "tile_missing"
TILE_INSERTED = "tile_inserted"
TILE_REORDERED = "tile_reordered"
ROOT_MISMATCH = "root_mismatch"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"


@dataclass(frozen=True)
class Finding:
    """One problem the audit found: its kind, where it is, and a sentence about it.

    `index` is an entry index for entry findings and a tile index for tile
    findings, where `level` is the tile level.
    """

    kind: str
    index: int | None
    message: str
    level: int | None = None


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as the store keeps it: the tree size and root it signed."""

    size: int
    root: bytes


@dataclass
class AuditReport:
    """The audit result: what was checked and every finding, in discovery order."""

    size: int
    entries_checked: int = 0
    tiles_checked: int = 0
    root: bytes | None = None
    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the audit found nothing wrong."""
        return not self.findings

    def add(self, finding: Finding) -> None:
        """Record a finding, keeping at most MAX_FINDINGS_PER_KIND of each kind."""
        listed = sum(1 for existing in self.findings if existing.kind == finding.kind)
        if listed >= MAX_FINDINGS_PER_KIND:
            self.suppressed[finding.kind] = self.suppressed.get(finding.kind, 0) + 1
            return
        self.findings.append(finding)


def audit_log(
    size: int,
    stored_root: bytes,
    entries: Iterable[tuple[int, bytes]],
    leaf_tiles: Iterable[Tile],
    upper_tiles: Mapping[TileKey, Tile],
    checkpoints: Sequence[StoredCheckpoint],
) -> AuditReport:
    """Audit a log of `size` entries against its tiles, root and checkpoints.

    `entries` yields (index, canonical entry bytes) and `leaf_tiles` yields the
    level-0 tiles, both in ascending index order; `upper_tiles` contains every
    tile of level 1 and above.
    """
    report = AuditReport(size)
    checker = _TileChecker(size, upper_tiles, report)
    for tile in upper_tiles.values():
        checker.check(tile)
    cursor = _LeafTileCursor(iter(leaf_tiles), checker)
    scan = _scan_entries(size, entries, cursor, checkpoints, report)
    cursor.drain()
    checker.report_missing()
    _classify(scan, checker.bad_tiles, report)
    _check_roots(scan, stored_root, checkpoints, report)
    return report


@dataclass
class _Scan:
    mismatches: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    gaps: list[int] = field(default_factory=list)
    extras: list[int] = field(default_factory=list)
    complete: bool = True
    roots: dict[int, bytes] = field(default_factory=dict)


def _scan_entries(
    size: int,
    entries: Iterable[tuple[int, bytes]],
    cursor: _LeafTileCursor,
    checkpoints: Sequence[StoredCheckpoint],
    report: AuditReport,
) -> _Scan:
    scan = _Scan()
    checkpoint_sizes = {checkpoint.size for checkpoint in checkpoints} | {size}
    accumulator = CompactRange()
    if 0 in checkpoint_sizes:
        scan.roots[0] = accumulator.root()
    expected = 0
    for index, entry in entries:
        while expected < min(index, size):
            scan.gaps.append(expected)
            scan.complete = False
            expected += 1
        expected = index + 1
        report.entries_checked += 1
        if index >= size:
            scan.extras.append(index)
            continue
        entry_hash = leaf_hash(entry)
        stored = cursor.leaf_hash(index)
        if stored != entry_hash and len(scan.mismatches) < MAX_MISMATCHES_CLASSIFIED:
            scan.mismatches[index] = (entry_hash, stored or b"")
        if scan.complete:
            accumulator.append(entry_hash)
            if accumulator.size in checkpoint_sizes:
                scan.roots[accumulator.size] = accumulator.root()
    while expected < size:
        scan.gaps.append(expected)
        scan.complete = False
        expected += 1
    return scan


class _TileChecker:
    """Checks each tile's width, inner hashes and place under the level above."""

    def __init__(
        self, size: int, upper: Mapping[TileKey, Tile], report: AuditReport
    ) -> None:
        self.size = size
        self.upper = upper
        self.report = report
        self.seen: set[TileKey] = set()
        self.bad_tiles: set[TileKey] = set()

    def expected_width(self, key: TileKey) -> int:
        nodes = self.size >> (8 * key.level)
        full = nodes // TILE_WIDTH
        if key.index < full:
            return TILE_WIDTH
        if key.index == full:
            return nodes % TILE_WIDTH
        return 0

    def check(self, tile: Tile) -> None:
        key = tile.key
        self.seen.add(key)
        self.report.tiles_checked += 1
        expected = self.expected_width(key)
        where = f"tile level {key.level} index {key.index}"
        if expected == 0:
            self._bad(key, TILE_INSERTED, f"{where} lies beyond tree size {self.size}")
            return
        if tile.width != expected:
            self._bad(
                key,
                TILE_CHANGED,
                f"{where} has {tile.width} hashes, expected {expected}",
            )
            return
        if tile.inner != build_inner(tile.hashes):
            self._bad(
                key,
                TILE_CHANGED,
                f"{where} has inner hashes that do not match its hashes",
            )
            return
        if tile.width == TILE_WIDTH:
            self._check_parent(tile, where)

    def _check_parent(self, tile: Tile, where: str) -> None:
        parent = self.upper.get(TileKey(tile.level + 1, tile.index // TILE_WIDTH))
        position = tile.index % TILE_WIDTH
        if parent is None or parent.width <= position:
            return
        root = tile_root(tile)
        if parent.hash_at(position) == root:
            return
        for other in range(parent.width):
            if parent.hash_at(other) == root:
                moved_from = parent.index * TILE_WIDTH + other
                self._bad(
                    tile.key,
                    TILE_REORDERED,
                    f"{where} contains the hashes of tile index {moved_from}",
                )
                return
        self._bad(
            tile.key,
            TILE_CHANGED,
            f"{where} does not match its hash in tile level {tile.level + 1}",
        )

    def _bad(self, key: TileKey, kind: str, message: str) -> None:
        self.bad_tiles.add(key)
        self.report.add(Finding(kind, key.index, message, key.level))

    def report_missing(self) -> None:
        level = 0
        while self.size >> (8 * level):
            nodes = self.size >> (8 * level)
            for index in range((nodes + TILE_WIDTH - 1) // TILE_WIDTH):
                key = TileKey(level, index)
                if key not in self.seen:
                    self.bad_tiles.add(key)
                    self.report.add(
                        Finding(
                            TILE_MISSING,
                            index,
                            f"tile level {level} index {index} is missing",
                            level,
                        )
                    )
            level += 1


class _LeafTileCursor:
    """Walks the level-0 tiles in step with the entries and checks each tile."""

    def __init__(self, tiles: Iterator[Tile], checker: _TileChecker) -> None:
        self.tiles = tiles
        self.checker = checker
        self.current: Tile | None = None
        self.finished = False

    def leaf_hash(self, index: int) -> bytes | None:
        wanted = index // TILE_WIDTH
        while not self.finished and (
            self.current is None or self.current.index < wanted
        ):
            self._advance()
        tile = self.current
        if tile is None or tile.index != wanted or tile.width <= index % TILE_WIDTH:
            return None
        return tile.hash_at(index % TILE_WIDTH)

    def _advance(self) -> None:
        tile = next(self.tiles, None)
        if tile is None:
            self.finished = True
            return
        self.checker.check(tile)
        self.current = tile

    def drain(self) -> None:
        while not self.finished:
            self._advance()


def _classify(scan: _Scan, bad_tiles: set[TileKey], report: AuditReport) -> None:
    mismatches = scan.mismatches
    stored_at = {stored: index for index, (_, stored) in mismatches.items()}
    handled: set[int] = set()
    shifted_down = shifted_up = False
    for index in sorted(mismatches):
        if index in handled:
            continue
        if TileKey(0, index // TILE_WIDTH) in bad_tiles:
            continue
        entry_hash, stored = mismatches[index]
        following = mismatches.get(index + 1)
        if following is not None and entry_hash == following[1]:
            shifted_down = True
            run = _run(
                index,
                mismatches,
                lambda i: mismatches[i][0] == _stored(mismatches, i + 1),
            )
            handled.update(run)
            report.add(
                Finding(
                    ENTRY_DELETED,
                    index,
                    f"entry {index} was deleted and entries {index + 1} "
                    f"onwards moved down by one",
                )
            )
            continue
        if following is not None and following[0] == stored:
            shifted_up = True
            run = _run(
                index,
                mismatches,
                lambda i: _entry(mismatches, i + 1) == mismatches[i][1],
            )
            handled.update(run)
            report.add(
                Finding(
                    ENTRY_INSERTED,
                    index,
                    f"an entry was inserted at index {index} and later entries "
                    "moved up by one",
                )
            )
            continue
        other = stored_at.get(entry_hash)
        if other is not None and other != index:
            handled.update({index, other})
            report.add(
                Finding(
                    ENTRY_REORDERED,
                    index,
                    f"entry {index} contains the record logged at index {other}",
                )
            )
            continue
        report.add(
            Finding(ENTRY_CHANGED, index, f"entry {index} differs from its logged hash")
        )
    if not shifted_down:
        for index in scan.gaps:
            report.add(Finding(ENTRY_DELETED, index, f"entry {index} is missing"))
    if not shifted_up:
        for index in scan.extras:
            report.add(
                Finding(
                    ENTRY_INSERTED,
                    index,
                    f"entry {index} lies beyond tree size {report.size}",
                )
            )


def _stored(mismatches: Mapping[int, tuple[bytes, bytes]], index: int) -> bytes | None:
    item = mismatches.get(index)
    return None if item is None else item[1]


def _entry(mismatches: Mapping[int, tuple[bytes, bytes]], index: int) -> bytes | None:
    item = mismatches.get(index)
    return None if item is None else item[0]


def _run(
    start: int,
    mismatches: Mapping[int, tuple[bytes, bytes]],
    shifted: Callable[[int], bool],
) -> list[int]:
    """Return the indexes of a run of entries that moved by one, starting at `start`."""
    run = [start]
    index = start + 1
    while index in mismatches and shifted(index):
        run.append(index)
        index += 1
    if index in mismatches:
        run.append(index)
    return run


def _check_roots(
    scan: _Scan,
    stored_root: bytes,
    checkpoints: Sequence[StoredCheckpoint],
    report: AuditReport,
) -> None:
    if not scan.complete:
        return
    root = scan.roots.get(report.size)
    report.root = root
    if root is not None and root != stored_root:
        report.add(
            Finding(
                ROOT_MISMATCH,
                None,
                f"stored root for tree size {report.size} differs from the "
                "root recomputed from the entries",
            )
        )
    for checkpoint in checkpoints:
        if checkpoint.size > report.size:
            report.add(
                Finding(
                    CHECKPOINT_MISMATCH,
                    checkpoint.size,
                    f"checkpoint for tree size {checkpoint.size} is larger than "
                    f"the log ({report.size} entries)",
                )
            )
        elif scan.roots.get(checkpoint.size) != checkpoint.root:
            report.add(
                Finding(
                    CHECKPOINT_MISMATCH,
                    checkpoint.size,
                    f"checkpoint for tree size {checkpoint.size} signed a root the "
                    "entries no longer produce",
                )
            )
