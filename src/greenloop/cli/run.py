"""Commands of the main job: `greenloop run` and `greenloop demo`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from greenloop.cli.errors import fail
from greenloop.cli.progress import RichProgress

logger = logging.getLogger(__name__)

STANDARDS = ("cn", "us", "eu")


def register(app: typer.Typer) -> None:
    """Add `run` and `demo` to the application."""
    app.command("run")(run)
    app.command("demo")(demo)


def run(
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="Purchases as CSV, Parquet or JSON Lines."
    ),
    mapping: str = typer.Option(
        None,
        "--mapping",
        help="Column-mapping YAML file, or a shipped mapping name (online-retail, "
        "bank-transactions). Default: the columns already carry purchase field names.",
    ),
    out: Path = typer.Option(
        Path("runs"), "--out", help="Folder that receives runs/<run-id>/."
    ),
    standard: str = typer.Option(
        "cn", "--standard", help="Jurisdiction whose standards apply: cn, us or eu."
    ),
    database: str = typer.Option(
        None,
        "--database",
        help="SQLAlchemy database URL. Default: GREENLOOP_DATABASE_URL, else the "
        "SQLite file greenloop.sqlite3 in the current folder.",
    ),
    key_dir: Path = typer.Option(
        Path("keys"),
        "--key-dir",
        help="Folder of the ledger signing key and the user-hashing secret "
        "(created on first use, private files mode 0600).",
    ),
    registries: Path = typer.Option(
        None,
        "--registries",
        help="Registry folder with snapshot.yaml (dated registries).",
    ),
    energy_star: list[Path] = typer.Option(
        [], "--energy-star", help="ENERGY STAR certified-products export; repeatable."
    ),
    facilities: Path = typer.Option(
        None,
        "--facilities",
        help="Funding facilities YAML. Default: the shipped example.",
    ),
    campaigns: Path = typer.Option(
        None,
        "--campaigns",
        help="Incentive campaigns YAML. Default: the shipped example.",
    ),
    no_finance: bool = typer.Option(
        False, "--no-finance", help="Skip loan allocation and incentive awards."
    ),
    memory_limit: str = typer.Option(
        "768MB",
        "--memory-limit",
        help="DuckDB memory limit, for example 1GB or 512MB; DuckDB spills to disk "
        "beyond it.",
    ),
    identify_workers: int | None = typer.Option(
        None,
        "--identify-workers",
        min=0,
        max=256,
        show_default="one per CPU beyond the first",
        help="Worker processes that identify products beside the main process; "
        "0 identifies in the main process only. Inputs of fewer than about "
        "60,000 distinct products use none.",
    ),
) -> None:
    """Run the main job on INPUT and write runs/<run-id>/ with verdicts and reports."""
    from greenloop.cli.stores import resolve_database_url
    from greenloop.pipeline.job import DEFAULT_CAMPAIGNS, DEFAULT_FACILITIES, RunConfig

    if standard not in STANDARDS:
        fail(f"invalid --standard {standard!r}: expected one of {', '.join(STANDARDS)}")
    _check_memory_limit(memory_limit)
    config = RunConfig(
        input_path=input_path,
        out_dir=out,
        mapping=mapping,
        standard=standard,
        database_url=resolve_database_url(database),
        key_dir=key_dir,
        registry_dir=registries,
        energy_star_files=tuple(energy_star),
        facilities_path=None if no_finance else (facilities or DEFAULT_FACILITIES),
        campaigns_path=None if no_finance else (campaigns or DEFAULT_CAMPAIGNS),
        memory_limit=memory_limit,
        identify_workers=identify_workers,
    )
    _execute(config)


def _check_memory_limit(memory_limit: str) -> None:
    """Stop with a one-line error unless DuckDB accepts `memory_limit`."""
    import duckdb

    with duckdb.connect(":memory:") as connection:
        try:
            connection.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error:
            fail(
                f"invalid --memory-limit {memory_limit!r}: expected a number with "
                "a unit, such as 512MB, 1GB or 2GiB"
            )


def demo(
    out: Path = typer.Option(
        Path("runs"), "--out", help="Folder that receives the sample and the run."
    ),
    rows: int = typer.Option(
        20_000,
        "--rows",
        min=100,
        help=(
            "Number of purchases to generate. The sample adds about one return "
            "per 60 purchases and one faulty or duplicate row per 200."
        ),
    ),
    seed: int = typer.Option(7, "--seed", help="Seed of the sample generator."),
    database: str = typer.Option(
        None,
        "--database",
        help="SQLAlchemy database URL. Default: OUT/greenloop.sqlite3.",
    ),
) -> None:
    """Generate a seeded Chinese sample and run the main job on it with SQLite."""
    from greenloop.cli.stores import resolve_database_url
    from greenloop.pipeline.demo import write_demo
    from greenloop.pipeline.job import RunConfig

    # Checked before the sample is written, so a bad URL leaves nothing behind.
    url = resolve_database_url(database) if database else None
    sample = write_demo(out / "demo-input", rows=rows, seed=seed)
    typer.echo(
        f"sample: {sample.purchases} ({rows:,} purchases plus returns and faulty "
        f"rows), registries: {sample.registries}"
    )
    config = RunConfig(
        input_path=sample.purchases,
        out_dir=out,
        standard="cn",
        database_url=url or f"sqlite:///{out / 'greenloop.sqlite3'}",
        key_dir=out / "keys",
        registry_dir=sample.registries,
        as_of=sample.as_of,
    )
    _execute(config)


# The exit status of a command stopped by SIGINT, as shells report it.
INTERRUPTED_EXIT = 130


def _execute(config: object) -> None:
    import duckdb

    from greenloop.pipeline.job import RunConfig, run_job
    from greenloop.pipeline.mapping import MappingError
    from greenloop.pipeline.outputs import OutputError
    from greenloop.pipeline.sources import InputError
    from greenloop.store.base import StoreError

    assert isinstance(config, RunConfig)
    try:
        with RichProgress() as progress:
            result = run_job(config, progress)
    except (InputError, MappingError, OutputError, StoreError) as error:
        fail(str(error))
    except (KeyboardInterrupt, duckdb.InterruptException):
        fail(
            "interrupted; the ledger entries and assets stored so far are kept, "
            "and running the same command again completes the run",
            INTERRUPTED_EXIT,
        )
    except OSError as error:
        if error.filename and Path(error.filename).is_relative_to(config.out_dir):
            fail(
                f"cannot write the output folder {config.out_dir} (--out): "
                f"{error.strerror or error}: {error.filename}; give --out a "
                "folder that can be created and written to"
            )
        fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
    except Exception as error:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(
            f"{type(error).__name__}: {first_line} (run with --verbose for the "
            f"full trace)"
        )
    counts = result.counts
    ingest = counts["ingest"]
    identify = counts["identify"]
    typer.echo(f"run {result.run_id} {result.manifest['status']} → {result.run_dir}")
    typer.echo(
        f"rows read {ingest['rows_read']:,}, "
        f"quarantined {ingest['quarantined_rows']:,}, "
        f"returns {ingest['returns']:,}, purchases {ingest['purchases']:,}, "
        f"distinct products {identify['distinct_products']:,}"
    )
    typer.echo(
        f"verdicts: green {identify['green']:,}, "
        f"needs_review {identify['needs_review']:,}, "
        f"not_green {identify['not_green']:,}; "
        f"ledger +{_entries(counts['ledger']['entries_appended'])} "
        f"(size {counts['ledger']['tree_size']:,})"
    )
    typer.echo(f"report: {result.run_dir / 'report.html'}")


def _entries(count: int) -> str:
    """Return a count of ledger entries in words, such as "1 entry"."""
    return f"{count:,} {'entry' if count == 1 else 'entries'}"
