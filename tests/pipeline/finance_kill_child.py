"""Run the main job and kill this process with SIGKILL inside the finance step.

Usage: python finance_kill_child.py CONFIG_JSON FUNCTION CALL

CONFIG_JSON names the RunConfig fields as strings. FUNCTION is a function of
greenloop.store.finance. The process kills itself as the CALL-th call of it
returns, before the caller commits anything that follows. The award chunks
are made small, so the step has several transactions to stop between.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any

from greenloop.pipeline.job import RunConfig, run_job
from greenloop.store import finance

AWARD_CHUNK = 10


def kill_at_call(name: str, call: int) -> None:
    """Replace finance.NAME with a wrapper that sends SIGKILL after call CALL."""
    function = getattr(finance, name)
    calls = 0

    def wrapper(*arguments: Any, **keywords: Any) -> Any:
        nonlocal calls
        result = function(*arguments, **keywords)
        calls += 1
        if calls == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(finance, name, wrapper)


def main() -> None:
    fields = json.loads(sys.argv[1])
    finance.AWARD_CHUNK = AWARD_CHUNK
    kill_at_call(sys.argv[2], int(sys.argv[3]))
    run_job(
        RunConfig(
            input_path=Path(fields["input_path"]),
            out_dir=Path(fields["out_dir"]),
            database_url=fields["database_url"],
            key_dir=Path(fields["key_dir"]),
            registry_dir=Path(fields["registry_dir"]),
            as_of=date.fromisoformat(fields["as_of"]),
        )
    )
    sys.exit("the run finished before the kill point")


if __name__ == "__main__":
    main()
