"""Commands of the incentives area: draws, their verification, config checks.

`greenloop draw commit` and `greenloop draw reveal` work either on files (an
entry list, one id a line) or on a campaign stored by the batch run
(`--campaign` or `--draw-id` with `--database`). `greenloop verify-draw FILE`
recomputes a published draw from the file alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from greenloop.cli.errors import fail
from greenloop.cli.stores import existing_store_url

draw_app = typer.Typer(help="Run commit-reveal lottery draws.", no_args_is_help=True)
facilities_app = typer.Typer(
    help="Check funding facility files and stored facilities.", no_args_is_help=True
)
campaigns_app = typer.Typer(
    help="Check incentive campaign files.", no_args_is_help=True
)
STORE_DATABASE_OPTION = typer.Option(
    None,
    "--database",
    help=(
        "SQLAlchemy URL of the store the batch run wrote, such as "
        "sqlite:///runs/greenloop.sqlite3 for `greenloop demo`. Default: "
        "GREENLOOP_DATABASE_URL, else the SQLite file greenloop.sqlite3 in the "
        "current folder."
    ),
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the application."""
    app.command("verify-draw")(verify_draw_command)
    app.add_typer(draw_app, name="draw")
    app.add_typer(facilities_app, name="facilities")
    app.add_typer(campaigns_app, name="campaigns")


def verify_draw_command(
    record_path: Path = typer.Argument(..., help="A draw record JSON file."),
) -> None:
    """Recompute a published draw's winners from its seed and entries."""
    from greenloop.incentives.draws import DrawError, read_record, verify_record

    try:
        record = read_record(record_path)
    except DrawError as error:
        fail(str(error))
    problems = verify_record(record)
    if problems:
        for problem in problems:
            typer.echo(f"invalid: {problem}", err=True)
        raise typer.Exit(1)
    commitment = record.commitment
    typer.echo(
        f"valid: draw {commitment.draw_id}, {commitment.entry_count} entries,"
        f" {len(record.winners)} winners recomputed from the revealed seed"
    )
    for rank, winner in enumerate(record.winners, start=1):
        typer.echo(f"{rank}\t{winner}")


@draw_app.command("commit")
def draw_commit_command(
    seed_file: Path = typer.Option(
        ..., "--seed-file", help="Where to write the new secret seed (hex, mode 0600)."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the commitment JSON."),
    entries_path: Path | None = typer.Option(
        None, "--entries", help="Entry list file, one entry id a line."
    ),
    winners: int | None = typer.Option(
        None, "--winners", help="Number of winners (file mode)."
    ),
    campaign: str | None = typer.Option(
        None, "--campaign", help="Lottery campaign id stored by the batch run."
    ),
    database: str | None = STORE_DATABASE_OPTION,
    draw_id: str | None = typer.Option(None, "--draw-id", help="Draw id (file mode)."),
    public_value: str = typer.Option(
        "",
        "--public-value",
        help="A public random value fixed in advance, such as a drand round's output.",
    ),
) -> None:
    """Create a secret seed and publish the SHA-256 of it and of the entries."""
    from greenloop.incentives.draws import (
        DrawError,
        commit,
        commitment_to_dict,
        new_seed,
        seed_digest,
    )

    if seed_file.exists():
        fail(f"seed file {seed_file} exists; choose a new path, a seed is used once")
    seed = new_seed()
    try:
        if campaign is not None:
            from greenloop.store.base import make_engine
            from greenloop.store.finance import commit_campaign_draw

            commitment = commit_campaign_draw(
                make_engine(existing_store_url(database)),
                campaign,
                seed_digest(seed),
                public_value,
            )
        else:
            if entries_path is None or winners is None:
                fail("pass --campaign, or --entries FILE and --winners N")
            entries = _read_entries(entries_path)
            commitment = commit(
                draw_id or entries_path.stem, seed, entries, winners, public_value
            )
    except (DrawError, KeyError, ValueError) as error:
        fail(str(error.args[0]) if error.args else str(error))
    _write_secret(seed_file, seed.hex() + "\n")
    out.write_text(json.dumps(commitment_to_dict(commitment), indent=2) + "\n")
    typer.echo(
        f"committed draw {commitment.draw_id}: seed_sha256 {commitment.seed_sha256}"
    )
    typer.echo(f"entries_sha256 {commitment.entries_sha256} ({commitment.entry_count})")


@draw_app.command("reveal")
def draw_reveal_command(
    seed_file: Path = typer.Option(..., "--seed-file", help="The secret seed file."),
    out: Path = typer.Option(..., "--out", help="Where to write the draw record JSON."),
    commitment_path: Path | None = typer.Option(
        None, "--commitment", help="Commitment JSON written by `draw commit`."
    ),
    entries_path: Path | None = typer.Option(
        None, "--entries", help="The committed entry list (file mode)."
    ),
    draw_id: str | None = typer.Option(
        None, "--draw-id", help="Draw id stored by `draw commit --campaign`."
    ),
    database: str | None = STORE_DATABASE_OPTION,
) -> None:
    """Reveal the seed, rank the entries and write the publishable draw record."""
    from greenloop.incentives.draws import DrawError, read_commitment, reveal

    try:
        seed = bytes.fromhex(seed_file.read_text().strip())
    except FileNotFoundError:
        fail(f"seed file {seed_file} not found")
    except ValueError:
        fail(f"seed file {seed_file} is not hexadecimal")
    try:
        if draw_id is not None:
            from greenloop.store.base import make_engine
            from greenloop.store.finance import reveal_campaign_draw

            record = reveal_campaign_draw(
                make_engine(existing_store_url(database)), draw_id, seed
            )
        else:
            if commitment_path is None or entries_path is None:
                fail("pass --draw-id, or --commitment FILE and --entries FILE")
            record = reveal(
                read_commitment(commitment_path), seed, _read_entries(entries_path)
            )
    except (DrawError, KeyError) as error:
        fail(str(error.args[0]) if error.args else str(error))
    out.write_text(record.to_json())
    typer.echo(f"draw {record.commitment.draw_id}: {len(record.winners)} winners")
    for rank, winner in enumerate(record.winners, start=1):
        typer.echo(f"{rank}\t{winner}")


@facilities_app.command("validate")
def facilities_validate_command(
    path: Path = typer.Argument(..., help="A facilities YAML file."),
) -> None:
    """Validate a facilities file and print a one-line summary of each facility."""
    from greenloop.funding.config import load_facilities
    from greenloop.lending.configfile import ConfigError
    from greenloop.lending.money import format_yuan

    try:
        loaded = load_facilities(path)
    except ConfigError as error:
        fail(str(error))
    for facility in loaded.facilities:
        typer.echo(
            f"{facility.id}: {facility.lender}, committed"
            f" {format_yuan(facility.committed_fen)} yuan at {facility.facility_rate}"
            f" against {facility.benchmark_rate}"
        )
    typer.echo(f"valid: {len(loaded.facilities)} facilities in {path}")


@facilities_app.command("reconcile")
def facilities_reconcile_command(
    facility_id: str = typer.Argument(..., help="The facility id to check."),
    database: str | None = STORE_DATABASE_OPTION,
) -> None:
    """Check a stored facility: allocated + unallocated = drawn, to the fen."""
    from sqlalchemy.exc import NoResultFound

    from greenloop.lending.money import format_yuan
    from greenloop.store.base import make_engine
    from greenloop.store.finance import create_finance_tables, reconcile_facility

    engine = make_engine(existing_store_url(database))
    create_finance_tables(engine)
    try:
        check = reconcile_facility(engine, facility_id)
    except NoResultFound:
        fail(f"facility {facility_id!r} not found in the database; run the batch first")
    finally:
        engine.dispose()
    typer.echo(
        f"{facility_id}: drawn {format_yuan(check.drawn_fen)}, allocated"
        f" {format_yuan(check.allocated_fen)}, unallocated"
        f" {format_yuan(check.unallocated_fen)} yuan"
    )
    typer.echo(
        f"eligible pool {format_yuan(check.pool_fen)} yuan;"
        f" covers the drawn amount: {'yes' if check.pool_covers_drawn else 'no'}"
    )
    if not check.balanced:
        for problem in check.problems:
            typer.echo(f"unbalanced: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo("balanced: allocated plus unallocated equals drawn, to the fen")


@campaigns_app.command("validate")
def campaigns_validate_command(
    path: Path = typer.Argument(..., help="A campaigns YAML file."),
    facilities: Path | None = typer.Option(
        None, "--facilities", help="Facilities file to check funding ids against."
    ),
) -> None:
    """Validate a campaigns file and print a one-line summary of each campaign."""
    from greenloop.funding.config import load_facilities
    from greenloop.incentives.config import load_campaigns
    from greenloop.lending.configfile import ConfigError

    try:
        loaded = load_campaigns(path)
        known = None if facilities is None else load_facilities(facilities)
    except ConfigError as error:
        fail(str(error))
    if known is not None:
        ids = {item.id for item in known.facilities}
        for index, campaign in enumerate(loaded.campaigns):
            if campaign.funding.facility_id not in ids:
                fail(
                    f"invalid configuration file {path}: field"
                    f" campaigns[{index}].funding.facility_id: unknown facility"
                    f" {campaign.funding.facility_id!r}; expected one of"
                    f" {', '.join(sorted(ids))}"
                )
    for campaign in loaded.campaigns:
        typer.echo(
            f"{campaign.id}: {campaign.benefit.kind}, budget"
            f" {campaign.budget.total_yuan} yuan, {campaign.starts_on} to"
            f" {campaign.ends_on}"
        )
    typer.echo(f"valid: {len(loaded.campaigns)} campaigns in {path}")


def _read_entries(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        fail(f"entry list {path} not found")
    return [line.strip() for line in lines if line.strip()]


def _write_secret(path: Path, text: str) -> None:
    """Write a new file readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
