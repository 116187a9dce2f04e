"""The transparency-dev/merkle vectors: happy paths verify, every other case raises."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from greenloop.ledger import ProofError, verify_consistency, verify_inclusion


def _load(shared_data: Path, kind: str) -> list[tuple[str, dict[str, Any]]]:
    folder = shared_data / "merkle-vectors" / kind
    files = sorted(folder.glob("*/*.json"))
    assert files, f"no vectors under {folder}"
    return [
        (str(path.relative_to(folder)), json.loads(path.read_text())) for path in files
    ]


def _hashes(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(value) for value in values or []]


def test_inclusion_vectors_all_pass(shared_data: Path) -> None:
    vectors = _load(shared_data, "inclusion")
    assert len(vectors) == 49
    for name, case in vectors:
        arguments = (
            base64.b64decode(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            _hashes(case["proof"]),
            base64.b64decode(case["root"]),
        )
        if case["wantErr"]:
            with pytest.raises(ProofError):
                verify_inclusion(*arguments)
        else:
            assert verify_inclusion(*arguments) is None, name


def test_consistency_vectors_all_pass(shared_data: Path) -> None:
    vectors = _load(shared_data, "consistency")
    assert len(vectors) == 43
    for name, case in vectors:
        arguments = (
            case["size1"],
            case["size2"],
            _hashes(case["proof"]),
            base64.b64decode(case["root1"]),
            base64.b64decode(case["root2"]),
        )
        if case["wantErr"]:
            with pytest.raises(ProofError):
                verify_consistency(*arguments)
        else:
            assert verify_consistency(*arguments) is None, name


def test_vectors_have_six_happy_paths(shared_data: Path) -> None:
    cases = _load(shared_data, "inclusion") + _load(shared_data, "consistency")
    happy = [name for name, case in cases if not case["wantErr"]]
    assert len(happy) == 6
