"""The run configurations that the job tests give the demo sample and small inputs."""

from __future__ import annotations

import sys
from pathlib import Path

from greenloop.pipeline.demo import DemoSample
from greenloop.pipeline.job import RunConfig, RunResult, run_job


def demo_config(sample: DemoSample, tmp_path: Path, keys: Path, url: str) -> RunConfig:
    """Return a config that runs the demo sample on `url` with the keys in `keys`."""
    return RunConfig(
        input_path=sample.purchases,
        out_dir=tmp_path / "runs",
        database_url=url,
        key_dir=keys,
        registry_dir=sample.registries,
        as_of=sample.as_of,
    )


def run_small(path: Path, tmp_path: Path, keys: Path, url: str) -> RunResult:
    """Run the job on the small input `path`, without finance, and return the result."""
    config = RunConfig(
        input_path=path,
        out_dir=tmp_path / "runs",
        database_url=url,
        key_dir=keys,
        facilities_path=None,
        campaigns_path=None,
    )
    return run_job(config)


def run_command(
    input_path: Path, sample: DemoSample, out: Path, keys: Path, url: str
) -> list[str]:
    """Return the `greenloop run` command line for `input_path` with the sample's
    registries, run by this interpreter."""
    return [
        sys.executable,
        "-m",
        "greenloop.cli",
        "run",
        str(input_path),
        "--out",
        str(out),
        "--database",
        url,
        "--key-dir",
        str(keys),
        "--registries",
        str(sample.registries),
    ]
