"""The collector pause restores the collector's state, even after an error."""

from __future__ import annotations

import gc

import pytest

from greenloop.collector import collector_paused


def test_pause_then_restore() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_restore_after_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("batch failed")
    assert gc.isenabled()


def test_stays_off_when_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
