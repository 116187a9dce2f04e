"""The run rows that the run-status and heartbeat tests record."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def run_row(run_id: str, started_at: datetime) -> dict[str, Any]:
    """Return the start record of a run of a made-up CSV input."""
    return {
        "run_id": run_id,
        "input_path": "purchases.csv",
        "input_sha256": "0" * 64,
        "standard": "cn",
        "started_at": started_at,
    }
