"""Load benchmark of `POST /v1/checkout/decisions` with wrk, on loopback only.

Starts `greenloop serve` (one uvicorn worker process) on 127.0.0.1 with a fresh
SQLite database and a merchant key, drives it with wrk for a fixed time, and
prints the throughput and latency percentiles as JSON. The request rotates over
a few products so the verdict cache is warm, as it is for a real catalogue.

    .venv/bin/python benchmarks/checkout_bench.py --duration 30 --connections 16

Needs wrk on PATH (Debian package `wrk`). The per-key rate limit is raised for
the run, because one key sends every request.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PRODUCTS = (
    {"title": "一级能效 变频冰箱 BCD-520", "brand": "Haier", "model_number": "BCD-520",
     "energy_label_grade": 1, "amount": "3999.00", "sku": "fridge-520"},
    {"title": "滚筒洗衣机 10kg 一级能效", "brand": "Midea", "model_number": "MG100",
     "energy_label_grade": 1, "amount": "2599.00", "sku": "washer-100"},
    {"title": "有机 大米 5kg", "amount": "89.90", "sku": "rice-5"},
    {"title": "Cotton T-shirt", "amount": "59.00", "sku": "shirt-1"},
)  # fmt: skip
LUA_TEMPLATE = """
local bodies = {BODIES}
local counter = 0
request = function()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/v1/checkout/decisions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer {KEY}",
  }, body)
end
"""


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, timeout_seconds: float) -> None:
    """Poll the OpenAPI document until the server responds or the time runs out."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/openapi.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"server at {url} not ready after {timeout_seconds} s")


def create_key(greenloop: str, database: str, environment: dict[str, str]) -> str:
    """Create a merchant key with the CLI and return it."""
    output = subprocess.run(
        [greenloop, "apikey", "create", "--role", "merchant", "--tenant", "m-bench",
         "--database", database],
        check=True, capture_output=True, text=True, env=environment,
    )  # fmt: skip
    return output.stdout.strip().splitlines()[-1]


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def parse_wrk(output: str) -> dict[str, float]:
    """Return requests per second and latency percentiles (ms) from wrk --latency."""
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    result: dict[str, float] = {}
    for percentile in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if match:
            result[f"p{percentile}_ms"] = float(match.group(1)) * units[match.group(2)]
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if rate:
        result["requests_per_second"] = float(rate.group(1))
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if total:
        result["requests"] = float(total.group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def main() -> int:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument(
        "--warmup", type=int, default=5, help="seconds before measuring"
    )
    parser.add_argument("--connections", type=int, default=16, help="open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    arguments = parser.parse_args()

    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found; install the Debian package `wrk`", file=sys.stderr)
        return 2
    greenloop = str(Path(sys.executable).with_name("greenloop"))
    folder = Path(tempfile.mkdtemp(prefix="checkout-bench-"))
    database = f"sqlite:///{folder / 'bench.sqlite3'}"
    environment = {
        **os.environ,
        "GREENLOOP_RATE_LIMIT_PER_MINUTE": "100000000",
        "GREENLOOP_RATE_LIMIT_BURST": "100000",
        "GREENLOOP_KEY_DIR": str(folder / "keys"),
        "GREENLOOP_LOG_LEVEL": "WARNING",
    }
    key = create_key(greenloop, database, environment)
    port = free_port()
    url = f"http://{HOST}:{port}"
    server = subprocess.Popen(
        [greenloop, "serve", "--host", HOST, "--port", str(port),
         "--database", database],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(url, timeout_seconds=120)
        bodies = ", ".join(
            "[[" + json.dumps(body, ensure_ascii=False) + "]]" for body in PRODUCTS
        )
        script = folder / "decisions.lua"
        script.write_text(
            LUA_TEMPLATE.replace("{BODIES}", "{" + bodies + "}").replace("{KEY}", key),
            encoding="utf-8",
        )
        common = [wrk, "-t", str(arguments.threads), "-c", str(arguments.connections),
                  "-s", str(script), "--latency"]  # fmt: skip
        subprocess.run(
            [*common, "-d", f"{arguments.warmup}s", url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        cpu_before = cpu_seconds(server.pid)
        measured = subprocess.run(
            [*common, "-d", f"{arguments.duration}s", url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    figures: dict[str, Any] = dict(parse_wrk(measured.stdout))
    requests = figures.get("requests", 0.0)
    figures.update(
        {
            "server_cpu_ms_per_request": (
                round(server_cpu * 1000 / requests, 3) if requests else None
            ),
            "duration_s": arguments.duration,
            "connections": arguments.connections,
            "wrk_threads": arguments.threads,
            "load_average": os.getloadavg()[0],
        }
    )
    print(measured.stdout, file=sys.stderr)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
