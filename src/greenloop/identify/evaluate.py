"""Score the identifier against a labelled file of products.

A labels file is UTF-8 CSV with a header row. `title` and `expected_status` are
required. The optional columns `mcc`, `brand`, `model_number`, `merchant_id`,
`merchant_name`, `sku`, `energy_label_grade`, `certificate_id` and `label_codes`
(separated by semicolons) fill the product query. The optional columns
`expected_category` (empty for "no category"), `trap` and `note` describe the
row. `trap` is colour, material, function, substring or brand, for a text that
must not count as a claim.

The report gives precision, recall and F1 per status and per category, both
confusion matrices, the share of trap rows flagged as claims, and the number of
`green` verdicts that carry no verified evidence, which must be zero.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenloop.categories import Category, Status
from greenloop.identify.verdict import ProductQuery, Verdict

NO_CATEGORY = "none"
TRAP_KINDS = ("colour", "material", "function", "substring", "brand")
REQUIRED_COLUMNS = ("title", "expected_status")
OPTIONAL_COLUMNS = (
    "mcc",
    "brand",
    "model_number",
    "merchant_id",
    "merchant_name",
    "sku",
    "energy_label_grade",
    "certificate_id",
    "label_codes",
    "expected_category",
    "trap",
    "note",
)
STATUS_LABELS = tuple(status.value for status in Status)


class LabelsFileError(ValueError):
    """A labels file that cannot be read, with the row and column at fault."""


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One row of a labels file: the query to identify and the expected outcome."""

    row: int
    query: ProductQuery
    expected_status: Status
    expected_category: Category | None
    trap: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one class, with its support (expected rows)."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True, slots=True)
class TrapScores:
    """How many trap rows of one kind were flagged as claims."""

    rows: int
    flagged: int
    examples: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        """The share of rows flagged, 0 when there are no rows."""
        return self.flagged / self.rows if self.rows else 0.0


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Scores of one evaluation run."""

    rows: int
    status_accuracy: float
    status_scores: dict[str, ClassScores]
    status_confusion: dict[str, dict[str, int]]
    category_scores: dict[str, ClassScores]
    category_confusion: dict[str, dict[str, int]]
    traps: dict[str, TrapScores]
    green_without_evidence: int
    mismatches: tuple[dict[str, str], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return {
            "rows": self.rows,
            "status_accuracy": round(self.status_accuracy, 4),
            "status_scores": {
                k: _scores_dict(v) for k, v in self.status_scores.items()
            },
            "status_confusion": self.status_confusion,
            "category_scores": {
                k: _scores_dict(v) for k, v in self.category_scores.items()
            },
            "category_confusion": self.category_confusion,
            "traps": {
                kind: {
                    "rows": trap.rows,
                    "flagged": trap.flagged,
                    "rate": round(trap.rate, 4),
                    "examples": list(trap.examples),
                }
                for kind, trap in self.traps.items()
            },
            "green_without_evidence": self.green_without_evidence,
            "mismatches": list(self.mismatches),
        }


def read_labels(path: Path) -> list[LabelledItem]:
    """Read a labels CSV, raising LabelsFileError on the first invalid row."""
    if not path.is_file():
        raise LabelsFileError(f"labels file {path} not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise LabelsFileError(
                f"{path}: missing columns {missing}; the header must name at least "
                f"{list(REQUIRED_COLUMNS)}"
            )
        unknown = [
            name
            for name in columns
            if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS
        ]
        if unknown:
            raise LabelsFileError(
                f"{path}: unknown columns {unknown}; expected columns among "
                f"{list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
            )
        # Row 1 is the header, so the first data row is row 2 as editors show it.
        return [_parse_row(row, line, path) for line, row in enumerate(reader, start=2)]


def evaluate(
    items: Sequence[LabelledItem], verdicts: Sequence[Verdict]
) -> EvaluationReport:
    """Compare verdicts with the expected labels, row by row."""
    if len(items) != len(verdicts):
        raise ValueError(
            f"got {len(verdicts)} verdicts for {len(items)} labelled rows; "
            "expected one verdict per row"
        )
    expected_status = [item.expected_status.value for item in items]
    got_status = [verdict.status.value for verdict in verdicts]
    expected_category = [_category_label(item.expected_category) for item in items]
    got_category = [_category_label(verdict.category) for verdict in verdicts]
    category_labels = sorted(set(expected_category) | set(got_category))
    correct = sum(
        1 for want, got in zip(expected_status, got_status, strict=True) if want == got
    )
    return EvaluationReport(
        rows=len(items),
        status_accuracy=correct / len(items) if items else 0.0,
        status_scores=class_scores(expected_status, got_status, STATUS_LABELS),
        status_confusion=confusion(expected_status, got_status, STATUS_LABELS),
        category_scores=class_scores(expected_category, got_category, category_labels),
        category_confusion=confusion(expected_category, got_category, category_labels),
        traps=_trap_scores(items, verdicts),
        green_without_evidence=sum(
            1 for verdict in verdicts if _green_without_evidence(verdict)
        ),
        mismatches=_mismatches(items, verdicts),
    )


def class_scores(
    expected: Sequence[str], got: Sequence[str], labels: Sequence[str]
) -> dict[str, ClassScores]:
    """Return precision, recall and F1 per label; 0 where a ratio is undefined."""
    pairs = Counter(zip(expected, got, strict=True))
    expected_counts = Counter(expected)
    got_counts = Counter(got)
    scores = {}
    for label in labels:
        hits = pairs[(label, label)]
        precision = hits / got_counts[label] if got_counts[label] else 0.0
        recall = hits / expected_counts[label] if expected_counts[label] else 0.0
        total = precision + recall
        f1 = 2 * precision * recall / total if total else 0.0
        scores[label] = ClassScores(
            precision=precision,
            recall=recall,
            f1=f1,
            support=expected_counts[label],
            predicted=got_counts[label],
        )
    return scores


def confusion(
    expected: Sequence[str], got: Sequence[str], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Return counts keyed by expected label, then by the label the identifier gave."""
    pairs = Counter(zip(expected, got, strict=True))
    return {want: {have: pairs[(want, have)] for have in labels} for want in labels}


def format_report(report: EvaluationReport) -> str:
    """Render a report as plain-text tables."""
    lines = [f"rows: {report.rows}", f"status accuracy: {report.status_accuracy:.4f}"]
    lines += ["", "per status:", *_score_table(report.status_scores)]
    lines += ["", "status confusion (rows expected, columns identified):"]
    lines += _confusion_table(report.status_confusion)
    lines += ["", "per category:", *_score_table(report.category_scores)]
    lines += ["", "category confusion (rows expected, columns identified):"]
    lines += _confusion_table(report.category_confusion)
    if report.traps:
        lines += ["", "trap rows flagged as claims (target at most 2 %):"]
        for kind, trap in report.traps.items():
            lines.append(
                f"  {kind:<10} {trap.flagged:>5} of {trap.rows:>5}  {trap.rate:7.2%}"
            )
    lines += [
        "",
        f"green verdicts without verified evidence: {report.green_without_evidence}",
    ]
    return "\n".join(lines)


def _parse_row(row: dict[str, str | None], line: int, path: Path) -> LabelledItem:
    values = {key: (value or "").strip() for key, value in row.items() if key}
    if not values["title"]:
        raise LabelsFileError(
            f"{path}: row {line}: title is empty; every row needs one"
        )
    where = f"{path}: row {line}"
    return LabelledItem(
        row=line,
        query=_parse_query(values, line, path),
        expected_status=_parse_status(values["expected_status"], where),
        expected_category=_parse_category(values.get("expected_category", ""), where),
        trap=_parse_trap(values.get("trap", ""), where),
        note=values.get("note", ""),
    )


def _parse_query(values: dict[str, str], line: int, path: Path) -> ProductQuery:
    label_codes = values.get("label_codes", "").split(";")
    return ProductQuery(
        title=values["title"],
        mcc=_optional_int(values, "mcc", line, path),
        merchant_id=values.get("merchant_id") or None,
        merchant_name=values.get("merchant_name") or None,
        brand=values.get("brand") or None,
        model_number=values.get("model_number") or None,
        sku=values.get("sku") or None,
        energy_label_grade=_optional_int(values, "energy_label_grade", line, path),
        certificate_id=values.get("certificate_id") or None,
        label_codes=tuple(code.strip() for code in label_codes if code.strip()),
    )


def _parse_status(text: str, where: str) -> Status:
    try:
        return Status(text)
    except ValueError as error:
        raise LabelsFileError(
            f"{where}: expected_status {text!r} is invalid; "
            f"expected one of {list(STATUS_LABELS)}"
        ) from error


def _parse_category(text: str, where: str) -> Category | None:
    if not text or text == NO_CATEGORY:
        return None
    try:
        return Category(text)
    except ValueError as error:
        raise LabelsFileError(
            f"{where}: expected_category {text!r} is invalid; expected empty, "
            f"{NO_CATEGORY!r} or one of {[member.value for member in Category]}"
        ) from error


def _parse_trap(text: str, where: str) -> str | None:
    if not text:
        return None
    if text not in TRAP_KINDS:
        raise LabelsFileError(
            f"{where}: trap {text!r} is invalid; expected empty or one of "
            f"{list(TRAP_KINDS)}"
        )
    return text


def _optional_int(
    values: dict[str, str], column: str, line: int, path: Path
) -> int | None:
    text = values.get(column, "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError as error:
        raise LabelsFileError(
            f"{path}: row {line}: {column} {text!r} is not a whole number; "
            "leave it empty when unknown"
        ) from error


def _category_label(category: Category | None) -> str:
    return category.value if category is not None else NO_CATEGORY


def _green_without_evidence(verdict: Verdict) -> bool:
    if verdict.status is not Status.GREEN:
        return False
    return not any(evidence.verified for evidence in verdict.evidence)


def _trap_scores(
    items: Sequence[LabelledItem], verdicts: Sequence[Verdict]
) -> dict[str, TrapScores]:
    rows: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for item, verdict in zip(items, verdicts, strict=True):
        if item.trap is None:
            continue
        rows[item.trap] += 1
        if verdict.claims:
            flagged[item.trap] += 1
            examples.setdefault(item.trap, []).append(item.query.title)
    scores = {
        kind: TrapScores(rows[kind], flagged[kind], tuple(examples.get(kind, [])[:5]))
        for kind in TRAP_KINDS
        if rows[kind]
    }
    if scores:
        scores["all"] = TrapScores(sum(rows.values()), sum(flagged.values()))
    return scores


def _mismatches(
    items: Sequence[LabelledItem], verdicts: Sequence[Verdict]
) -> tuple[dict[str, str], ...]:
    found = []
    for item, verdict in zip(items, verdicts, strict=True):
        want_category = _category_label(item.expected_category)
        got_category = _category_label(verdict.category)
        if item.expected_status == verdict.status and want_category == got_category:
            continue
        found.append(
            {
                "row": str(item.row),
                "title": item.query.title,
                "expected": f"{item.expected_status.value}/{want_category}",
                "identified": f"{verdict.status.value}/{got_category}",
                "reason": verdict.reasons[0] if verdict.reasons else "",
            }
        )
    return tuple(found)


def _scores_dict(scores: ClassScores) -> dict[str, float | int]:
    return {
        "precision": round(scores.precision, 4),
        "recall": round(scores.recall, 4),
        "f1": round(scores.f1, 4),
        "support": scores.support,
        "predicted": scores.predicted,
    }


def _score_table(scores: dict[str, ClassScores]) -> list[str]:
    header = f"  {'label':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"
    lines = [header]
    for label, score in scores.items():
        lines.append(
            f"  {label:<22}{score.precision:>10.4f}{score.recall:>10.4f}"
            f"{score.f1:>10.4f}{score.support:>9}"
        )
    return lines


def _confusion_table(matrix: dict[str, dict[str, int]]) -> list[str]:
    labels = list(matrix)
    width = max([len(label) for label in labels] + [8]) + 2
    lines = ["  " + " " * width + "".join(f"{label:>{width}}" for label in labels)]
    for want in labels:
        cells = "".join(f"{matrix[want][got]:>{width}}" for got in labels)
        lines.append(f"  {want:<{width}}{cells}")
    return lines
