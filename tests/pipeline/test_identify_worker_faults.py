"""Faults of identify workers that the run must report instead of hiding or hanging."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from greenloop.identify import Identifier
from greenloop.pipeline import identify_step, job
from greenloop.pipeline.identify_step import identify_products
from greenloop.pipeline.job import RunConfig, run_job
from greenloop.pipeline.progress import NoProgress
from greenloop.store.base import make_engine
from greenloop.store.runs import runs

# Larger than a pipe's buffer, so the main process is still writing the
# worker's start-up data when the worker has exited.
START_PAYLOAD_BYTES = 16 << 20


class ExitOnLoad(Identifier):
    """An identifier that ends any process but its creator that unpickles it,
    with status 9."""

    def __setstate__(self, state: dict) -> None:
        if os.getpid() != state["creator_pid"]:
            os._exit(9)
        self.__dict__.update(state)


def _purchases_35() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE purchases AS SELECT CAST(i AS UBIGINT) AS product_key, "
        "'product ' || i AS title, NULL AS mcc, NULL AS merchant_id, "
        "NULL AS merchant_name, NULL AS brand, NULL AS model_number, NULL AS sku, "
        "NULL AS energy_label_grade, NULL AS certificate_id, NULL AS label_codes "
        "FROM range(35) t(i)"
    )
    return connection


def _identify_35(
    identifier: Identifier, monkeypatch, slow_main_judging
) -> duckdb.DuckDBPyConnection:
    slow_main_judging(1.0)
    monkeypatch.setattr(identify_step, "BATCH_PRODUCTS", 5)
    monkeypatch.setattr(identify_step, "PARALLEL_MIN_PRODUCTS", 1)
    connection = _purchases_35()
    identified = identify_products(connection, identifier, NoProgress(), workers=1)
    assert identified.products == 35
    return connection


@pytest.mark.timeout(120)
def test_worker_dying_at_start_leaves_batches(monkeypatch, caplog, slow_main_judging):
    # The pool hands the identifier to each worker at start-up. This one makes
    # the worker exit while it loads it, before the worker reports ready.
    loaded = Identifier.load(jurisdiction="cn")
    identifier = ExitOnLoad.__new__(ExitOnLoad)
    identifier.__dict__.update(loaded.__dict__, creator_pid=os.getpid())
    connection = _identify_35(identifier, monkeypatch, slow_main_judging)
    stored = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert stored == [(35,)]
    assert "identify worker 1 (pid" in caplog.text
    assert "did not start (exited with status 9" in caplog.text


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("executable", "error"),
    [
        ("/nonexistent/python3", "FileNotFoundError"),
        # An interpreter that exits at once, without reading its input.
        (shutil.which("false") or "/bin/false", "BrokenPipeError"),
    ],
)
def test_interpreter_failing_leaves_batches(
    monkeypatch, caplog, slow_main_judging, executable, error
):
    monkeypatch.setattr(identify_step.sys, "executable", executable)
    loaded = Identifier.load(jurisdiction="cn")
    identifier = Identifier.__new__(Identifier)
    identifier.__dict__.update(loaded.__dict__, payload=bytes(START_PAYLOAD_BYTES))
    connection = _identify_35(identifier, monkeypatch, slow_main_judging)
    stored = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert stored == [(35,)]
    assert "identify worker 1" in caplog.text
    assert "did not start" in caplog.text
    assert error in caplog.text


@pytest.mark.timeout(120)
def test_worker_ignores_modules_in_cwd(
    tmp_path, monkeypatch, caplog, slow_main_judging
):
    # `python -m` puts the working directory first on sys.path, so a user's
    # signal.py there would run in the worker in place of the standard module.
    marker = tmp_path / "user-module-ran"
    (tmp_path / "signal.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"
    )
    monkeypatch.chdir(tmp_path)
    connection = _identify_35(
        Identifier.load(jurisdiction="cn"), monkeypatch, slow_main_judging
    )
    stored = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert stored == [(35,)]
    assert not marker.exists()
    assert "did not start" not in caplog.text


class UnreadableInMain:
    """A reply part whose unpickling fails in any process but its creator."""

    def __init__(self) -> None:
        # The state is not empty, so pickle calls __setstate__.
        self.creator_pid = os.getpid()

    def __setstate__(self, state: dict) -> None:
        if os.getpid() != state["creator_pid"]:
            raise MemoryError("no memory left to unpickle the worker's reply")
        self.__dict__.update(state)


def _unreadable_reply(requests, replies, identifier):  # type: ignore[no-untyped-def]
    """Serve as a worker whose first reply cannot be unpickled by the main process."""
    requests.recv()
    replies.send((UnreadableInMain(), None, None))
    # The worker waits, as a live worker would, until the main process stops it.
    time.sleep(600)


@pytest.mark.timeout(120)
def test_unreadable_reply_gives_batch_back(monkeypatch, caplog, slow_main_judging):
    # A MemoryError while a driver thread reads a reply must not leave the
    # main process waiting: the worker is stopped and its batch judged here.
    monkeypatch.setattr(identify_step, "_serve", _unreadable_reply)
    connection = _identify_35(
        Identifier.load(jurisdiction="cn"), monkeypatch, slow_main_judging
    )
    stored = connection.execute("SELECT count(*) FROM product_verdicts").fetchall()
    assert stored == [(35,)]
    assert "MemoryError" in caplog.text


def test_keyboard_interrupt_ends_run_row(
    demo_sample, tmp_path: Path, user_secret_dir, monkeypatch
):
    # A notebook or a scheduler catches KeyboardInterrupt and keeps running,
    # so mark_interrupted_runs never finds the run's process ended.
    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "compute_impacts", interrupt)
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    with pytest.raises(KeyboardInterrupt):
        run_job(
            RunConfig(
                input_path=demo_sample.purchases,
                out_dir=tmp_path / "runs",
                database_url=url,
                key_dir=user_secret_dir,
                registry_dir=demo_sample.registries,
                as_of=demo_sample.as_of,
            )
        )
    with make_engine(url).connect() as connection:
        statuses = connection.execute(select(runs.c.status)).scalars().all()
    assert len(statuses) == 1
    assert statuses[0] != "running"


class StopOnLoad(Identifier):
    """An identifier that stops, with SIGSTOP, any process but its creator
    that unpickles it, as `kill -STOP` would stop it."""

    def __setstate__(self, state: dict) -> None:
        if os.getpid() != state["creator_pid"]:
            os.kill(os.getpid(), signal.SIGSTOP)
        self.__dict__.update(state)


def _verdict_rows(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute(
        "SELECT product_key, status, verdict_digest FROM product_verdicts "
        "ORDER BY product_key"
    ).fetchall()


@pytest.mark.timeout(120)
def test_unready_worker_killed_after_wait(monkeypatch, caplog, slow_main_judging):
    monkeypatch.setattr(identify_step, "WORKER_READY_TIMEOUT_SECONDS", 2.0)
    loaded = Identifier.load(jurisdiction="cn")
    alone = _purchases_35()
    identify_products(alone, loaded, NoProgress(), workers=0)

    # The worker stops while it loads the identifier, before it reports ready.
    identifier = StopOnLoad.__new__(StopOnLoad)
    identifier.__dict__.update(loaded.__dict__, creator_pid=os.getpid())
    started = time.monotonic()
    helped = _identify_35(identifier, monkeypatch, slow_main_judging)
    seconds = time.monotonic() - started

    assert _verdict_rows(helped) == _verdict_rows(alone)
    warnings = [
        record.args
        for record in caplog.records
        if "did not report ready" in str(record.msg) and isinstance(record.args, tuple)
    ]
    assert len(warnings) == 1
    number, _pid, wait_seconds = warnings[0]
    assert number == 1
    assert wait_seconds == 2.0
    # The main process judges seven batches at about a second each, so the
    # run ends after the wait, and it does not wait for the stopped worker.
    assert seconds < 60


# Seconds each worker of the killed-job test sleeps while it loads the
# identifier, so that it is still starting when its main process is killed.
SLEEP_ON_LOAD_SECONDS = 3.0


class SleepOnLoad(Identifier):
    """An identifier that any process but its creator unpickles slowly."""

    def __setstate__(self, state: dict) -> None:
        if os.getpid() != state["creator_pid"]:
            time.sleep(SLEEP_ON_LOAD_SECONDS)
        self.__dict__.update(state)


# The main process of the killed-job test: it identifies 35 products, 5 per
# batch and 1 s per batch it judges itself, beside two slow-starting workers.
KILLED_MAIN_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from test_identify_worker_faults import SleepOnLoad, _purchases_35
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
loaded = Identifier.load(jurisdiction="cn")
identifier = SleepOnLoad.__new__(SleepOnLoad)
identifier.__dict__.update(loaded.__dict__, creator_pid=os.getpid())
identify_step.identify_products(_purchases_35(), identifier, NoProgress(), workers=2)
"""


def _worker_processes(parent: int) -> list[int]:
    """Return the ids of the identify workers that `parent`'s threads started."""
    found = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"identify_worker" in command:
                found.append(int(child))
    return found


def _running(process_id: int) -> bool:
    """Tell whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{process_id}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find workers"
)
def test_killed_job_leaves_no_worker():
    # SIGKILL gives the main process no chance to stop its workers, so each
    # worker must end by itself once its pipes to the dead process close.
    script = KILLED_MAIN_SCRIPT.format(tests=str(Path(__file__).parent))
    main = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            assert main.poll() is None, "the main process ended before its workers"
            time.sleep(0.05)
            workers = _worker_processes(main.pid)
        assert len(workers) == 2
        # The workers then take their start-up data and sleep while they
        # load the identifier.
        time.sleep(1.0)
    finally:
        main.kill()
        main.wait()
    assert all(_running(worker) for worker in workers)
    deadline = time.monotonic() + SLEEP_ON_LOAD_SECONDS + 15
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [worker for worker in workers if _running(worker)] == []
    # The workers share the main process's standard error, and end quietly.
    assert "Traceback" not in main.stderr.read()
