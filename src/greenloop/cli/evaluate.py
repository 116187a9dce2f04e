"""Commands of the evaluate area: `greenloop evaluate` and `greenloop model train`."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import typer

from greenloop.cli.errors import fail

JURISDICTIONS = ("cn", "us", "eu")
DATA_DIR_VARIABLE = "GREENLOOP_DATA_DIR"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"

model_app = typer.Typer(
    help="Train the category model that routes unevidenced items to review.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `evaluate` and the `model` command group to the application."""
    app.command("evaluate")(evaluate)
    app.add_typer(model_app, name="model")


def evaluate(
    labels: Path = typer.Argument(
        ...,
        metavar="LABELS.csv",
        help="CSV with title, expected_status and optional query and label columns.",
    ),
    standard: str = typer.Option(
        "cn", "--standard", help="Jurisdiction whose standards apply: cn, us or eu."
    ),
    registries: Path = typer.Option(
        None, "--registries", help="Registry folder with snapshot.yaml."
    ),
    energy_star: list[Path] = typer.Option(
        [],
        "--energy-star",
        help="ENERGY STAR export or snapshot CSV. Repeat the option for more files.",
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Identification date, ISO 8601. Default: today (UTC)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON instead of tables."
    ),
    mismatches: int = typer.Option(
        20, "--mismatches", help="Number of wrong rows to list after the tables."
    ),
) -> None:
    """Identify every row of LABELS.csv and print precision, recall and F1."""
    from greenloop.identify import Identifier
    from greenloop.identify import evaluate as scoring
    from greenloop.identify.energy_star import EnergyStarImportError
    from greenloop.identify.registries import RegistryError
    from greenloop.standards import StandardsError

    if standard not in JURISDICTIONS:
        expected = ", ".join(JURISDICTIONS)
        fail(f"invalid --standard {standard!r}: expected one of {expected}")
    day = _parse_date(as_of)
    try:
        items = scoring.read_labels(labels)
        identifier = Identifier.load(
            jurisdiction=standard,
            registry_dir=registries,
            energy_star_files=tuple(energy_star),
            as_of=day,
        )
    except (
        scoring.LabelsFileError,
        RegistryError,
        EnergyStarImportError,
        StandardsError,
    ) as error:
        fail(str(error))
    verdicts = identifier.identify_many([item.query for item in items])
    report = scoring.evaluate(items, verdicts)
    if as_json:
        document = report.to_dict() | {
            "labels": str(labels),
            "jurisdiction": standard,
            "versions": identifier.versions(),
        }
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))
        return
    typer.echo(scoring.format_report(report))
    if mismatches > 0 and report.mismatches:
        typer.echo(f"\nfirst {min(mismatches, len(report.mismatches))} mismatches:")
        for row in report.mismatches[:mismatches]:
            typer.echo(
                f"  row {row['row']}: {row['title']!r} expected {row['expected']}, "
                f"identified {row['identified']} ({row['reason']})"
            )


@model_app.command("train")
def train_model(
    data: Path = typer.Option(
        None,
        "--data",
        help=(
            f"Reference data folder. Default: ${DATA_DIR_VARIABLE}, else "
            f"{DEFAULT_DATA_DIR}."
        ),
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Artifact path (.npz); the card is written beside it as .json. "
        "Default: the artifact shipped in the package.",
    ),
    handwritten: Path = typer.Option(
        None,
        "--handwritten",
        help="Hand-written titles YAML. Default: the file shipped in the package.",
    ),
) -> None:
    """Rebuild the training set, retrain the category model and print its scores."""
    from greenloop.identify.model import ARTIFACT_NAME
    from greenloop.identify.training import TrainingDataError, retrain

    data_dir = data or Path(os.environ.get(DATA_DIR_VARIABLE, str(DEFAULT_DATA_DIR)))
    if not data_dir.is_dir():
        fail(
            f"data folder {data_dir} not found; pass --data DIR or set "
            f"{DATA_DIR_VARIABLE}"
        )
    target = out or Path(__file__).resolve().parents[1] / "identify" / "artifacts" / (
        ARTIFACT_NAME
    )
    try:
        result = retrain(data_dir, target, handwritten)
    except TrainingDataError as error:
        fail(str(error))
    card = result.model.card
    typer.echo(f"model {card['version']} written to {target}")
    scores = result.scores
    typer.echo(
        f"held-out titles: {scores['held_out_titles']}  accuracy: "
        f"{scores['accuracy']:.4f}  macro F1: {scores['macro_f1']:.4f}"
    )
    typer.echo(
        f"  {'class':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"
    )
    for label, row in scores["per_class"].items():
        typer.echo(
            f"  {label:<22}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>9}"
        )


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"invalid --as-of {value!r}: expected a date such as 2026-12-04")
