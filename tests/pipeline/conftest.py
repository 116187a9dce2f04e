"""Fixtures for run tests: a small demo sample written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenloop.pipeline.demo import DemoSample, write_demo


@pytest.fixture(scope="session")
def demo_sample(tmp_path_factory: pytest.TempPathFactory) -> DemoSample:
    """Write a 3,000-row demo sample with its registries."""
    folder = tmp_path_factory.mktemp("demo-input")
    return write_demo(folder, rows=3_000, seed=3, products=600)


@pytest.fixture
def user_secret_dir(tmp_path: Path) -> Path:
    """Return a key folder holding a fixed user-hashing secret."""
    folder = tmp_path / "keys"
    folder.mkdir()
    secret = folder / "user-hmac.key"
    secret.write_bytes(bytes(range(32)))
    secret.chmod(0o600)
    return folder


@pytest.fixture
def slow_main_judging(monkeypatch):
    """Return a function that makes the main process take SECONDS more per batch.

    Workers start in about a second, so without it the main process can judge
    every batch of a small input first. Workers import the module afresh, so
    they judge at full speed.
    """
    import time

    from greenloop.pipeline import identify_step

    def slow_down(seconds: float) -> None:
        judge = identify_step._judge

        def slow(identifier, batch):  # type: ignore[no-untyped-def]
            time.sleep(seconds)
            return judge(identifier, batch)

        monkeypatch.setattr(identify_step, "_judge", slow)

    return slow_down
