"""The main job end to end on the demo sample: outputs, idempotence, crash safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pyarrow.parquet as pq
import pytest
from demo_runs import demo_config, run_command, run_small
from sqlalchemy import create_engine, func, select, text

from greenloop.pipeline.demo import DemoSample
from greenloop.pipeline.job import RunConfig, RunResult, new_run_id, run_job
from greenloop.store.base import StoreError, make_engine
from greenloop.store.runs import green_assets


def _root(checkpoint: str) -> str:
    return checkpoint.splitlines()[2]


def test_run_writes_every_output(demo_sample, tmp_path, user_secret_dir, sqlite_url):
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    for name in (
        "manifest.json",
        "verdicts.parquet",
        "products.parquet",
        "quarantine.csv",
        "report.json",
        "report.html",
        "returns.csv",
        "checkpoint.txt",
    ):
        assert (result.run_dir / name).is_file(), name
    manifest = json.loads((result.run_dir / "manifest.json").read_text("utf-8"))
    assert manifest["run_id"] == result.run_id
    assert len(manifest["input"]["sha256"]) == 64
    assert manifest["engine"]["name"] == "duckdb"
    assert manifest["standard"]["versions"]
    assert manifest["factor_versions"]
    assert manifest["finished_at"] >= manifest["started_at"]
    assert set(manifest["step_seconds"]) >= {"ingest", "identify", "ledger", "report"}
    assert "data_files" in manifest["step_seconds"]
    peaks = manifest["peak_memory_mib"]
    assert set(peaks) >= {"ingest", "ledger", "report"}
    # Peak memory only grows, and a Python process with DuckDB loaded is large.
    assert peaks["ingest"] <= peaks["ledger"] <= peaks["report"]
    assert peaks["report"] > 50
    cpu = manifest["cpu_seconds"]
    timed_steps = set(manifest["step_seconds"]) - {"data_files"}
    assert set(cpu) == timed_steps | {"process"}
    assert all(seconds >= 0 for seconds in cpu.values())
    # The process's total covers its steps (and its start-up, which they do not).
    assert cpu["process"] >= sum(cpu[step] for step in timed_steps if step != "report")
    html = (result.run_dir / "report.html").read_text("utf-8")
    assert 'id="rounding"' in html
    assert _stored_manifest(sqlite_url, result.run_id) == manifest


def _stored_manifest(url: str, run_id: str) -> dict:
    """Return the manifest that the store recorded for `run_id`."""
    from greenloop.store.runs import runs

    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            select(runs.c.manifest).where(runs.c.run_id == run_id)
        ).scalar_one()
    engine.dispose()
    return json.loads(stored)


class _RecordedProgress:
    """A progress sink that keeps each step's total and units done."""

    def __init__(self) -> None:
        self.steps: list[list] = []

    def start(self, step: str, total: int | None) -> None:
        self.steps.append([step, total, 0])

    def advance(self, units: int) -> None:
        self.steps[-1][2] += units

    def finish(self) -> None:
        pass


def test_long_steps_report_progress(demo_sample, tmp_path, user_secret_dir, sqlite_url):
    from greenloop.store.finance import FINANCE_PHASES

    progress = _RecordedProgress()
    run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url), progress)
    steps = {step: (total, done) for step, total, done in progress.steps}
    assert {"ingest", "identify", "ledger", "finance"} <= set(steps)
    assert steps["finance"] == (len(FINANCE_PHASES), len(FINANCE_PHASES))
    assert steps["ledger"][0] == steps["ledger"][1] > 0
    assert steps["identify"][0] == steps["identify"][1] > 0


def test_collector_paused_while_assets_are_appended(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    import gc

    from greenloop.store import runs

    store = runs.store_asset_rows
    collector_on: list[bool] = []

    def recorded(*arguments, **options):
        collector_on.append(gc.isenabled())
        return store(*arguments, **options)

    monkeypatch.setattr(runs, "store_asset_rows", recorded)
    run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    assert collector_on
    assert not any(collector_on)
    assert gc.isenabled()


def test_failed_data_files_fail_the_run(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    from greenloop.pipeline import job

    def broken(connection, run_dir):
        raise OSError("disk full while writing verdicts.parquet")

    monkeypatch.setattr(job, "write_data_files", broken)
    config = demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url)
    with pytest.raises(OSError, match="disk full"):
        run_job(config)
    runs = list(config.out_dir.glob("*"))
    assert len(runs) == 1
    assert not (runs[0] / "manifest.json").exists()


def test_run_receipt_verifies_offline(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    receipts = sorted((result.run_dir / "receipts").glob("*.json"))
    assert len(receipts) == result.counts["ledger"]["receipts_written"]
    verified = subprocess.run(
        [sys.executable, "-m", "greenloop.cli", "verify", str(receipts[0]),
         "--key", str(result.run_dir / "verifier-key.txt")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("verified:")


def test_run_counts_every_row(demo_sample, tmp_path, user_secret_dir, sqlite_url):
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    ingest = result.counts["ingest"]
    total = ingest["purchases"] + ingest["returns"] + ingest["quarantined_rows"]
    assert total == ingest["rows_read"]
    verdicts = pq.read_table(result.run_dir / "verdicts.parquet")
    assert verdicts.num_rows == ingest["purchases"]
    assert verdicts.column("row").to_pylist() == sorted(
        verdicts.column("row").to_pylist()
    )
    products = pq.read_table(result.run_dir / "products.parquet")
    assert products.num_rows == result.counts["identify"]["distinct_products"]
    keys = set(products.column("product_key").to_pylist())
    assert set(verdicts.column("product_key").to_pylist()) == keys
    assert all(products.column("reasons").to_pylist())
    identify = result.counts["identify"]
    statuses = identify["green"] + identify["needs_review"] + identify["not_green"]
    assert statuses == ingest["purchases"]
    quarantine_lines = (
        (result.run_dir / "quarantine.csv").read_text("utf-8").splitlines()
    )
    assert len(quarantine_lines) - 1 == ingest["quarantine_problems"]
    with make_engine(sqlite_url).connect() as connection:
        stored_loans = connection.exec_driver_sql(
            "SELECT count(*) FROM finance_loans"
        ).scalar_one()
    assert result.counts["finance"]["loans"] > 0
    assert result.counts["finance"]["loans"] == (
        stored_loans + result.counts["finance"]["rejected_loans"]
    )


def test_run_finds_green_purchases(demo_sample, tmp_path, user_secret_dir, sqlite_url):
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    report = json.loads((result.run_dir / "report.json").read_text("utf-8"))
    assert result.counts["identify"]["green"] > 0
    assert report["verdicts"]["green_without_evidence"] == 0
    assert result.counts["impact"]["kg_co2e_per_year"] > 0
    assert (
        result.counts["ledger"]["entries_appended"]
        == result.counts["green_assets"]["assets_new"]
    )


def test_rerun_adds_no_entries(demo_sample, tmp_path, user_secret_dir, sqlite_url):
    first = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    second = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    assert second.counts["ledger"]["entries_appended"] == 0
    assert second.counts["green_assets"]["assets_new"] == 0
    assert second.counts["ledger"]["tree_size"] == first.counts["ledger"]["tree_size"]
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(green_assets))
        assert stored.scalar_one() == first.counts["green_assets"]["assets_found"]


@pytest.mark.postgres
def test_run_on_postgresql(demo_sample, tmp_path, user_secret_dir, postgres_url):
    first = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, postgres_url))
    second = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, postgres_url))
    assert first.counts["ledger"]["entries_appended"] > 0
    assert second.counts["ledger"]["entries_appended"] == 0


def _ledger_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM green_assets "
                        "WHERE ledger_index IS NOT NULL"
                    )
                ).scalar_one()
            )
    except Exception:
        return 0
    finally:
        engine.dispose()


class _SignalledRun(NamedTuple):
    """A run signalled during its ledger step, and a clean run of the same input."""

    clean: RunResult
    command: list[str]
    environment: dict[str, str]
    url: str
    returncode: int
    errors: str


def _signal_during_ledger(
    sample: DemoSample, tmp_path: Path, keys: Path, name: str, sent: signal.Signals
) -> _SignalledRun:
    """Run the job cleanly, then in a child process that gets `sent` mid-ledger."""
    clean_url = f"sqlite:///{tmp_path / 'clean.sqlite3'}"
    clean = run_job(demo_config(sample, tmp_path, keys, clean_url))

    child_keys = tmp_path / f"{name}-keys"
    shutil.copytree(keys, child_keys)
    url = f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    # Batches of two entries make the ledger step last long enough, even on a
    # busy machine, for the signal to arrive before its last batch.
    environment = {**os.environ, "GREENLOOP_LEDGER_BATCH": "2"}
    command = run_command(
        sample.purchases, sample, tmp_path / f"{name}-runs", child_keys, url
    )
    process = subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _ledger_rows(url) == 0 and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(sent)
    _, errors = process.communicate(timeout=120)
    assert _ledger_rows(url) < clean.counts["green_assets"]["assets_found"]
    return _SignalledRun(clean, command, environment, url, process.returncode, errors)


def _resume_to_clean_root(run: _SignalledRun, runs_folder: Path) -> None:
    """Run the signalled run's command again; check it ends at the clean run's root."""
    resumed = subprocess.run(
        run.command, env=run.environment, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    checkpoints = sorted(runs_folder.glob("*/checkpoint.txt"))
    clean_checkpoint = (run.clean.run_dir / "checkpoint.txt").read_text("utf-8")
    assert _root(checkpoints[-1].read_text("utf-8")) == _root(clean_checkpoint)


def test_killed_run_resumes_to_same_state(demo_sample, tmp_path, user_secret_dir):
    killed = _signal_during_ledger(
        demo_sample, tmp_path, user_secret_dir, "crash", signal.SIGKILL
    )
    _resume_to_clean_root(killed, tmp_path / "crash-runs")
    engine = create_engine(killed.url)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(green_assets))
        assert (
            stored.scalar_one() == killed.clean.counts["green_assets"]["assets_found"]
        )
    # The resumed run found the killed run's process ended.
    statuses = _run_statuses(killed.url)
    assert [status for status, _ in statuses] == ["interrupted", "succeeded"]
    assert statuses[0][1] is not None
    assert statuses[1][1] is None


def test_interrupted_run_exits_130_and_resumes(demo_sample, tmp_path, user_secret_dir):
    interrupted = _signal_during_ledger(
        demo_sample, tmp_path, user_secret_dir, "interrupted", signal.SIGINT
    )
    assert interrupted.returncode == 130, interrupted.errors
    last_line = interrupted.errors.strip().splitlines()[-1]
    assert last_line.startswith("error: interrupted; ")
    # The run recorded its own interruption before it exited.
    statuses = _run_statuses(interrupted.url)
    assert [status for status, _ in statuses] == ["interrupted"]
    _resume_to_clean_root(interrupted, tmp_path / "interrupted-runs")


def _run_statuses(url: str) -> list[tuple[str, datetime | None]]:
    """Return each run's status and interruption time, in the order they started."""
    from greenloop.store.runs import runs

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(runs.c.status, runs.c.interruption_noticed_at).order_by(
                runs.c.started_at
            )
        ).all()
    engine.dispose()
    return [(row.status, row.interruption_noticed_at) for row in rows]


def test_live_run_never_marked_interrupted(demo_sample, tmp_path, user_secret_dir):
    from greenloop.store.runs import mark_interrupted_runs

    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    environment = {**os.environ, "GREENLOOP_LEDGER_BATCH": "25"}
    command = run_command(
        demo_sample.purchases, demo_sample, tmp_path / "runs", user_secret_dir, url
    )
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _ledger_rows(url) == 0 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before its ledger step"
        time.sleep(0.05)

    # A new run on the same store starts with this call.
    engine = make_engine(url)
    marked = mark_interrupted_runs(engine)
    engine.dispose()
    still_running = process.poll() is None
    assert process.wait(timeout=300) == 0
    assert marked == []
    assert still_running
    assert _run_statuses(url) == [("succeeded", None)]


def test_asset_records_are_canonical(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    from greenloop.ledger import canonical_json
    from greenloop.store.ledger import ledger_entries

    run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(green_assets.c.ledger_index, ledger_entries.c.record).join(
                ledger_entries,
                ledger_entries.c.purchase_id == green_assets.c.purchase_id,
            )
        ).all()
        assets = connection.execute(select(green_assets.c.purchase_id)).all()
    assert rows and len(rows) == len(assets)
    for _, record in rows:
        text = bytes(record).decode("utf-8")
        assert canonical_json(json.loads(text)).decode("utf-8") == text


def test_verdict_ranges_keep_row_order(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    from greenloop.pipeline import outputs

    monkeypatch.setattr(outputs, "VERDICT_ROW_RANGE", 997)
    result = run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    verdicts = pq.read_table(result.run_dir / "verdicts.parquet")
    rows = verdicts.column("row").to_pylist()
    assert len(rows) == result.counts["ingest"]["purchases"]
    assert rows == sorted(rows)
    assert len(set(rows)) == len(rows)

    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        stored = {
            row[0]: row[1]
            for row in connection.execute(
                select(green_assets.c.purchase_id, green_assets.c.ledger_index)
            )
        }
    written = {
        key: index
        for key, index in zip(
            verdicts.column("purchase_id").to_pylist(),
            verdicts.column("ledger_index").to_pylist(),
            strict=True,
        )
        if index is not None
    }
    assert written == stored

    # Statistics and dictionaries only where they serve a reader.
    metadata = pq.ParquetFile(result.run_dir / "verdicts.parquet").metadata
    columns = {
        metadata.schema.column(i).name: metadata.row_group(0).column(i)
        for i in range(metadata.num_columns)
    }
    assert set(columns) >= set(outputs.VERDICT_STATISTICS_COLUMNS)
    for name in outputs.VERDICT_STATISTICS_COLUMNS:
        assert columns[name].is_stats_set, name
    assert not columns["title"].is_stats_set
    assert columns["status"].has_dictionary_page
    assert not columns["purchase_id"].has_dictionary_page


def test_run_with_every_row_quarantined_writes_empty_verdicts(
    tmp_path, user_secret_dir, sqlite_url
):
    path = tmp_path / "bad.csv"
    path.write_text(
        "purchase_id,occurred_at,user_id,title,quantity,amount,currency\n"
        "p1,not a date,u1,kettle,1,10.00,CNY\n"
        "p2,2026-05-01 10:00:00,u1,kettle,1,10.00,QQQ\n",
        encoding="utf-8",
    )
    result = run_small(path, tmp_path, user_secret_dir, sqlite_url)
    verdicts = pq.read_table(result.run_dir / "verdicts.parquet")
    assert verdicts.num_rows == 0
    assert "ledger_index" in verdicts.column_names
    assert result.counts["ingest"]["quarantined_rows"] == 2


def test_report_counts_quarantine_per_reason(tmp_path, user_secret_dir, sqlite_url):
    path = tmp_path / "bad.csv"
    lines = [b"purchase_id,occurred_at,user_id,title,quantity,amount,currency"]
    lines += [b"ok,2026-05-01 10:00:00,u1,Kettle,1,4,CNY"]
    for number, byte in enumerate(b"\xe9\xff\x80"):
        title = b"caf" + bytes([byte])
        lines += [b"b%d,2026-05-01 10:00:00,u1,%s,1,4,CNY" % (number, title)]
    lines += [b"w1,2026-05-01 10:00:00,u1,a,b,1,4,CNY"]
    lines += [b"w2,2026-05-01 10:00:00,u1,a,b,c,1,4,CNY"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run_small(path, tmp_path, user_secret_dir, sqlite_url)
    report = json.loads((result.run_dir / "report.json").read_text("utf-8"))
    by_reason = report["quarantine"]["by_reason"]
    assert [(item["column"], item["rows"]) for item in by_reason] == [
        ("title", 3),
        ("(record)", 2),
    ]
    assert by_reason[0]["reason"].startswith("invalid text: not valid UTF-8")
    quarantine = (result.run_dir / "quarantine.csv").read_text("utf-8").splitlines()
    assert quarantine[0] == "row,purchase_id,column,value,reason,detail"
    assert quarantine[1].startswith("2,b0,title,caf\\xe9,")
    assert quarantine[1].endswith(",byte 0xE9 at offset 3")


def test_report_shows_small_avoided_tonnes(tmp_path, user_secret_dir, sqlite_url):
    path = tmp_path / "ride.csv"
    path.write_text(
        "purchase_id,occurred_at,user_id,mcc,title,quantity,amount,currency\n"
        "r1,2026-05-01 10:00:00,u1,4131,Bus fare,1,2,CNY\n",
        encoding="utf-8",
    )
    result = run_small(path, tmp_path, user_secret_dir, sqlite_url)
    report = json.loads((result.run_dir / "report.json").read_text("utf-8"))
    kg_per_year = report["counts"]["impact"]["kg_co2e_per_year"]
    html = (result.run_dir / "report.html").read_text("utf-8")
    assert 0 < kg_per_year < 10
    assert f'<div class="number">{kg_per_year / 1000:.3}' in html
    assert '<div class="number">0.00</div><div class="label">tCO2e' not in html


def test_report_escapes_input_name(tmp_path, user_secret_dir, sqlite_url):
    # The input's file name is the user's text, shown in the report's header.
    path = tmp_path / "<b>rides.csv"
    path.write_text(
        "purchase_id,occurred_at,user_id,mcc,title,quantity,amount,currency\n"
        "r1,2026-05-01 10:00:00,u1,4131,<i>Bus</i> fare,1,2,CNY\n",
        encoding="utf-8",
    )
    result = run_small(path, tmp_path, user_secret_dir, sqlite_url)
    html = (result.run_dir / "report.html").read_text("utf-8")
    assert "&lt;b&gt;rides.csv" in html
    assert "<b>rides" not in html
    assert "<i>Bus</i>" not in html


def test_run_quarantines_invalid_parquet_text(tmp_path, user_secret_dir, sqlite_url):
    import pyarrow as pa

    titles = pa.array([b"Kettle", b"caf\xe9", b"Lamp"], pa.binary())
    table = pa.table(
        {
            "purchase_id": ["p1", "p2", "p3"],
            "occurred_at": ["2026-05-01 10:00:00"] * 3,
            "user_id": ["u1"] * 3,
            "title": titles.view(pa.string()),
            "quantity": [1, 1, 1],
            "amount": [4.0, 4.0, 4.0],
            "currency": ["CNY"] * 3,
        }
    )
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    result = run_small(path, tmp_path, user_secret_dir, sqlite_url)
    ingest = result.counts["ingest"]
    assert ingest["purchases"] == 2
    assert ingest["quarantined_rows"] == 1
    quarantine = (result.run_dir / "quarantine.csv").read_text("utf-8").splitlines()
    assert quarantine[1].startswith("2,p2,title,caf\\xe9,invalid text:")


@pytest.mark.parametrize(
    ("configured", "used"),
    [("768MB", "512MB"), ("256MB", "256MB"), ("2GiB", "512MB"), ("300 MiB", "300 MiB")],
)
def test_report_never_gets_more_duckdb_memory_than_configured(configured, used):
    from greenloop.pipeline.job import _smaller_limit

    assert _smaller_limit(configured) == used


def test_run_ids_differ_within_one_second():
    started = datetime(2026, 12, 4, 21, 0, 0, tzinfo=UTC)
    ids = {new_run_id(started, "ab" * 32) for _ in range(20)}
    assert len(ids) == 20
    assert all(run_id.startswith("20261204T210000Z-abababab-") for run_id in ids)


def test_duckdb_threads_restored_after_error():
    import duckdb

    from greenloop.pipeline.job import _duckdb_threads

    connection = duckdb.connect()
    connection.execute("SET threads = 2")

    def threads() -> int:
        setting = "SELECT current_setting('threads')"
        return int(connection.execute(setting).fetchall()[0][0])

    with pytest.raises(RuntimeError), _duckdb_threads(connection, 1):
        assert threads() == 1
        raise RuntimeError("finance failed")
    assert threads() == 2
    with _duckdb_threads(connection, None):
        assert threads() == 2


def test_non_canonical_records_stop_ledger(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, monkeypatch
):
    from greenloop.pipeline import assets

    # Keys out of sorted order make the record text non-canonical.
    unsorted = "CAST(to_json({'version': 1, 'purchase_id': purchase_id}) AS VARCHAR)"
    monkeypatch.setattr(assets, "RECORD_SQL", unsorted)
    with pytest.raises(RuntimeError, match="not canonical JSON"):
        run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    assert _ledger_rows(sqlite_url) == 0


def _rewrite_sample(sample: DemoSample, path: Path, change) -> list[dict]:
    """Write the sample's rows, each changed by `change`, to `path`; return them."""
    import csv

    with sample.purchases.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        change(row)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_huge_quantity_is_quarantined(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    # A metro ride whose quantity would make its lifetime CO2e too large a
    # number for a ledger record.
    huge: list[str] = []

    def enlarge_first_ride(row: dict) -> None:
        if not huge and row["mcc"] == "4111" and not row["sku"]:
            row["quantity"] = "100000000000000"
            huge.append(row["purchase_id"])

    config = demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url)
    config.input_path = tmp_path / "large.csv"
    _rewrite_sample(demo_sample, config.input_path, enlarge_first_ride)
    result = run_job(config)
    ingest = result.counts["ingest"]
    total = ingest["purchases"] + ingest["returns"] + ingest["quarantined_rows"]
    assert total == ingest["rows_read"]
    quarantine = (result.run_dir / "quarantine.csv").read_text("utf-8")
    line = next(line for line in quarantine.splitlines() if huge[0] in line)
    assert ",quantity,100000000000000," in line
    assert "impossible quantity: more than 1,000,000 units" in line
    verdicts = pq.read_table(result.run_dir / "verdicts.parquet")
    assert huge[0] not in verdicts.column("purchase_id").to_pylist()
    assert _ledger_rows(sqlite_url) == result.counts["ledger"]["entries_appended"] > 0


def test_largest_quantity_fits_ledger_records(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    from greenloop.pipeline.schema import MAX_QUANTITY

    def enlarge(row: dict) -> None:
        if float(row["quantity"]) > 0:
            row["quantity"] = str(MAX_QUANTITY)

    config = demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url)
    config.input_path = tmp_path / "largest.csv"
    config.facilities_path = config.campaigns_path = None
    rows = _rewrite_sample(demo_sample, config.input_path, enlarge)
    result = run_job(config)
    assert result.counts["ingest"]["rows_read"] == len(rows)
    quarantine = (result.run_dir / "quarantine.csv").read_text("utf-8")
    assert "impossible quantity:" not in quarantine
    assert _ledger_rows(sqlite_url) == result.counts["green_assets"]["assets_found"]
    # New-energy vehicles have the largest unit impact of the shipped factors.
    verdicts = pq.read_table(result.run_dir / "verdicts.parquet").to_pylist()
    vehicles = [
        verdict
        for verdict in verdicts
        if verdict["category"] == "new_energy_vehicle"
        and verdict["kg_co2e_lifetime"] is not None
        and verdict["ledger_index"] is not None
    ]
    assert vehicles


def test_assets_of_another_log_rejected(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    from greenloop.store.ledger import LedgerStore

    run_job(demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url))
    config = demo_config(demo_sample, tmp_path, user_secret_dir, sqlite_url)
    config.origin = "example.org/another-log"
    with pytest.raises(RuntimeError, match="carry indexes of the log"):
        run_job(config)
    other = LedgerStore(
        make_engine(sqlite_url), origin=config.origin, key_dir=user_secret_dir
    )
    assert other.size == 0


def _user_index_names(url: str) -> set[str]:
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes("green_assets")}
    finally:
        engine.dispose()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_large_load_defers_user_index(
    demo_sample, tmp_path, user_secret_dir, sqlite_url, store, request, monkeypatch
):
    from greenloop.pipeline import assets
    from greenloop.store import runs as run_store

    url = sqlite_url if store == "sqlite" else request.getfixturevalue("postgres_url")
    clean_url = f"sqlite:///{tmp_path / 'clean.sqlite3'}"
    clean = run_job(
        demo_config(demo_sample, tmp_path / "clean", user_secret_dir, clean_url)
    )

    dropped: list[int] = []
    drop = run_store.drop_deferrable_indexes
    monkeypatch.setattr(
        run_store,
        "drop_deferrable_indexes",
        lambda engine: (dropped.append(1), drop(engine)),
    )
    monkeypatch.setattr(assets, "DEFER_INDEXES_MIN_ASSETS", 1)
    first = run_job(demo_config(demo_sample, tmp_path / "first", user_secret_dir, url))
    assert dropped == [1]
    assert "ix_green_assets_user_key" in _user_index_names(url)
    assert _root((first.run_dir / "checkpoint.txt").read_text("utf-8")) == _root(
        (clean.run_dir / "checkpoint.txt").read_text("utf-8")
    )
    assert first.counts["green_assets"] == clean.counts["green_assets"]

    # A rerun stores no new asset, so it keeps the index.
    second = run_job(
        demo_config(demo_sample, tmp_path / "second", user_secret_dir, url)
    )
    assert second.counts["ledger"]["entries_appended"] == 0
    assert dropped == [1]


def test_run_rebuilds_dropped_user_index(
    demo_sample, tmp_path, user_secret_dir, sqlite_url
):
    from greenloop.store import runs as run_store

    run_job(demo_config(demo_sample, tmp_path / "first", user_secret_dir, sqlite_url))
    # As a run killed during a large load leaves it.
    run_store.drop_deferrable_indexes(make_engine(sqlite_url))
    assert "ix_green_assets_user_key" not in _user_index_names(sqlite_url)
    run_job(demo_config(demo_sample, tmp_path / "second", user_secret_dir, sqlite_url))
    assert "ix_green_assets_user_key" in _user_index_names(sqlite_url)


def test_failed_store_closes_duckdb(
    demo_sample, tmp_path, user_secret_dir, monkeypatch
):
    import duckdb

    from greenloop.pipeline import job

    opened: list[duckdb.DuckDBPyConnection] = []

    def recording_connect(config: RunConfig) -> duckdb.DuckDBPyConnection:
        opened.append(job_connect(config))
        return opened[-1]

    job_connect = job._connect
    monkeypatch.setattr(job, "_connect", recording_connect)
    missing_folder = tmp_path / "missing" / "store.sqlite3"
    config = demo_config(
        demo_sample, tmp_path, user_secret_dir, f"sqlite:///{missing_folder}"
    )
    with pytest.raises(StoreError, match=r"folder .* does not exist"):
        run_job(config)
    assert len(opened) == 1
    with pytest.raises(duckdb.ConnectionException):
        opened[0].execute("SELECT 1")
    assert list((tmp_path / "runs").iterdir()) == []
