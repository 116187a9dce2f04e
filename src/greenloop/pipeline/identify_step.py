"""The identify step: one verdict per distinct product, joined back to purchases."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import signal
import site
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import duckdb
import orjson
import pyarrow as pa

import greenloop
from greenloop.identify import Identifier
from greenloop.identify.verdict import ProductQuery, Verdict
from greenloop.pipeline import identify_worker
from greenloop.pipeline.impact_step import GreenFacts
from greenloop.pipeline.memory import cpu_seconds, peak_rss_mib
from greenloop.pipeline.progress import ProgressSink
from greenloop.pipeline.schema import PRODUCT_KEY_FIELDS

logger = logging.getLogger(__name__)

BATCH_PRODUCTS = 20_000
# The CPU quota of this process's cgroup (version 2): "max PERIOD" or
# "QUOTA PERIOD" in microseconds.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
# Below about this many distinct products, starting worker processes costs
# more than it saves.
PARALLEL_MIN_PRODUCTS = 3 * BATCH_PRODUCTS
# Once the main process has only the workers' batches left, it kills a worker
# that has held its batch for more than this many times the slowest batch
# judged so far, and judges the batch itself. A worker can be stuck without
# dying, for example when stopped by SIGSTOP or when the identifier loops.
# Batches are of one size, but one batch's products may need slower checks
# than those before, or the host may get busier, so the factor leaves room.
# It is a judgement, not a measurement. Killing a worker that was only slow
# costs one batch judged again, while waiting for a stuck one costs the whole
# grace period.
STRAGGLER_GRACE_FACTOR = 4
# The minimum grace period in seconds, because a process that the host keeps
# off the CPU, or pages back in from swap, can stall for seconds without being
# stuck, and early in a run few batch times are known.
STRAGGLER_GRACE_MIN_SECONDS = 10.0
# A worker that has not reported ready this many seconds after its start is
# killed, and the other processes judge its batches. Starting a worker and
# loading the identifier take about a second on an idle host, and the bound
# leaves room for slow imports from a cold disk cache or on a busy host. No
# process waits for a worker to become ready, so the bound only limits how
# long a stuck worker keeps its memory and CPU before it is reported.
WORKER_READY_TIMEOUT_SECONDS = 60.0
# The pool's watch thread reads the pool's clock this often, in seconds.
WATCH_INTERVAL_SECONDS = 0.5
# The pool's clock advances by at most this many seconds from one reading to
# the next, so a time in which this process did not run at all counts as this
# much. It is four watch intervals, so a host that keeps the process off the
# CPU for a moment does not slow the clock.
CLOCK_MAX_STEP_SECONDS = 4 * WATCH_INTERVAL_SECONDS

VERDICT_SCHEMA = pa.schema(
    [
        ("product_key", pa.uint64()),
        ("status", pa.string()),
        ("category", pa.string()),
        ("standard_id", pa.string()),
        ("standard_version", pa.string()),
        ("top_tier", pa.bool_()),
        ("model_category", pa.string()),
        ("model_score", pa.float64()),
        ("reasons", pa.string()),
        ("claims", pa.string()),
        ("claim_kinds", pa.string()),
        ("evidence", pa.string()),
        ("attributes", pa.string()),
        ("verdict_digest", pa.string()),
    ]
)


def query_from_row(row: dict[str, Any]) -> ProductQuery:
    """Build the identifier's query from one distinct product row."""
    labels = row.get("label_codes")
    return ProductQuery(
        title=row["title"],
        mcc=row.get("mcc"),
        merchant_id=row.get("merchant_id"),
        merchant_name=row.get("merchant_name"),
        brand=row.get("brand"),
        model_number=row.get("model_number"),
        sku=row.get("sku"),
        energy_label_grade=row.get("energy_label_grade"),
        certificate_id=row.get("certificate_id"),
        label_codes=tuple(code.strip() for code in labels.split(";") if code.strip())
        if labels
        else (),
    )


def _verdict_document(verdict: Verdict) -> bytes:
    # orjson turns the dataclasses, enums and dates into plain values in C.
    return orjson.dumps(verdict, option=orjson.OPT_NON_STR_KEYS, default=str)


def _verdict_columns(verdict: Verdict, raw: bytes) -> dict[str, Any]:
    from greenloop.ledger import canonical_json

    document = orjson.loads(raw)
    return {
        "status": document["status"],
        "category": document["category"],
        "standard_id": verdict.standard_id,
        "standard_version": verdict.standard_version,
        "top_tier": verdict.top_tier,
        "model_category": document["model_category"],
        "model_score": verdict.model_score,
        "reasons": _json_text(document["reasons"]),
        "claims": _json_text(document["claims"]),
        "claim_kinds": ";".join(sorted({claim.kind for claim in verdict.claims}))
        or None,
        "evidence": _json_text(document["evidence"]),
        "attributes": _json_text(document["attributes"]),
        "verdict_digest": hashlib.sha256(canonical_json(document)).hexdigest(),
    }


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def default_workers() -> int:
    """Return how many worker processes identify products beside this one: one
    per further CPU the process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cpu_quota()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(cpus - 1, 0)


def _cpu_quota(path: Path = CGROUP_CPU_MAX) -> int | None:
    """Return the CPUs a cgroup v2 quota allows this process, rounded up, or None.

    A container limited to 2 CPUs on a host with 64 may still see 64 CPUs in
    its affinity mask, so the quota is read as well.
    """
    try:
        fields = path.read_text(encoding="ascii").split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def identify_products(
    connection: duckdb.DuckDBPyConnection,
    identifier: Identifier,
    progress: ProgressSink,
    workers: int | None = 0,
) -> IdentifiedProducts:
    """Identify each distinct product of `purchases` into `product_verdicts`.

    The distinct products, with the fields their key covers, are kept in the
    table `products`. With `workers` above 0 (None for `default_workers()`),
    up to that many processes judge batches of products beside this one,
    which also stores the verdicts: no more than the estimated batches less
    one. Inputs whose estimated count of distinct products is under
    PARALLEL_MIN_PRODUCTS are judged here only. A batch's
    verdicts do not depend on which process judged it, because each batch is
    judged on its own.

    The workers are new interpreters that do not import the caller's main
    module, so a script needs no `if __name__ == "__main__":` guard. They
    unpickle the identifier, so its class must be importable by name, not
    defined in the main module: a worker that cannot load it fails to start,
    and this process judges its batches.
    """
    if workers is None:
        workers = default_workers()
    if workers > 0:
        # An estimate suffices, and it is known before the exact count, so the
        # workers can start while DuckDB finds the distinct products.
        estimate = connection.execute(
            "SELECT approx_count_distinct(product_key) FROM purchases"
        ).fetchall()[0][0]
        # This process judges batches too, so more workers than batches less
        # one would wait idle.
        batches = -(-estimate // BATCH_PRODUCTS)
        workers = min(workers, batches - 1)
        if estimate < PARALLEL_MIN_PRODUCTS:
            workers = 0
    with _worker_pool(identifier, workers) as pool:
        columns = ", ".join(
            f"any_value({name}) AS {name}" for name in PRODUCT_KEY_FIELDS
        )
        connection.execute(
            f"CREATE OR REPLACE TABLE products AS SELECT product_key, {columns} "
            f"FROM purchases GROUP BY product_key"
        )
        products = connection.sql(
            "SELECT * FROM products ORDER BY product_key"
        ).to_arrow_table()
        progress.start("identify", products.num_rows)
        identified = IdentifiedProducts(products.num_rows, GreenFacts())
        connection.register("verdict_empty", VERDICT_SCHEMA.empty_table())
        connection.execute(
            "CREATE OR REPLACE TABLE product_verdicts AS SELECT * FROM verdict_empty"
        )
        connection.unregister("verdict_empty")
        batches = products.to_batches(BATCH_PRODUCTS)
        # Batches come back out of order, and the green products are kept in
        # batch order, so the impact step numbers their facts the same way
        # whichever process judged them.
        green_of_batch: dict[int, GreenFacts] = {}
        for position, judged, worker in _judged_batches(identifier, batches, pool):
            green_of_batch[position] = judged.green
            connection.register("verdict_batch", judged.table)
            connection.execute(
                "INSERT INTO product_verdicts SELECT * FROM verdict_batch"
            )
            connection.unregister("verdict_batch")
            progress.advance(judged.table.num_rows)
            if worker is not None:
                number, usage = worker
                # Each report gives the worker's totals so far.
                identified.worker_usage[number] = usage
        identified.workers = len(identified.worker_usage)
        for position in sorted(green_of_batch):
            identified.green.extend(green_of_batch[position])
    progress.finish()
    return identified


@dataclass
class IdentifiedProducts:
    """The outcome of identification: the product count, the green products
    and the worker processes.

    `workers` counts the worker processes that judged a batch: a worker that
    starts after this process has judged the rest judges none. `worker_usage`
    contains the peak memory and CPU time of each of them, by worker number.
    """

    products: int
    green: GreenFacts
    workers: int = 0
    worker_usage: dict[int, WorkerUsage] = field(default_factory=dict)

    @property
    def worker_peak_mib(self) -> int | None:
        """The sum of the peaks of the workers that judged a batch, or None."""
        if not self.worker_usage:
            return None
        return sum(usage.peak_mib for usage in self.worker_usage.values())

    @property
    def worker_cpu_seconds(self) -> float:
        """The CPU seconds of the workers that judged a batch."""
        return sum(usage.cpu_seconds for usage in self.worker_usage.values())


class WorkerUsage(NamedTuple):
    """A worker process's peak resident memory in MiB and CPU seconds so far."""

    peak_mib: int
    cpu_seconds: float


class _WorkerPool:
    """Worker processes that judge batches, each driven by a thread of this process.

    Each worker is a new interpreter running greenloop.pipeline.identify_worker,
    with a pipe of its own from this process as its standard input and another
    back as its standard output. Its thread starts it, sends it the identifier,
    then sends it one batch at a time, waits for the verdicts, puts them on
    `results` and takes the next batch from the front of `unclaimed`. Only
    this process and the worker hold the pipes' ends, so when either dies the
    other reads end-of-file: a worker whose main process died exits. A worker
    that fails to start, dies or sends an unreadable reply is stopped, and its
    batch goes to `returned` for this process to judge.

    `_held` records the batch each worker has taken and when. A batch leaves
    it exactly once, under `_lock`: with the worker's verdicts, or when the
    worker is lost, or when this process stops the worker for keeping the
    batch too long (see STRAGGLER_GRACE_FACTOR). So no batch is judged twice
    or lost. `_starting` records each worker that has not yet reported ready,
    and the watch thread kills one that takes longer than
    WORKER_READY_TIMEOUT_SECONDS. Both periods are measured on `_clock`,
    which skips the time in which this process was suspended.

    The workers are not started through multiprocessing, because its workers
    import the caller's main module, which runs a script without an
    `if __name__ == "__main__":` guard again. Starting a worker and loading
    the identifier in it takes about a second, so the threads start the
    workers while this process goes on.
    """

    def __init__(
        self, identifier: Identifier, workers: int, target: Callable[..., None]
    ) -> None:
        self.results: queue.SimpleQueue[_WorkerReport] = queue.SimpleQueue()
        self.unclaimed: deque[int] = deque()
        self.returned: list[int] = []
        self.batches: Sequence[pa.RecordBatch] = ()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = False
        self._tried = threading.Semaphore(0)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._held: dict[int, _HeldBatch] = {}
        self._starting: dict[int, _StartingWorker] = {}
        self._slowest_batch_seconds = 0.0
        self._clock = _RunningClock()
        self._closed = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name="identify-watch", daemon=True
        )
        self._watcher.start()
        self._threads = [
            threading.Thread(
                target=self._drive,
                args=(number, target, identifier),
                name=f"identify-driver-{number}",
                daemon=True,
            )
            for number in range(1, workers + 1)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def started(self) -> int:
        """The number of worker processes that started."""
        with self._lock:
            return len(self._processes)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [process.pid for process in self._processes]

    def wait_for_starts(self) -> None:
        """Wait until every worker has started or failed to start."""
        for _ in self._threads:
            self._tried.acquire()
        for _ in self._threads:
            self._tried.release()

    def hand_out(self, batches: Sequence[pa.RecordBatch]) -> None:
        """Let the workers take `batches` from the front."""
        with self._lock:
            self.batches = batches
            self.unclaimed.extend(range(len(batches)))
        self._ready.set()

    def now(self) -> float:
        """Return the pool's clock in seconds (see _RunningClock)."""
        return self._clock.now()

    def claim_last(self) -> int | None:
        """Take a batch that a stopped worker gave back, or else the last batch
        no worker has taken, for this process to judge."""
        with self._lock:
            if self.returned:
                return self.returned.pop()
            return self.unclaimed.pop() if self.unclaimed else None

    def record_batch_seconds(self, seconds: float) -> None:
        """Count a batch that this process judged in `seconds` towards the
        grace period."""
        with self._lock:
            self._slowest_batch_seconds = max(self._slowest_batch_seconds, seconds)

    def wait_for_report(self) -> _WorkerReport:
        """Wait for a worker's report, and stop each worker that keeps its batch
        past the grace period.

        A stopped worker's report carries no verdicts, and its batch is in
        `returned`.
        """
        while True:
            try:
                return self.results.get(timeout=self._seconds_until_overdue())
            except queue.Empty:
                self._stop_stragglers()

    def _seconds_until_overdue(self) -> float | None:
        """Return the seconds until a held batch passes the grace period, or
        None when the workers have no batch."""
        with self._lock:
            if not self._held:
                return None
            grace = straggler_grace_seconds(self._slowest_batch_seconds)
            since = min(held.since for held in self._held.values())
        return max(0.0, since + grace - self._clock.now())

    def _stop_stragglers(self) -> None:
        """Kill each worker that keeps its batch past the grace period, and give
        the batch back for this process to judge."""
        now = self._clock.now()
        with self._lock:
            grace = straggler_grace_seconds(self._slowest_batch_seconds)
            overdue = _take_overdue(self._held, now, grace)
        for number, held in overdue.items():
            logger.warning(
                "identify worker %d (pid %d) held batch %d for %.1f s without "
                "replying, past the grace period of %.1f s; killing it, and the "
                "main process judges the batch",
                number,
                held.process.pid,
                held.position,
                now - held.since,
                grace,
            )
            # SIGKILL, because a stopped process acts on no other signal.
            held.process.kill()
            held.process.wait()
            self._give_back(held.position, number)

    def _claim_first(self, number: int, process: subprocess.Popen[bytes]) -> int | None:
        with self._lock:
            if self._closing or not self.unclaimed:
                return None
            position = self.unclaimed.popleft()
            self._held[number] = _HeldBatch(position, process, self._clock.now())
            return position

    def _deliver(self, report: _WorkerReport) -> bool:
        """Put a worker's reply on `results`, unless the worker no longer has
        the batch because this process stopped it meanwhile."""
        with self._lock:
            held = self._held.pop(report.worker, None)
            if held is None:
                return False
            if report.judged is not None:
                seconds = self._clock.now() - held.since
                self._slowest_batch_seconds = max(self._slowest_batch_seconds, seconds)
            self.results.put(report)
        return True

    def _give_back(self, position: int | None, number: int) -> None:
        """Put a batch in `returned` and wake the main loop to judge it."""
        with self._lock:
            if position is not None:
                self.returned.append(position)
            self.results.put(_WorkerReport(position, number, None, None, None))

    def _start(
        self, number: int, target: Callable[..., None], identifier: Identifier
    ) -> _Worker | None:
        """Start worker `number` and wait until it has loaded the identifier.

        Returns None when the worker failed to start or the pool is closing.
        """
        try:
            process, requests, replies = _launch_worker()
        except Exception as error:  # for example OSError: no such executable
            self._warn_not_started(number, None, error)
            return None
        with self._lock:
            self._processes.append(process)
            closing = self._closing
            if not closing:
                since = self._clock.now()
                self._starting[number] = _StartingWorker(process, since)
        if not closing:
            try:
                requests.send(sys.path)
                requests.send((target, identifier))
                reply = replies.recv()
                if reply != identify_worker.READY:
                    raise RuntimeError(f"unexpected first reply {reply!r}")
            except BaseException as error:  # a worker that does not start is left out
                # The watch thread has already reported a worker it killed.
                if self._leave_starting(number):
                    self._warn_not_started(number, process, error)
            else:
                if self._leave_starting(number):
                    return process, requests, replies
        _stop(process)
        requests.close()
        replies.close()
        return None

    def _leave_starting(self, number: int) -> bool:
        """Take worker `number` off `_starting`, and return False when the
        watch thread killed it first."""
        with self._lock:
            return self._starting.pop(number, None) is not None

    def _watch(self) -> None:
        """Read the clock every WATCH_INTERVAL_SECONDS, so that it skips a
        suspension, and kill workers that take too long to become ready."""
        while not self._closed.wait(WATCH_INTERVAL_SECONDS):
            self._stop_unready()

    def _stop_unready(self) -> None:
        """Kill each worker that has not reported ready within
        WORKER_READY_TIMEOUT_SECONDS of its start.

        Its driver thread then fails to send or receive, stops the process and
        gives no batch back, because the worker had none.
        """
        now = self._clock.now()
        timeout = WORKER_READY_TIMEOUT_SECONDS
        with self._lock:
            if self._closing:
                return
            overdue = _take_overdue(self._starting, now, timeout)
        for number, starting in overdue.items():
            logger.warning(
                "identify worker %d (pid %d) did not report ready within %.1f s "
                "of its start; killing it, and the other processes judge its "
                "batches",
                number,
                starting.process.pid,
                timeout,
            )
            # SIGKILL, because a stopped process acts on no other signal.
            starting.process.kill()

    def _warn_not_started(
        self,
        number: int,
        process: subprocess.Popen[bytes] | None,
        error: BaseException,
    ) -> None:
        if self._closing:
            return
        if process is None:
            # The text of subprocess's OSError names the executable.
            worker, cause = f"{number}", f"{type(error).__name__}: {error}"
        else:
            worker, cause = f"{number} (pid {process.pid})", _exit_cause(process)
            cause = f"{cause}, {error!r}"
        logger.warning(
            "identify worker %s did not start (%s); the main process judges its "
            "batches",
            worker,
            cause,
        )

    def _drive(
        self, number: int, target: Callable[..., None], identifier: Identifier
    ) -> None:
        try:
            started = self._start(number, target, identifier)
        finally:
            self._tried.release()
        if started is None:
            self._give_back(None, number)
            return
        process, requests, replies = started
        self._ready.wait()
        try:
            while (position := self._claim_first(number, process)) is not None:
                try:
                    requests.send(_compact(self.batches[position]))
                    judged, usage, failure = replies.recv()
                except BaseException as error:  # the batch goes back, see below
                    self._lose_worker(number, process, position, error)
                    return
                report = _WorkerReport(position, number, judged, usage, failure)
                if not self._deliver(report) or failure is not None:
                    return
        finally:
            requests.close()
            replies.close()

    def _lose_worker(
        self,
        number: int,
        process: subprocess.Popen[bytes],
        position: int,
        error: BaseException,
    ) -> None:
        """Stop a worker that failed to judge a batch, and give the batch back.

        The worker may have died, or its reply may not have reached this
        process (for example when unpickling it ran out of memory). A worker
        that the main process killed for keeping its batch too long no longer
        has it, and is left alone.
        """
        with self._lock:
            if self._held.pop(number, None) is None:
                return
        if not self._closing:
            logger.warning(
                "identify worker %d (pid %s) stopped with batch %d (%s, %r); the "
                "main process judges the batch",
                number,
                process.pid,
                position,
                _exit_cause(process),
                error,
            )
        _stop(process)
        self._give_back(position, number)

    def close(self) -> None:
        """Stop the workers: those still judging are ended, not waited for."""
        with self._lock:
            self._closing = True
            self.unclaimed.clear()
            self.returned.clear()
            processes = list(self._processes)
        self._ready.set()
        self._closed.set()
        for process in processes:
            _terminate(process)
        for process in processes:
            _stop(process)
        for thread in self._threads:
            thread.join(timeout=30)
        self._watcher.join(timeout=30)


# A running worker: its process and the pipes that carry requests and replies.
_Worker = tuple[subprocess.Popen[bytes], Connection, Connection]


class _HeldBatch(NamedTuple):
    """A batch a worker has taken: its position, the worker's process and the
    time on the pool's clock at which the worker took it."""

    position: int
    process: subprocess.Popen[bytes]
    since: float


class _StartingWorker(NamedTuple):
    """A worker that has not reported ready: its process and the time on the
    pool's clock at which it started."""

    process: subprocess.Popen[bytes]
    since: float


_Timed = TypeVar("_Timed", _HeldBatch, _StartingWorker)


def _take_overdue(
    waiting: dict[int, _Timed], now: float, limit: float
) -> dict[int, _Timed]:
    """Remove from `waiting` and return the entries that have waited `limit`
    seconds or more by `now`, keyed by worker number."""
    overdue = {
        number: entry for number, entry in waiting.items() if now - entry.since >= limit
    }
    for number in overdue:
        del waiting[number]
    return overdue


class _RunningClock:
    """A clock in seconds that skips most of the time in which this process
    was suspended.

    time.monotonic() runs on while the process is stopped, for example by
    Ctrl-Z (SIGTSTP) or SIGSTOP, so a worker stopped with the whole job would
    seem to have held its batch for all that time. Every thread of a stopped
    process stops, so the pool's watch thread, which reads this clock every
    WATCH_INTERVAL_SECONDS, finds a long gap after it continues. Each reading,
    by any thread, advances the clock by the time since the previous reading,
    but by no more than CLOCK_MAX_STEP_SECONDS. A call that keeps the GIL for
    longer also stops the watch thread, and the clock then runs slow, so a
    grace period can grow but never shrink.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_monotonic = time.monotonic()
        self._seconds = 0.0

    def now(self) -> float:
        """Return the seconds counted since the clock was created."""
        with self._lock:
            current = time.monotonic()
            step = current - self._last_monotonic
            self._last_monotonic = current
            self._seconds += min(step, CLOCK_MAX_STEP_SECONDS)
            seconds = self._seconds
        if step > CLOCK_MAX_STEP_SECONDS:
            logger.info(
                "the identify step's process did not run for %.1f s, for "
                "example because the job was suspended; the waits for the "
                "workers count only %.1f s of it",
                step,
                CLOCK_MAX_STEP_SECONDS,
            )
        return seconds


class _WorkerReport(NamedTuple):
    """A batch's outcome from one worker: the verdicts and the worker's usage,
    or the error the identifier raised in it.

    With neither, the worker stopped and gave its batch, if any, back.
    """

    position: int | None
    worker: int
    judged: JudgedBatch | None
    usage: WorkerUsage | None
    error: BaseException | None


def straggler_grace_seconds(slowest_batch_seconds: float) -> float:
    """Return how long a worker may hold a batch before it is taken to be stuck.

    It is STRAGGLER_GRACE_FACTOR times the slowest batch judged so far by any
    process, and at least STRAGGLER_GRACE_MIN_SECONDS.
    """
    return max(
        STRAGGLER_GRACE_MIN_SECONDS, STRAGGLER_GRACE_FACTOR * slowest_batch_seconds
    )


def _launch_worker() -> _Worker:
    """Start a worker interpreter with a request pipe as its standard input and
    a reply pipe as its standard output."""
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    # NOTE: in a program that embeds Python, sys.executable may be that program
    # and not an interpreter. The worker then fails to start, or the program
    # runs with these arguments.
    try:
        # -P (Python 3.11+) keeps the working directory off sys.path, where
        # `-m` would put it first, so a file such as signal.py there is not
        # imported in place of the standard module.
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", identify_worker.__name__],
            stdin=request_read,
            stdout=reply_write,
            env=_worker_environment(),
        )
    except BaseException:
        os.close(request_write)
        os.close(reply_read)
        raise
    finally:
        # The worker's ends stay open only in the worker, so its death closes
        # the pipes.
        os.close(request_read)
        os.close(reply_write)
    requests = Connection(request_write, readable=False)
    replies = Connection(reply_read, writable=False)
    return process, requests, replies


def _worker_environment() -> dict[str, str]:
    """Return this process's environment with the folder that greenloop was
    imported from first on PYTHONPATH.

    This process may import greenloop only through an entry that it added to
    sys.path itself, or through the working directory, and the worker must
    import greenloop before it receives this process's sys.path. Existing
    PYTHONPATH entries follow, except empty ones, which would put the
    working directory back on the worker's path. A site-packages folder is
    not added, because the worker finds it anyway, and on PYTHONPATH it would
    come before the standard library.
    """
    root = Path(greenloop.__file__).resolve().parent.parent
    entries = [
        entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry
    ]
    site_folders = {*site.getsitepackages(), site.getusersitepackages()}
    if not any(root == Path(folder).resolve() for folder in site_folders):
        entries.insert(0, str(root))
    environment = dict(os.environ)
    if entries:
        environment["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        environment.pop("PYTHONPATH", None)
    return environment


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM to a worker process that still runs, then SIGCONT, because
    a stopped process acts on SIGTERM only once it continues."""
    if process.poll() is None:
        process.terminate()
        process.send_signal(signal.SIGCONT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End a worker process if it still runs, and wait for it."""
    _terminate(process)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _exit_cause(process: subprocess.Popen[bytes]) -> str:
    try:
        code = process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return "still running"
    if code < 0:
        return f"ended by signal {-code}"
    return f"exited with status {code}"


@contextmanager
def _worker_pool(
    identifier: Identifier, workers: int, target: Callable[..., None] | None = None
) -> Iterator[_WorkerPool | None]:
    """Start `workers` processes, each with a copy of the identifier.

    Yields the pool, or None when `workers` is 0. On leaving, the workers
    are stopped, and batches not yet handed out are dropped.
    """
    if workers <= 0:
        yield None
        return
    pool = _WorkerPool(identifier, workers, target or _serve)
    try:
        yield pool
    finally:
        pool.close()


def _compact(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Return `batch` with buffers of its own rows only.

    A batch cut from a larger chunk shares that chunk's buffers, and pickling
    it sends them whole: a batch of 20,000 products had carried a chunk of
    122,880, six times the bytes, through the pipe and into the worker.
    """
    return pa.concat_batches([batch])


def _judged_batches(
    identifier: Identifier,
    batches: Sequence[pa.RecordBatch],
    pool: _WorkerPool | None,
) -> Iterator[tuple[int, JudgedBatch, tuple[int, WorkerUsage] | None]]:
    """Yield each batch's position and verdicts as soon as the batch is judged.

    The workers take batches from the front. While no worker's verdicts are
    waiting, this process judges a batch that a stopped worker gave back, or
    else the last batch not yet taken, so no process waits while batches
    remain. Once only the workers' batches remain, this process waits for
    them, and kills a worker that keeps its batch past the grace period
    (straggler_grace_seconds) to judge that batch itself. The third item is
    the number of the worker that judged the batch and its usage so far, or
    None when this process judged it.
    """
    if pool is None:
        for position, batch in enumerate(batches):
            yield position, _judge(identifier, batch), None
        return
    pool.hand_out(batches)
    remaining = len(batches)
    while remaining:
        try:
            report = pool.results.get_nowait()
        except queue.Empty:
            last = pool.claim_last()
            if last is not None:
                remaining -= 1
                started = pool.now()
                judged = _judge(identifier, batches[last])
                pool.record_batch_seconds(pool.now() - started)
                yield last, judged, None
                continue
            report = pool.wait_for_report()
        if report.error is not None:
            raise report.error
        if report.judged is None:
            # A worker stopped, and its batch, if it held one, is in `returned`.
            continue
        assert report.position is not None and report.usage is not None
        remaining -= 1
        yield report.position, report.judged, (report.worker, report.usage)


def _serve(requests: Connection, replies: Connection, identifier: Identifier) -> None:
    """Judge each batch that arrives on `requests` and send back its verdicts.

    Each reply is (JudgedBatch, WorkerUsage, None), or (None, None, error),
    after which the worker stops. The worker ends when `requests` closes.
    It runs in a worker process (see greenloop.pipeline.identify_worker).
    """
    while True:
        try:
            batch = requests.recv()
        except (EOFError, OSError):
            return
        try:
            judged = _judge(identifier, batch)
            usage = WorkerUsage(peak_rss_mib() or 0, round(cpu_seconds(), 3))
            reply: tuple[Any, ...] = (judged, usage, None)
        except Exception as error:  # sent to the main process
            reply = (None, None, _sendable(error))
        try:
            replies.send(reply)
        except OSError:
            return
        if reply[2] is not None:
            return


def _sendable(error: Exception) -> BaseException:
    """Return `error` if it survives pickling, or a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # any pickling failure
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


@dataclass(frozen=True)
class JudgedBatch:
    """One batch's VERDICT_SCHEMA rows, in the batch's order, and its green products."""

    table: pa.Table
    green: GreenFacts


def _judge(identifier: Identifier, batch: pa.RecordBatch) -> JudgedBatch:
    verdicts = identifier.identify_many(
        [query_from_row(row) for row in batch.to_pylist()]
    )
    keys = batch.column("product_key")
    green = GreenFacts()
    for key, verdict in zip(keys.to_pylist(), verdicts, strict=True):
        green.add(key, verdict)
    return JudgedBatch(_verdict_table(keys, verdicts), green)


def _verdict_table(keys: pa.Array, batch_verdicts: list[Verdict]) -> pa.Table:
    """Return the VERDICT_SCHEMA rows of one batch.

    Many products get equal verdicts, and the identifier returns one object
    for products it judged alike. Each distinct verdict is flattened and
    digested once, and its row is repeated with `take`.
    """
    position_of: dict[int, int] = {}
    position_of_document: dict[bytes, int] = {}
    distinct: list[dict[str, Any]] = []
    positions = []
    for verdict in batch_verdicts:
        position = position_of.get(id(verdict))
        if position is None:
            raw = _verdict_document(verdict)
            position = position_of_document.get(raw)
            if position is None:
                position = position_of_document[raw] = len(distinct)
                distinct.append(_verdict_columns(verdict, raw))
            position_of[id(verdict)] = position
        positions.append(position)
    names = VERDICT_SCHEMA.names[1:]
    flattened = pa.Table.from_pydict(
        {name: [row[name] for row in distinct] for name in names},
        schema=pa.schema([VERDICT_SCHEMA.field(name) for name in names]),
    ).take(pa.array(positions, pa.int32()))
    return flattened.add_column(0, VERDICT_SCHEMA.field("product_key"), keys)
