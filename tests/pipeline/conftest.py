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
