"""The peak resident memory that the manifest records after each step."""

from __future__ import annotations

import pytest

from greenloop.pipeline import memory


def test_peak_never_falls(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([500, 499, 620])
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: next(readings))
    peaks: dict[str, int] = {}
    memory.record_peak(peaks, "ingest")
    memory.record_peak(peaks, "identify")
    memory.record_peak(peaks, "impact")
    assert peaks == {"ingest": 500, "identify": 500, "impact": 620}


def test_peak_ignores_worker_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: 510)
    peaks = {"identify": 500, "identify" + memory.WITH_WORKERS: 900}
    assert memory.record_peak(peaks, "impact") == 510
    assert peaks["identify" + memory.WITH_WORKERS] == 900


def test_peak_unknown_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "peak_rss_mib", lambda: None)
    peaks = {"ingest": 500}
    assert memory.record_peak(peaks, "identify") is None
    assert peaks == {"ingest": 500}
