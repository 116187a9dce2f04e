"""Crash safety: a batch cut off mid-transaction leaves a clean, resumable log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ledger_helpers import asset

from greenloop.store.base import make_engine
from greenloop.store.ledger import LedgerStore

pytestmark = pytest.mark.postgres

HELPERS = Path(__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {helpers!r})
    from ledger_helpers import asset
    from greenloop.store.base import make_engine
    from greenloop.store.ledger import LedgerStore

    log = LedgerStore(make_engine({url!r}), key_dir=Path({keys!r}))
    log.append([asset(index) for index in range(300)])
    original = LedgerStore._replace_tiles

    def stall(self, connection, replaced, changed):
        original(self, connection, replaced, changed)
        print("inside-transaction", flush=True)
        time.sleep(120)

    LedgerStore._replace_tiles = stall
    log.append([asset(index) for index in range(300, 800)])
    """
)


def test_failed_batch_leaves_log_unchanged(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path)
    log.append([asset(index) for index in range(300)])

    def fail_midway(*_arguments: object) -> None:
        raise RuntimeError("simulated failure after the entries were inserted")

    batch = [asset(index) for index in range(300, 800)]
    with monkeypatch.context() as patch:
        patch.setattr(LedgerStore, "_replace_tiles", fail_midway)
        with pytest.raises(RuntimeError, match="simulated"):
            log.append(batch)
    assert log.size == 300
    assert log.audit().ok
    results = log.append(batch)
    assert [result.index for result in results] == list(range(300, 800))
    assert log.audit().ok


def test_killed_process_batch_resumes(database_url: str, tmp_path: Path) -> None:
    script = CHILD.format(
        helpers=str(HELPERS), url=database_url, keys=str(tmp_path / "keys")
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "inside-transaction"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    log = LedgerStore(make_engine(database_url), key_dir=tmp_path / "keys")
    assert log.size == 300
    assert log.audit().ok
    results = log.append([asset(index) for index in range(300, 800)])
    assert all(result.created for result in results)
    assert log.size == 800
    assert log.audit().ok
