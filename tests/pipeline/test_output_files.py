"""Run files that cannot be written: the error names the file, no temporary stays."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import duckdb
import pytest

from greenloop.pipeline import outputs
from greenloop.pipeline.job import RunConfig, run_job
from greenloop.pipeline.outputs import OutputError

FULL_DEVICE = Path("/dev/full")
needs_full_device = pytest.mark.skipif(
    not (FULL_DEVICE.exists() and stat.S_ISCHR(FULL_DEVICE.stat().st_mode)),
    reason="/dev/full, which fails every write with ENOSPC, is not available",
)


def _small_run(tmp_path: Path, keys: Path, url: str) -> RunConfig:
    path = tmp_path / "purchases.csv"
    path.write_text(
        "purchase_id,occurred_at,user_id,title,quantity,amount,currency\n"
        "p1,2026-05-01 10:00:00,u1,Metro ride,1,4,CNY\n"
        "p2,2026-05-01 11:00:00,u2,Kettle,1,99,CNY\n",
        encoding="utf-8",
    )
    return RunConfig(
        input_path=path,
        out_dir=tmp_path / "runs",
        database_url=url,
        key_dir=keys,
        facilities_path=None,
        campaigns_path=None,
        run_id="disk-full",
    )


class _FullDiskWriter:
    """A Parquet writer whose every write fails as on a full disk."""

    def __init__(self, path: str | Path, *arguments: object, **options: object):
        Path(path).write_bytes(b"PAR1")

    def write_table(self, *arguments: object, **options: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        pass


def test_full_disk_names_file_and_fix(
    tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    monkeypatch.setattr(outputs.pq, "ParquetWriter", _FullDiskWriter)
    config = _small_run(tmp_path, user_secret_dir, sqlite_url)
    with pytest.raises(OutputError) as failure:
        run_job(config)
    message = str(failure.value)
    run_dir = config.out_dir / "disk-full"
    assert str(run_dir / "verdicts.parquet") in message
    assert "No space left on device" in message
    assert "free space" in message
    assert "--out" in message
    assert failure.value.errno == errno.ENOSPC
    assert not list(run_dir.rglob("*.tmp"))
    assert not (run_dir / "manifest.json").exists()


def test_failed_run_removes_spill_folder(
    tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    monkeypatch.setattr(outputs.pq, "ParquetWriter", _FullDiskWriter)
    config = _small_run(tmp_path, user_secret_dir, sqlite_url)
    spill = config.out_dir / "disk-full" / ".spill"
    spill.mkdir(parents=True)
    (spill / "duckdb_temp_block-0.block").write_bytes(b"\0" * 1024)
    with pytest.raises(OutputError):
        run_job(config)
    assert not spill.exists()


@needs_full_device
def test_duckdb_copy_on_full_disk(tmp_path):
    path = tmp_path / "quarantine.csv"
    temporary = tmp_path / ".quarantine.csv.tmp"
    # Every write through the link fails with ENOSPC, as on a full disk.
    temporary.symlink_to(FULL_DEVICE)
    query = "SELECT range AS row, 'reason' AS reason FROM range(50000)"
    write = outputs._copy_to(duckdb.connect(), query, "HEADER, DELIMITER ','")
    with pytest.raises(OutputError) as failure:
        outputs.write_atomically(path, write)
    message = str(failure.value)
    assert message.startswith(f"cannot write {path}: No space left on device")
    assert "free space" in message
    assert failure.value.errno == errno.ENOSPC
    assert not temporary.is_symlink()
    assert not path.exists()


@needs_full_device
def test_text_file_on_full_disk(tmp_path):
    path = tmp_path / "report.json"
    (tmp_path / ".report.json.tmp").symlink_to(FULL_DEVICE)

    def write(temporary: Path) -> None:
        temporary.write_text("{}" * 100_000, encoding="utf-8")

    with pytest.raises(OutputError, match=r"report\.json: No space left on device"):
        outputs.write_atomically(path, write)
    assert not list(tmp_path.iterdir())


def test_unwritable_folder_names_fix(tmp_path):
    path = tmp_path / "verdicts.parquet"

    def write(temporary: Path) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(temporary))

    with pytest.raises(OutputError, match="Permission denied; make the folder"):
        outputs.write_atomically(path, write)


def test_other_failure_removes_temporary(tmp_path):
    path = tmp_path / "products.parquet"

    def write(temporary: Path) -> None:
        temporary.write_bytes(b"partial")
        raise RuntimeError("query failed")

    with pytest.raises(RuntimeError, match="query failed"):
        outputs.write_atomically(path, write)
    assert not list(tmp_path.iterdir())
