"""Concurrent appends and signed checkpoints on the database-backed log."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import asset

from greenloop.ledger import open_checkpoint, verify_consistency
from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore

pytestmark = pytest.mark.postgres


def test_concurrent_appends_stay_consistent(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    LedgerStore(engine, key_dir=tmp_path)
    errors: list[BaseException] = []

    def append_range(start: int) -> None:
        log = LedgerStore(engine, key_dir=tmp_path)
        try:
            for first in range(start, start + 400, 100):
                log.append([asset(index) for index in range(first, first + 100)])
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=append_range, args=(n * 400,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log = LedgerStore(engine, key_dir=tmp_path)
    assert errors == []
    assert log.size == 1200
    assert log.audit().ok


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=2, max_size=5))
def test_signed_checkpoints_pairwise_consistent(batch_sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/ledger.sqlite3")
        log = LedgerStore(engine, key_dir=Path(folder) / "keys")
        notes = []
        count = 0
        for batch in batch_sizes:
            log.append([asset(index) for index in range(count, count + batch)])
            count += batch
            notes.append(log.checkpoint())
        heads = [open_checkpoint(note, log.verifier) for note in notes]
        for position, old in enumerate(heads):
            for new in heads[position:]:
                proof = log.consistency_proof(old.size, new.size)
                checked = verify_consistency(
                    old.size, new.size, proof, old.root, new.root
                )
                assert checked is None
        engine.dispose()
