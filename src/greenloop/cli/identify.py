"""Commands of the identify area: `greenloop identify` and `greenloop registry`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer

from greenloop.cli.errors import fail

JURISDICTIONS = ("cn", "us", "eu")

registry_app = typer.Typer(
    help="Import registries as dated snapshots for the identifier.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add `identify` and the `registry` command group to the application."""
    app.command("identify")(identify)
    app.add_typer(registry_app, name="registry")


def identify(
    title: str = typer.Argument(
        ..., metavar="TITLE", help="Product title as the merchant writes it."
    ),
    mcc: int = typer.Option(None, "--mcc", help="Merchant category code (4 digits)."),
    brand: str = typer.Option(None, "--brand", help="Brand name."),
    model_number: str = typer.Option(None, "--model-number", help="Model number."),
    merchant_id: str = typer.Option(None, "--merchant-id", help="Merchant id."),
    sku: str = typer.Option(None, "--sku", help="Merchant's SKU."),
    grade: int = typer.Option(
        None,
        "--grade",
        help="Energy-label grade from the purchase's own column (1 to 5).",
    ),
    certificate: str = typer.Option(
        None, "--certificate", help="Certificate or label code."
    ),
    label: list[str] = typer.Option(
        [],
        "--label",
        help="Sustainability label code, such as certificate:EU_ECOLABEL; repeatable.",
    ),
    standard: str = typer.Option(
        "cn", "--standard", help="Jurisdiction whose standards apply: cn, us or eu."
    ),
    registries: Path = typer.Option(
        None,
        "--registries",
        help="Registry folder with snapshot.yaml (dated registries).",
    ),
    energy_star: list[Path] = typer.Option(
        [], "--energy-star", help="ENERGY STAR export or snapshot CSV; repeatable."
    ),
    as_of: str = typer.Option(
        None, "--as-of", help="Identification date, ISO 8601. Default: today (UTC)."
    ),
) -> None:
    """Identify one product and print its verdict as JSON."""
    from greenloop.identify import Identifier, ProductQuery
    from greenloop.identify.energy_star import EnergyStarImportError
    from greenloop.identify.registries import RegistryError
    from greenloop.standards import StandardsError

    if standard not in JURISDICTIONS:
        fail(
            f"invalid --standard {standard!r}: expected one of "
            f"{', '.join(JURISDICTIONS)}"
        )
    if grade is not None and not 1 <= grade <= 5:
        fail(f"invalid --grade {grade}: expected a whole number from 1 to 5")
    try:
        identifier = Identifier.load(
            jurisdiction=standard,
            registry_dir=registries,
            energy_star_files=energy_star,
            as_of=_parse_date(as_of, "--as-of"),
        )
    except (RegistryError, EnergyStarImportError, StandardsError) as error:
        fail(str(error))
    query = ProductQuery(
        title=title,
        mcc=mcc,
        merchant_id=merchant_id,
        brand=brand,
        model_number=model_number,
        sku=sku,
        energy_label_grade=grade,
        certificate_id=certificate,
        label_codes=tuple(label),
    )
    verdict = identifier.identify(query)
    document = {
        **verdict.to_dict(),
        "jurisdiction": standard,
        "versions": identifier.versions(),
    }
    typer.echo(json.dumps(_jsonable(document), ensure_ascii=False, indent=2))


@registry_app.command("import-energy-star")
def import_energy_star(
    source: Path = typer.Argument(
        ..., metavar="FILE", help="ENERGY STAR certified-products export (CSV)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder that receives the dated snapshot CSV."
    ),
    product_type: str = typer.Option(
        None,
        "--product-type",
        help="Product type id, such as refrigerator. Default: detected from columns.",
    ),
    snapshot_date: str = typer.Option(
        None,
        "--snapshot-date",
        help="Date the export was taken, ISO 8601. Default: today (UTC).",
    ),
) -> None:
    """Write FILE's certified models as a dated snapshot the identifier can load."""
    from greenloop.identify.energy_star import (
        EnergyStarImportError,
        read_energy_star_file,
        write_snapshot,
    )

    day = _parse_date(snapshot_date, "--snapshot-date") or datetime.now(UTC).date()
    try:
        snapshot = read_energy_star_file(source, product_type)
    except EnergyStarImportError as error:
        fail(str(error))
    target = write_snapshot(snapshot, out, day)
    typer.echo(
        f"wrote {len(snapshot.records)} {snapshot.product_type} records of "
        f"{day.isoformat()} to {target}"
    )


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"invalid {option} {value!r}: expected an ISO date such as 2026-12-04")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
