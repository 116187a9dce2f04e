"""Identification in worker processes gives what one process gives."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import sysconfig
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from greenloop.identify import Identifier
from greenloop.pipeline import identify_step
from greenloop.pipeline.demo import DemoSample
from greenloop.pipeline.identify_step import identify_products
from greenloop.pipeline.job import RunConfig, run_job
from greenloop.pipeline.progress import NoProgress
from greenloop.store.base import make_engine
from greenloop.store.runs import runs

# The figures of report.json that do not name the run or its times.
REPORT_FIGURES = (
    "avoided_by_category",
    "purchases_by_grid_factor",
    "verdicts",
    "impact",
    "spend_estimates",
    "allocation",
    "incentives",
)


def _run(sample: DemoSample, folder: Path, keys: Path, workers: int) -> dict:
    result = run_job(
        RunConfig(
            input_path=sample.purchases,
            out_dir=folder / "runs",
            database_url=f"sqlite:///{folder / 'store.sqlite3'}",
            key_dir=keys,
            registry_dir=sample.registries,
            as_of=sample.as_of,
            identify_workers=workers,
        )
    )
    products = pq.read_table(result.run_dir / "products.parquet").to_pylist()
    verdicts = pq.read_table(
        result.run_dir / "verdicts.parquet",
        columns=["row", "status", "verdict_digest", "kg_co2e_lifetime", "ledger_index"],
    ).to_pylist()
    checkpoint = (result.run_dir / "checkpoint.txt").read_text("utf-8")
    manifest = json.loads((result.run_dir / "manifest.json").read_text("utf-8"))
    report = json.loads((result.run_dir / "report.json").read_text("utf-8"))
    return {
        "report": {key: report[key] for key in REPORT_FIGURES},
        "products": products,
        "verdicts": sorted(verdicts, key=lambda row: row["row"]),
        "root": checkpoint.splitlines()[2],
        "manifest": manifest,
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_match_one_process(
    demo_sample, tmp_path, user_secret_dir, monkeypatch, slow_main_judging, workers
):
    # Small batches and no lower bound send the demo's products to the
    # workers, and the main process judges some of them too.
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 37)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    alone = _run(demo_sample, tmp_path / "alone", user_secret_dir, workers=0)
    slow_main_judging(0.5)
    helped = _run(demo_sample, tmp_path / "helped", user_secret_dir, workers)

    assert helped["products"] == alone["products"]
    assert helped["verdicts"] == alone["verdicts"]
    assert helped["root"] == alone["root"]
    counts, alone_counts = helped["manifest"]["counts"], alone["manifest"]["counts"]
    # A worker that starts after the others took every batch judges none.
    assert 1 <= counts["identify"].pop("worker_processes") <= workers
    assert alone_counts["identify"].pop("worker_processes") == 0
    assert counts["identify"] == alone_counts["identify"]
    assert counts["impact"] == alone_counts["impact"]
    assert helped["report"] == alone["report"]
    peaks = helped["manifest"]["peak_memory_mib"]
    assert peaks["identify_with_workers"] > peaks["identify"]
    assert "identify_with_workers" not in alone["manifest"]["peak_memory_mib"]
    assert helped["manifest"]["cpu_seconds"]["identify_workers"] > 0
    assert "identify_workers" not in alone["manifest"]["cpu_seconds"]


def test_run_config_defaults_to_workers(
    demo_sample, tmp_path, user_secret_dir, monkeypatch, slow_main_judging
):
    # RunConfig's default, None, means one worker per further CPU. The test
    # replaces default_workers so that the host's CPU count does not matter.
    monkeypatch.setattr(identify_step, "default_workers", lambda: 1)
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 37)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    slow_main_judging(0.5)
    config = RunConfig(
        input_path=demo_sample.purchases,
        out_dir=tmp_path / "runs",
        database_url=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        key_dir=user_secret_dir,
        registry_dir=demo_sample.registries,
        as_of=demo_sample.as_of,
    )
    assert config.identify_workers is None
    result = run_job(config)
    assert result.manifest["counts"]["identify"]["worker_processes"] == 1


class BrokenIdentifier(Identifier):
    """An identifier whose batches fail, to show that a worker's error surfaces."""

    def identify_many(self, queries):  # type: ignore[no-untyped-def]
        raise ValueError(f"cannot judge {queries[0].title!r}")


def _purchases(connection: duckdb.DuckDBPyConnection, count: int) -> None:
    from greenloop.pipeline.schema import PRODUCT_KEY_FIELDS

    columns = ", ".join(
        f"'product ' || i AS {name}" if name == "title" else f"NULL AS {name}"
        for name in PRODUCT_KEY_FIELDS
    )
    connection.execute(
        f"CREATE TABLE purchases AS SELECT CAST(i AS UBIGINT) AS product_key, "
        f"{columns} FROM range({count}) t(i)"
    )


def _identify_with_workers(
    kind: type[Identifier], monkeypatch, slow_main_judging, **extra: object
) -> identify_step.IdentifiedProducts:
    """Identify 35 products in batches of 5 with an identifier of `kind`, while
    the main process judges slowly."""
    slow_main_judging(1.0)
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 5)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    loaded = Identifier.load(jurisdiction="cn")
    identifier = kind.__new__(kind)
    identifier.__dict__.update(loaded.__dict__, **extra)
    connection = duckdb.connect()
    _purchases(connection, 35)
    identified = identify_products(connection, identifier, NoProgress(), workers=2)
    stored = connection.execute(
        "SELECT count(DISTINCT product_key) FROM product_verdicts"
    ).fetchall()
    assert stored == [(35,)]
    rows = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert rows == [(35,)]
    return identified


def test_worker_error_stops_identification(monkeypatch, slow_main_judging):
    with pytest.raises(ValueError, match="cannot judge 'product "):
        _identify_with_workers(BrokenIdentifier, monkeypatch, slow_main_judging)


def test_workers_capped_by_batches(monkeypatch):
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 10)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    requested: list[int] = []

    @contextmanager
    def no_pool(identifier, workers, target=None):  # type: ignore[no-untyped-def]
        requested.append(workers)
        yield None

    monkeypatch.setattr(identify_step, "_worker_pool", no_pool)
    connection = duckdb.connect()
    _purchases(connection, 35)
    identified = identify_products(
        connection, Identifier.load(jurisdiction="cn"), NoProgress(), workers=6
    )
    # Four batches: three workers and this process.
    assert requested == [3]
    assert identified.products == 35


def test_small_inputs_stay_in_one_process(monkeypatch):
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 50)
    connection = duckdb.connect()
    _purchases(connection, 40)
    identified = identify_products(
        connection, Identifier.load(jurisdiction="cn"), NoProgress(), workers=2
    )
    assert identified.products == 40
    assert identified.workers == 0
    assert identified.worker_peak_mib is None
    stored = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert stored == [(40,)]


def test_default_workers_one_per_further_cpu(monkeypatch):
    monkeypatch.setattr(identify_step.os, "sched_getaffinity", lambda _pid: {0})
    assert identify_step.default_workers() == 0
    monkeypatch.setattr(identify_step.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert identify_step.default_workers() == 1
    four = {0, 1, 2, 3}
    monkeypatch.setattr(identify_step.os, "sched_getaffinity", lambda _pid: four)
    assert identify_step.default_workers() == 3


def test_run_help_states_parallel_minimum():
    from typer.testing import CliRunner

    from greenloop.cli import app

    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    # The help is wrapped inside a box, so only its words are compared.
    words = " ".join(result.output.replace("│", " ").split())
    assert f"{identify_step.PARALLEL_MIN_PRODUCTS:,} distinct" in words


class DyingIdentifier(Identifier):
    """An identifier that ends a worker process abruptly while it judges.

    In the process that created it, the main process, it judges as usual, so
    that the test process lives.
    """

    def identify_many(self, queries):  # type: ignore[no-untyped-def]
        if os.getpid() != self.creator_pid:
            os._exit(9)
        return super().identify_many(queries)


def test_killed_workers_leave_batches_to_main(monkeypatch, caplog, slow_main_judging):
    identified = _identify_with_workers(
        DyingIdentifier, monkeypatch, slow_main_judging, creator_pid=os.getpid()
    )
    assert identified.products == 35
    assert identified.worker_usage == {}
    assert "exited with status 9" in caplog.text
    assert "the main process judges the batch" in caplog.text


def _reply_cut_short(requests, replies, identifier):  # type: ignore[no-untyped-def]
    """Serve as a worker that dies halfway through sending its first reply."""
    requests.recv()
    # A message header that announces a megabyte, then a few bytes of it.
    os.write(replies.fileno(), struct.pack("!i", 1 << 20) + b"cut short")
    os._exit(9)


@pytest.mark.timeout(120)
def test_worker_dying_mid_reply_gives_batch_back(
    monkeypatch, caplog, slow_main_judging
):
    monkeypatch.setattr(identify_step, "_serve", _reply_cut_short)
    identified = _identify_with_workers(Identifier, monkeypatch, slow_main_judging)
    assert identified.products == 35
    assert identified.worker_usage == {}
    assert "got end of file during message" in caplog.text


def _process_ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The state follows the parenthesised command name.
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(120)
def test_workers_exit_when_main_killed(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(
        "import time\n"
        "from greenloop.pipeline.identify_step import _WorkerPool, _serve\n"
        "if __name__ == '__main__':\n"
        "    pool = _WorkerPool(None, 2, _serve)\n"
        "    pool.wait_for_starts()\n"
        "    print(*pool.pids, flush=True)\n"
        "    time.sleep(600)\n",
        encoding="utf-8",
    )
    main = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert main.stdout is not None
        pids = [int(pid) for pid in main.stdout.readline().split()]
        assert len(pids) == 2
        assert not any(_process_ended(pid) for pid in pids)
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(map(_process_ended, pids)):
            time.sleep(0.1)
        assert all(_process_ended(pid) for pid in pids)
    finally:
        main.kill()
        main.wait()


def test_cpu_quota_limits_default_workers(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    cases = {
        "max 100000\n": None,
        "200000 100000\n": 2,
        "150000 100000\n": 2,
        "50000 100000\n": 1,
        "garbage\n": None,
    }
    for text, expected in cases.items():
        quota.write_text(text, encoding="ascii")
        assert identify_step._cpu_quota(quota) == expected, text
    assert identify_step._cpu_quota(tmp_path / "missing") is None

    four = {0, 1, 2, 3}
    monkeypatch.setattr(identify_step.os, "sched_getaffinity", lambda _pid: four)
    monkeypatch.setattr(identify_step, "_cpu_quota", lambda: 2)
    assert identify_step.default_workers() == 1


def test_straggler_grace_rule():
    minimum = identify_step.STRAGGLER_GRACE_MIN_SECONDS
    factor = identify_step.STRAGGLER_GRACE_FACTOR
    assert identify_step.straggler_grace_seconds(0.0) == minimum
    assert identify_step.straggler_grace_seconds(minimum / factor / 2) == minimum
    assert identify_step.straggler_grace_seconds(minimum) == factor * minimum


def _stop_at_first_batch(requests, replies, identifier):  # type: ignore[no-untyped-def]
    """Serve as a worker that stops itself with SIGSTOP when its first batch
    arrives, as `kill -STOP` would stop it.

    Continued, it judges the batch and serves on as usual.
    """
    batch = requests.recv()
    os.kill(os.getpid(), signal.SIGSTOP)
    judged = identify_step._judge(identifier, batch)
    replies.send((judged, identify_step.WorkerUsage(0, 0.0), None))
    identify_step._serve(requests, replies, identifier)


def _straggler_warnings(caplog) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Return the arguments of each warning about a killed straggler: the
    worker number, its pid, the batch, the seconds it held it and the grace."""
    return [
        record.args
        for record in caplog.records
        if "without replying" in str(record.msg) and isinstance(record.args, tuple)
    ]


@pytest.mark.timeout(180)
def test_stopped_worker_leaves_verdicts_unchanged(
    demo_sample, tmp_path, user_secret_dir, monkeypatch, slow_main_judging, caplog
):
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 37)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    monkeypatch.setattr(identify_step, "STRAGGLER_GRACE_MIN_SECONDS", 1.0)
    alone = _run(demo_sample, tmp_path / "alone", user_secret_dir, workers=0)
    monkeypatch.setattr(identify_step, "_serve", _stop_at_first_batch)
    slow_main_judging(0.5)
    started = time.monotonic()
    helped = _run(demo_sample, tmp_path / "helped", user_secret_dir, workers=1)
    seconds = time.monotonic() - started

    assert helped["products"] == alone["products"]
    assert helped["verdicts"] == alone["verdicts"]
    assert helped["root"] == alone["root"]
    assert helped["report"] == alone["report"]
    counts = helped["manifest"]["counts"]["identify"]
    assert counts == alone["manifest"]["counts"]["identify"]
    assert counts["worker_processes"] == 0
    warnings = _straggler_warnings(caplog)
    assert len(warnings) == 1
    number, pid, _position, held_seconds, grace_seconds = warnings[0]
    assert number == 1
    assert held_seconds >= grace_seconds
    assert _process_ended(pid)
    # The main process judges 17 batches at about half a second each, and the
    # rest of the run takes a few seconds. The bound leaves room for a busy host.
    assert seconds < 90


@pytest.mark.timeout(120)
def test_stopped_workers_wait_grace_period(monkeypatch, caplog, slow_main_judging):
    # Each worker stops at its first batch, about a second in. The main process
    # judges the other five batches in about five seconds and then waits until
    # the stopped workers have held theirs for the grace period.
    monkeypatch.setattr(identify_step, "_serve", _stop_at_first_batch)
    monkeypatch.setattr(identify_step, "STRAGGLER_GRACE_MIN_SECONDS", 6.0)
    started = time.monotonic()
    identified = _identify_with_workers(Identifier, monkeypatch, slow_main_judging)
    seconds = time.monotonic() - started

    assert identified.products == 35
    assert identified.worker_usage == {}
    warnings = _straggler_warnings(caplog)
    assert sorted(args[0] for args in warnings) == [1, 2]
    for _number, pid, _position, held_seconds, grace_seconds in warnings:
        assert grace_seconds >= 6.0
        assert held_seconds >= grace_seconds
        assert _process_ended(pid)
    assert seconds >= 6.0
    assert seconds < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(60)
def test_workers_ignore_sigint():
    # Ctrl-C reaches the whole process group. The main process stops its
    # workers then, and a worker that died of it first would look like a fault.
    pool = identify_step._WorkerPool(None, 1, identify_step._serve)
    try:
        pool.wait_for_starts()
        [pid] = pool.pids
        os.kill(pid, signal.SIGINT)
        time.sleep(1)
        assert not _process_ended(pid)
    finally:
        pool.close()


UNGUARDED_SCRIPT = """\
import time
from datetime import date
from pathlib import Path

from greenloop.pipeline import identify_step
from greenloop.pipeline.job import RunConfig, run_job

identify_step.BATCH_PRODUCTS = 37
identify_step.PARALLEL_MIN_PRODUCTS = 1
judge = identify_step._judge


def judge_slowly(identifier, batch):
    time.sleep(0.5)
    return judge(identifier, batch)


identify_step._judge = judge_slowly
result = run_job(
    RunConfig(
        input_path=Path({purchases!r}),
        out_dir=Path({out_dir!r}),
        database_url={database_url!r},
        key_dir=Path({key_dir!r}),
        registry_dir=Path({registry_dir!r}),
        as_of=date.fromisoformat({as_of!r}),
        identify_workers=1,
    )
)
print(result.manifest["counts"]["identify"]["worker_processes"])
"""


@pytest.mark.timeout(300)
def test_unguarded_script_records_one_run(demo_sample, tmp_path, user_secret_dir):
    # The script starts its run at top level, with no `if __name__ ==
    # "__main__":` guard, and slows its own judging so that the worker judges
    # batches too.
    database_url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    script = tmp_path / "unguarded.py"
    script.write_text(
        UNGUARDED_SCRIPT.format(
            purchases=str(demo_sample.purchases),
            out_dir=str(tmp_path / "runs"),
            database_url=database_url,
            key_dir=str(user_secret_dir),
            registry_dir=str(demo_sample.registries),
            as_of=demo_sample.as_of.isoformat(),
        ),
        encoding="utf-8",
    )
    finished = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["1"], finished.stderr
    with make_engine(database_url).connect() as connection:
        statuses = connection.execute(select(runs.c.status)).scalars().all()
    assert statuses == ["succeeded"]


def test_compact_batch_sends_own_rows() -> None:
    chunk = pa.record_batch({"title": [f"product {n}" for n in range(100_000)]})
    part = chunk.slice(50_000, 1_000)
    compact = identify_step._compact(part)
    assert compact.equals(part)
    assert len(pickle.dumps(compact)) * 20 < len(pickle.dumps(part))


class FakeTime:
    """A stand-in for the time module whose monotonic clock the test moves."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds


@pytest.mark.timeout(60)
def test_suspension_not_counted_in_grace(monkeypatch):
    # Ctrl-Z stops the main process and its workers alike, and time.monotonic()
    # runs on meanwhile. A worker that was judging must not be taken as stuck.
    fake_time = FakeTime()
    monkeypatch.setattr(identify_step, "time", fake_time)
    pool = identify_step._WorkerPool(None, 0, identify_step._serve)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pool.unclaimed.append(0)
        assert pool._claim_first(1, worker) == 0
        fake_time.seconds += 1.0
        pool._stop_stragglers()
        fake_time.seconds += 3600.0
        pool._stop_stragglers()
        assert worker.poll() is None
        assert pool.returned == []

        # Once the job runs again, the worker still has its grace period.
        grace = identify_step.straggler_grace_seconds(0.0)
        for _ in range(int(grace / identify_step.WATCH_INTERVAL_SECONDS) + 2):
            fake_time.seconds += identify_step.WATCH_INTERVAL_SECONDS
            pool._stop_stragglers()
        assert worker.poll() is not None
        assert pool.returned == [0]
    finally:
        pool.close()
        worker.kill()
        worker.wait()


def test_running_clock_caps_each_step(monkeypatch):
    fake_time = FakeTime()
    monkeypatch.setattr(identify_step, "time", fake_time)
    clock = identify_step._RunningClock()
    fake_time.seconds += 1.5
    assert clock.now() == 1.5
    fake_time.seconds += 600.0
    assert clock.now() == 1.5 + identify_step.CLOCK_MAX_STEP_SECONDS


def test_worker_environment_puts_greenloop_first(monkeypatch):
    import greenloop

    source_root = Path(greenloop.__file__).resolve().parent.parent
    # Empty entries would put the working directory on the worker's path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", "/opt/a", "", "/opt/b"]))
    environment = identify_step._worker_environment()
    expected = os.pathsep.join([str(source_root), "/opt/a", "/opt/b"])
    assert environment["PYTHONPATH"] == expected

    monkeypatch.delenv("PYTHONPATH")
    environment = identify_step._worker_environment()
    assert environment["PYTHONPATH"] == str(source_root)


SYS_PATH_SCRIPT = """\
import sys
import time

{path_setup}
import duckdb

from greenloop.identify import Identifier
from greenloop.pipeline import identify_step
from greenloop.pipeline.progress import NoProgress

identify_step.BATCH_PRODUCTS = 5
identify_step.PARALLEL_MIN_PRODUCTS = 1
judge = identify_step._judge


def judge_slowly(identifier, batch):
    time.sleep(1.0)
    return judge(identifier, batch)


identify_step._judge = judge_slowly
connection = duckdb.connect()
connection.execute(
    "CREATE TABLE purchases AS SELECT CAST(i AS UBIGINT) AS product_key, "
    "'product ' || i AS title, NULL AS mcc, NULL AS merchant_id, "
    "NULL AS merchant_name, NULL AS brand, NULL AS model_number, NULL AS sku, "
    "NULL AS energy_label_grade, NULL AS certificate_id, NULL AS label_codes "
    "FROM range(35) t(i)"
)
identified = identify_step.identify_products(
    connection, Identifier.load(jurisdiction="cn"), NoProgress(), workers=1
)
print(identified.workers)
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("reached_by", ["sys.path", "working directory"])
def test_workers_start_without_install(tmp_path, reached_by):
    # A virtual environment with greenloop's dependencies but not greenloop:
    # a .pth file there adds this environment's site-packages, whose own .pth
    # file for the editable install of greenloop is then not read.
    import venv

    import greenloop

    source_root = str(Path(greenloop.__file__).resolve().parent.parent)
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    [site_packages] = bare.glob("lib/python*/site-packages")
    dependencies = sysconfig.get_path("purelib")
    (site_packages / "dependencies.pth").write_text(dependencies + "\n")
    python = bare / "bin" / "python"
    environment = {"PATH": os.environ["PATH"]}
    hidden = subprocess.run(
        [str(python), "-c", "import greenloop"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert hidden.returncode != 0, "greenloop is importable without its folder"

    if reached_by == "sys.path":
        path_setup = f"sys.path.insert(0, {source_root!r})\n"
        folder = str(tmp_path)
    else:
        # `python -c` puts the working directory first on sys.path.
        path_setup = ""
        folder = source_root
    finished = subprocess.run(
        [str(python), "-c", SYS_PATH_SCRIPT.format(path_setup=path_setup)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert finished.returncode == 0, finished.stderr
    assert "did not start" not in finished.stderr
    assert finished.stdout.split() == ["1"], finished.stderr
