"""Commands of the impact area: `greenloop factors` and `greenloop impact`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer

from greenloop.cli.errors import fail

JURISDICTIONS = ("cn", "us", "eu")

factors_app = typer.Typer(
    help="List and show the emission-factor sets with their sources.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `factors` command group and the `impact` command."""
    app.add_typer(factors_app, name="factors")
    app.command("impact")(impact)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _echo_json(document: Any) -> None:
    typer.echo(json.dumps(_jsonable(document), ensure_ascii=False, indent=2))


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"invalid {option} {value!r}: expected an ISO date such as 2026-12-04")


def _load_sets() -> dict[str, Any]:
    from greenloop.impact.factorsets import FactorSetError, load_packaged_factor_sets

    try:
        return load_packaged_factor_sets()
    except FactorSetError as error:
        fail(str(error))


@factors_app.command("list")
def list_factor_sets(
    as_json: bool = typer.Option(False, "--json", help="Print JSON, not a table."),
) -> None:
    """List the packaged factor sets with version, licence and size."""
    sets = _load_sets()
    rows = [
        {
            "id": factor_set.id,
            "version": factor_set.version,
            "title": factor_set.spec.title,
            "factors": len(factor_set.spec.factors),
            "licence": factor_set.spec.licence,
            "used_by_methods": factor_set.spec.for_methods,
            "last_checked": factor_set.spec.last_checked,
        }
        for factor_set in sorted(sets.values(), key=lambda item: item.id)
    ]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        marker = "" if row["used_by_methods"] else "  [not used by methods]"
        typer.echo(
            f"{row['id']:<26} {row['version']:<10} {row['factors']:>4} factors  "
            f"{row['title']}{marker}"
        )


@factors_app.command("show")
def show_factor_set(
    set_id: str = typer.Argument(
        None, metavar="[SET]", help="Factor set id, as `greenloop factors list` prints."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON, not text."),
) -> None:
    """Print the values of one factor set (or all) with unit, year and source."""
    sets = _load_sets()
    if set_id is not None and set_id not in sets:
        fail(f"factor set {set_id!r} not found; known sets: {', '.join(sorted(sets))}")
    chosen = [sets[set_id]] if set_id is not None else [sets[k] for k in sorted(sets)]
    if as_json:
        documents = [s.spec.model_dump(mode="json", exclude_none=True) for s in chosen]
        _echo_json(documents[0] if set_id is not None else documents)
        return
    for factor_set in chosen:
        spec = factor_set.spec
        typer.echo(f"{spec.id} {spec.version}: {spec.title}")
        typer.echo(f"  licence: {spec.licence}")
        if spec.attribution:
            typer.echo(f"  attribution: {spec.attribution}")
        if not spec.for_methods:
            typer.echo("  not used by any method: shown for reference only")
        for factor in spec.factors:
            year = f" ({factor.year})" if factor.year is not None else ""
            typer.echo(
                f"  {factor.id} = {factor.value:g} {factor.unit}{year} "
                f"[{factor.status}, checked {factor.last_checked.isoformat()}]"
            )
            source = factor.source.title
            if factor.source.url:
                source += f" <{factor.source.url}>"
            typer.echo(f"      source: {source}")
            if factor.scope:
                typer.echo(f"      scope: {factor.scope}")
        typer.echo("")


def _parse_amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        fail(f"invalid --amount {value!r}: expected a decimal number such as 1999.00")
    if not amount.is_finite() or amount < 0:
        fail(f"invalid --amount {value!r}: expected zero or a positive number")
    return amount


def impact(
    title: str = typer.Argument(
        ..., metavar="TITLE", help="Product title as the merchant writes it."
    ),
    region: str = typer.Option(
        None,
        "--region",
        help="Province or country of the purchase, e.g. 广东, CN-GD or GB.",
    ),
    quantity: float = typer.Option(
        1.0, "--quantity", help="Number of units (items, trips) bought."
    ),
    amount: str = typer.Option(
        None, "--amount", help="Line total in the currency's major unit, e.g. 3999.00."
    ),
    currency: str = typer.Option(
        None, "--currency", help="ISO 4217 code of --amount, e.g. CNY."
    ),
    mcc: int = typer.Option(None, "--mcc", help="Merchant category code (4 digits)."),
    brand: str = typer.Option(None, "--brand", help="Brand name."),
    model_number: str = typer.Option(None, "--model-number", help="Model number."),
    grade: int = typer.Option(
        None, "--grade", help="Energy-label grade from the purchase record (1 to 5)."
    ),
    standard: str = typer.Option(
        "cn", "--standard", help="Jurisdiction whose standards apply: cn, us or eu."
    ),
    registries: Path = typer.Option(
        None, "--registries", help="Registry folder with snapshot.yaml."
    ),
    energy_star: list[Path] = typer.Option(
        [], "--energy-star", help="ENERGY STAR export or snapshot CSV; repeatable."
    ),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="Date for identification and factor selection, ISO 8601. "
        "Default: today (UTC).",
    ),
) -> None:
    """Identify one product and print its Impact as JSON.

    The output contains the verdict, the activity-based Impact (null when the
    product is not green or its category has no activity method) and, with
    --amount and --currency, the spend-based footprint estimate, kept apart.
    """
    from greenloop.identify import Identifier, ProductQuery
    from greenloop.identify.energy_star import EnergyStarImportError
    from greenloop.identify.registries import RegistryError
    from greenloop.impact import FactorSetError, ImpactCalculator, normalize_region
    from greenloop.standards import StandardsError

    if standard not in JURISDICTIONS:
        fail(f"invalid --standard {standard!r}: expected one of cn, us, eu")
    if grade is not None and not 1 <= grade <= 5:
        fail(f"invalid --grade {grade}: expected a whole number from 1 to 5")
    if quantity < 0:
        fail(f"invalid --quantity {quantity:g}: expected zero or more units")
    region_code = normalize_region(region) if region is not None else None
    if region is not None and region_code is None:
        fail(
            f"unknown --region {region!r}: expected a Chinese province (广东, "
            "Guangdong, CN-GD) or a country name or ISO 3166 code (GB)"
        )
    spend_amount = _parse_amount(amount)
    if (spend_amount is None) != (currency is None):
        fail("--amount and --currency go together: give both or neither")
    day = _parse_date(as_of, "--as-of") or datetime.now(UTC).date()

    try:
        calculator = ImpactCalculator.load(day)
        identifier = Identifier.load(
            jurisdiction=standard,
            registry_dir=registries,
            energy_star_files=energy_star,
            as_of=day,
        )
    except (
        FactorSetError,
        RegistryError,
        EnergyStarImportError,
        StandardsError,
    ) as error:
        fail(str(error))
    if currency is not None and currency.upper() not in calculator.currencies:
        fail(
            f"unsupported --currency {currency!r}: spend estimates convert "
            f"{', '.join(sorted(calculator.currencies))}"
        )

    query = ProductQuery(
        title=title, mcc=mcc, brand=brand, model_number=model_number,
        energy_label_grade=grade,
    )  # fmt: skip
    verdict = identifier.identify(query)
    activity = calculator.impact(verdict, quantity, region_code)
    estimate = None
    if spend_amount is not None and currency is not None:
        category = str(verdict.category) if verdict.category is not None else None
        estimate = calculator.spend_estimate(
            spend_amount, currency, mcc, category, region_code, day.year
        )
    document = {
        "title": title,
        "region": region_code,
        "quantity": quantity,
        "verdict": {
            "status": verdict.status,
            "category": verdict.category,
            "standard_id": verdict.standard_id,
            "standard_version": verdict.standard_version,
            "attributes": verdict.attributes,
            "reasons": verdict.reasons,
        },
        "impact": activity.to_dict() if activity is not None else None,
        "spend_estimate": estimate.to_dict() if estimate is not None else None,
        "factor_versions": calculator.versions(),
    }
    _echo_json(document)
