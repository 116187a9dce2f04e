"""Evaluation: labels file parsing, scores, and the evaluate command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenloop.categories import Category, Status
from greenloop.cli import app
from greenloop.identify.evaluate import (
    LabelledItem,
    LabelsFileError,
    class_scores,
    confusion,
    evaluate,
    format_report,
    read_labels,
)
from greenloop.identify.verdict import ClaimFinding, Evidence, ProductQuery, Verdict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HANDWRITTEN = PROJECT_ROOT / "evaluation" / "handwritten.csv"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _item(
    status: Status, category: Category | None = None, trap: str | None = None
) -> LabelledItem:
    return LabelledItem(
        row=2,
        query=ProductQuery(title="t"),
        expected_status=status,
        expected_category=category,
        trap=trap,
    )


def _verdict(
    status: Status,
    category: Category | None = None,
    evidence: tuple[Evidence, ...] = (),
    claims: tuple[ClaimFinding, ...] = (),
) -> Verdict:
    return Verdict(
        status=status,
        category=category,
        standard_id=None,
        standard_version=None,
        evidence=evidence,
        claims=claims,
    )


def test_read_labels_fills_query(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "title,mcc,brand,label_codes,expected_status,expected_category,trap\n"
        "北京地铁,4111,,a; b,green,public_transport,\n"
        "GREEN CUP,,Acme,,not_green,,colour\n",
    )
    first, second = read_labels(path)
    assert first.query.mcc == 4111
    assert first.query.label_codes == ("a", "b")
    assert first.expected_category is Category.PUBLIC_TRANSPORT
    assert second.query.brand == "Acme"
    assert second.expected_category is None
    assert second.trap == "colour"
    assert second.row == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title\nx\n", "missing columns ['expected_status']"),
        ("title,expected_status,colour\nx,green,red\n", "unknown columns ['colour']"),
        ("title,expected_status\nx,greenish\n", "row 2: expected_status 'greenish'"),
        (
            "title,expected_status,expected_category\nx,green,furniture\n",
            "row 2: expected_category 'furniture'",
        ),
        ("title,expected_status,trap\nx,green,pattern\n", "row 2: trap 'pattern'"),
        ("title,expected_status,mcc\nx,green,41a1\n", "row 2: mcc '41a1'"),
        ("title,expected_status\n,green\n", "row 2: title is empty"),
    ],
)
def test_invalid_labels_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LabelsFileError, match=message.replace("[", r"\[")):
        read_labels(_write(tmp_path, text))


def test_missing_labels_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsFileError, match="not found"):
        read_labels(tmp_path / "absent.csv")


def test_class_scores_by_hand() -> None:
    expected = ["a", "a", "b", "b"]
    got = ["a", "b", "b", "b"]
    scores = class_scores(expected, got, ["a", "b"])
    assert scores["a"].precision == 1.0
    assert scores["a"].recall == 0.5
    assert scores["b"].precision == pytest.approx(2 / 3)
    assert scores["b"].recall == 1.0
    assert scores["b"].f1 == pytest.approx(0.8)


def test_class_scores_absent_label_zero() -> None:
    scores = class_scores(["a"], ["a"], ["a", "b"])
    assert scores["b"].precision == 0.0
    assert scores["b"].support == 0


def test_confusion_counts_pairs() -> None:
    matrix = confusion(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert matrix == {"a": {"a": 1, "b": 1}, "b": {"a": 0, "b": 1}}


def test_green_without_evidence_counted() -> None:
    verified = Evidence(kind="mcc", value="4111", source="mcc", verified=True)
    claimed = Evidence(kind="energy_label", value="1", source="title", verified=False)
    items = [_item(Status.GREEN)] * 3
    verdicts = [
        _verdict(Status.GREEN, evidence=(verified,)),
        _verdict(Status.GREEN, evidence=(claimed,)),
        _verdict(Status.GREEN),
    ]
    assert evaluate(items, verdicts).green_without_evidence == 2


def test_trap_rate_counts_flagged() -> None:
    claim = ClaimFinding(rule="r", kind="generic", term="eco", message="m")
    items = [_item(Status.NOT_GREEN, trap="colour")] * 4
    verdicts = [_verdict(Status.NOT_GREEN)] * 3 + [
        _verdict(Status.NOT_GREEN, claims=(claim,))
    ]
    traps = evaluate(items, verdicts).traps
    assert traps["colour"].rate == 0.25
    assert traps["all"].flagged == 1


def test_mismatch_lists_wrong_rows() -> None:
    items = [_item(Status.NOT_GREEN), _item(Status.NEEDS_REVIEW, Category.APPLIANCE)]
    verdicts = [_verdict(Status.NOT_GREEN), _verdict(Status.NEEDS_REVIEW)]
    report = evaluate(items, verdicts)
    assert len(report.mismatches) == 1
    assert report.mismatches[0]["expected"] == "needs_review/appliance"


def test_verdict_count_must_match() -> None:
    with pytest.raises(ValueError, match="one verdict per row"):
        evaluate([_item(Status.GREEN)], [])


def test_format_report_names_sections() -> None:
    report = evaluate([_item(Status.GREEN)], [_verdict(Status.GREEN)])
    text = format_report(report)
    assert "per status:" in text
    assert "status confusion" in text
    assert "per category:" in text


def test_evaluate_command_json() -> None:
    result = CliRunner().invoke(app, ["evaluate", str(HANDWRITTEN), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["rows"] > 50
    assert document["green_without_evidence"] == 0
    assert document["traps"]["all"]["rate"] <= 0.02
    assert set(document["status_confusion"]) == {"green", "needs_review", "not_green"}


def test_evaluate_command_rejects_standard() -> None:
    result = CliRunner().invoke(
        app, ["evaluate", str(HANDWRITTEN), "--standard", "mars"]
    )
    assert result.exit_code == 1
    assert "invalid --standard 'mars'" in result.output


def test_evaluate_command_bad_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "title\nx\n")
    result = CliRunner().invoke(app, ["evaluate", str(path)])
    assert result.exit_code == 1
    assert "missing columns" in result.output


def test_model_train_missing_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["model", "train", "--data", str(tmp_path / "absent")]
    )
    assert result.exit_code == 1
    assert "not found" in result.output


def test_online_retail_never_green(shared_data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    build = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "evaluation" / "build_labels.py"),
            "--data",
            str(shared_data),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    labels = tmp_path / "online-retail-all.csv"
    result = CliRunner().invoke(app, ["evaluate", str(labels), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["rows"] == 4224
    assert document["status_confusion"]["not_green"]["green"] == 0
    assert document["green_without_evidence"] == 0
    assert document["traps"]["all"]["rate"] <= 0.02


def test_evidence_set_with_sample_registries() -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(PROJECT_ROOT / "evaluation" / "evidence.csv"),
            "--registries",
            str(PROJECT_ROOT / "evaluation" / "registry-sample"),
            "--as-of",
            "2026-12-04",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["green_without_evidence"] == 0
    assert document["status_scores"]["green"]["precision"] == 1.0
    assert document["status_scores"]["green"]["recall"] == 1.0
