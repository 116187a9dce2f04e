"""Restarting PostgreSQL mid-load loses no confirmed award and duplicates none.

The test starts a throwaway PostgreSQL cluster of its own (initdb into a
temporary folder, loopback only, a free port), so the shared server on port
5432 is never touched. It serves the API on 127.0.0.1 in a thread, sends
confirmations from several clients that retry with the same Idempotency-Key
on any failure, crashes and restarts the cluster in the middle, and then
checks every confirmed purchase against the database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from service_support import RuleIdentifier
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from greenloop.api.app import create_app
from greenloop.api.platform import FeeOffers, Platform
from greenloop.api.settings import Settings
from greenloop.api.wiring import FinanceAwards
from greenloop.certify import Role
from greenloop.store import repositories
from greenloop.store.base import make_engine
from greenloop.store.finance import finance_allocations, finance_loans
from greenloop.store.ledger import ledger_entries
from greenloop.store.models import checkout_confirmations
from greenloop.store.schema import upgrade

pytestmark = pytest.mark.slow

CLIENTS = 3
PURCHASES_PER_CLIENT = 20
RETRY_DEADLINE_SECONDS = 60.0


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster on loopback, run as the postgres user."""

    def __init__(self, bin_dir: Path, folder: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = port

    def _run(self, *arguments: str) -> None:
        command = [str(self.bin_dir / arguments[0]), *arguments[1:]]
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c fsync=on"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-w", "-t", "60",
            "-l", str(self.folder / "server.log"), "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = _postgres_bin()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql")
    folder = Path(tempfile.mkdtemp(prefix="greenloop-restart-"))
    # The postgres user must reach the cluster folder inside it.
    folder.chmod(0o755)
    server = Cluster(bin_dir, folder / "cluster", _free_port())
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _serve(
    engine: Engine, key_dir: Path
) -> tuple[uvicorn.Server, threading.Thread, str]:
    settings = Settings(
        database_url=str(engine.url),
        key_dir=key_dir,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=100_000,
    )
    platform = Platform(
        engine=engine,
        identifier_factory=RuleIdentifier,
        fee_offers=FeeOffers(),
        awards=FinanceAwards(
            engine,
            facilities_path=settings.facilities_path,
            campaigns_path=settings.campaigns_path,
            key_dir=key_dir,
        ),
    )
    app = create_app(settings, engine=engine, platform=platform)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _confirm_all(
    base_url: str,
    key: str,
    client_number: int,
    confirmed: dict[str, dict],
    failed_attempts: list[int],
) -> None:
    """Confirm this client's purchases, retrying each with its own key until done."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for number in range(PURCHASES_PER_CLIENT):
            purchase_id = f"p-{client_number}-{number}"
            body = {
                "title": "一级能效 冰箱",
                "amount": "2999.00",
                "energy_label_grade": 1,
                "purchase_id": purchase_id,
                "user_id": f"u-{client_number}",
                "installments": 12,
                "region": "CN-SH",
            }
            deadline = time.monotonic() + RETRY_DEADLINE_SECONDS
            while time.monotonic() < deadline:
                try:
                    response = client.post(
                        "/v1/checkout/confirmations",
                        json=body,
                        headers={**headers, "Idempotency-Key": f"key-{purchase_id}"},
                    )
                except httpx.HTTPError:
                    failed_attempts.append(0)
                    time.sleep(0.2)
                    continue
                if response.status_code in (200, 201):
                    confirmed[purchase_id] = response.json()
                    break
                failed_attempts.append(response.status_code)
                time.sleep(0.2)


def test_restart_loses_no_confirmed_award(cluster: Cluster, tmp_path: Path) -> None:
    engine = make_engine(cluster.url)
    upgrade(engine)
    with engine.begin() as connection:
        key, _ = repositories.create_api_key(
            connection,
            role=Role.MERCHANT,
            tenant_id="m-1",
            label="restart",
            now=datetime.now(UTC),
        )
    server, thread, base_url = _serve(engine, tmp_path / "keys")
    confirmed: dict[str, dict] = {}
    failed_attempts: list[int] = []
    clients = [
        threading.Thread(
            target=_confirm_all,
            args=(base_url, key, number, confirmed, failed_attempts),
        )
        for number in range(CLIENTS)
    ]
    try:
        for client in clients:
            client.start()
        while len(confirmed) < CLIENTS * PURCHASES_PER_CLIENT // 3:
            time.sleep(0.05)
        confirmed_before_crash = len(confirmed)
        cluster.stop("immediate")
        time.sleep(1.0)
        cluster.start()
        for client in clients:
            client.join(timeout=RETRY_DEADLINE_SECONDS * 2)
    finally:
        server.should_exit = True
        thread.join(timeout=30)

    with engine.connect() as connection:
        confirmations = {
            row.purchase_id: row
            for row in connection.execute(select(checkout_confirmations)).all()
        }
        loan_ids = list(
            connection.execute(select(finance_loans.c.purchase_id)).scalars()
        )
        active_allocations = connection.execute(
            select(finance_allocations.c.purchase_id, func.count())
            .where(finance_allocations.c.released_on.is_(None))
            .group_by(finance_allocations.c.purchase_id)
        ).all()
        ledger_keys = list(
            connection.execute(select(ledger_entries.c.purchase_id)).scalars()
        )
    engine.dispose()

    expected = CLIENTS * PURCHASES_PER_CLIENT
    assert confirmed_before_crash < expected
    # The crash made requests fail with 503, which the clients retried.
    assert 503 in failed_attempts
    assert len(confirmed) == expected
    assert set(confirmed) <= set(confirmations)
    assert len(confirmations) == expected
    for purchase_id, response in confirmed.items():
        assert response["awards"] == confirmations[purchase_id].awards, purchase_id
        assert response["awards"][0]["kind"] == "green_loan", purchase_id
    assert sorted(loan_ids) == sorted(confirmed)
    assert all(count == 1 for _purchase, count in active_allocations)
    assert len(ledger_keys) == len(set(ledger_keys))
    assert set(confirmed) <= set(ledger_keys)
