"""Commands of the standards area: `greenloop standards list|show`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import typer

from greenloop.cli.errors import fail

standards_app = typer.Typer(
    help="List and show the dated green-consumption standards with their sources.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `standards` command group to the application."""
    app.add_typer(standards_app, name="standards")


def _as_of(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"invalid --as-of {value!r}: expected an ISO date such as 2026-12-04")


@standards_app.command("list")
def list_standards(
    jurisdiction: str = typer.Option(
        None, "--standard", help="Only this jurisdiction: cn, us or eu. Default: all."
    ),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="Date whose values are shown, ISO 8601. Default: today (UTC).",
    ),
) -> None:
    """Print each standard's id, version on the date and title, then its sources."""
    from greenloop.standards import StandardsError, all_standards, load_standards

    day = _as_of(as_of)
    try:
        standards = (
            sorted(load_standards(jurisdiction).values(), key=lambda item: item.id)
            if jurisdiction
            else all_standards()
        )
    except StandardsError as error:
        fail(str(error))
    for standard in standards:
        version = standard.version(day) or "not in force"
        typer.echo(f"{standard.id:<26} {version:<12} {standard.title}")
        sources = {
            standard.source(name, day).title
            for name in standard.parameters
            if standard.in_force(day)
        }
        for title in sorted(sources):
            typer.echo(f"{'':<26} source: {title}")


@standards_app.command("show")
def show_standard(
    standard_id: str = typer.Argument(
        ..., metavar="ID", help="Standard id, for example cn.appliance."
    ),
    as_of: str = typer.Option(
        None,
        "--as-of",
        help="Date whose values are marked in force, ISO 8601. Default: today (UTC).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Print every parameter of one standard with its dated values and sources."""
    from greenloop.standards import StandardsError, load_standards

    day = _as_of(as_of)
    jurisdiction, _, _ = standard_id.partition(".")
    try:
        standards = load_standards(jurisdiction)
    except StandardsError as error:
        fail(str(error))
    matches = [item for item in standards.values() if item.id == standard_id]
    if not matches:
        known = ", ".join(sorted(item.id for item in standards.values()))
        fail(f"standard {standard_id!r} not found; known standards: {known}")
    standard = matches[0]
    document = {
        "id": standard.id,
        "title": standard.title,
        "summary": standard.summary,
        "version": standard.version(day),
        "evidence": list(standard.evidence),
        "registries": list(standard.registries),
        "parameters": {
            name: {
                "description": parameter.description,
                "unit": parameter.unit,
                "in_force": _in_force_date(parameter.values, day),
                "values": {
                    effective.isoformat(): dated.model_dump(
                        mode="json", exclude_none=True
                    )
                    for effective, dated in sorted(parameter.values.items())
                },
            }
            for name, parameter in standard.parameters.items()
        },
    }
    if as_json:
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    _print_text(document)


def _in_force_date(values: Mapping[date, object], day: date) -> str | None:
    in_force = [effective for effective in values if effective <= day]
    return max(in_force).isoformat() if in_force else None


def _print_text(document: Mapping[str, Any]) -> None:
    typer.echo(f"{document['id']}  version {document['version'] or 'not in force'}")
    typer.echo(f"{document['title']}")
    typer.echo(f"{document['summary']}")
    for name, parameter in document["parameters"].items():
        typer.echo("")
        typer.echo(f"{name} ({parameter['unit']}): {parameter['description']}")
        for effective, dated in parameter["values"].items():
            marker = "*" if effective == parameter["in_force"] else " "
            source = dated["source"]
            reference = source.get("url") or source.get("document")
            typer.echo(f" {marker} from {effective}: {dated['value']}")
            typer.echo(f"     source: {source['title']} <{reference}>")
            typer.echo(f"     last checked: {dated['last_checked']}")
            if dated.get("note"):
                typer.echo(f"     note: {dated['note']}")
