"""A PostgreSQL store that cannot be reached: a bounded wait and a one-line error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from greenloop.store import base

URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:{port}/test"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Yield the port of a loopback listener that accepts and never replies."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def test_silent_server_times_out(silent_port, monkeypatch):
    monkeypatch.setattr(base, "POSTGRESQL_CONNECT_TIMEOUT_SECONDS", 1)
    engine = base.make_engine(URL_TEMPLATE.format(port=silent_port))
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            engine.connect().close()
        except BaseException as error:  # recorded for the main thread
            outcome.append(error)
        else:
            outcome.append(None)

    started = time.monotonic()
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the connection attempt did not time out"
    assert time.monotonic() - started < 10
    assert isinstance(outcome[0], OperationalError)
    engine.dispose()


def test_url_connect_timeout_kept():
    engine = base.make_engine(URL_TEMPLATE.format(port=5432) + "?connect_timeout=3")
    arguments = engine.dialect.create_connect_args(engine.url)
    assert arguments[1]["connect_timeout"] == "3"
    engine.dispose()


def test_unreachable_store_one_line(closed_port, tmp_path):
    environment = {**os.environ, "GREENLOOP_LOG_LEVEL": "WARNING"}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from greenloop.cli import main; main()",
            "runs",
            "list",
            "--database",
            URL_TEMPLATE.format(port=closed_port),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
    )
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: database error: connection failed")
    assert str(closed_port) in lines[0]
    assert "Traceback" not in completed.stderr
