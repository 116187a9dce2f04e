"""Import ENERGY STAR certified-products exports of any product type.

The EPA publishes one CSV per product type and the column names differ between
them: refrigerators list `US Federal Standard (kWh/yr)`, clothes washers list
the federal IMEF and IWF but no federal kWh. The importer finds the columns it
needs by name, detects the product type from the columns that only one type
has, and keeps brand, model number, annual kWh and the federal standard kWh.

A dated snapshot is the same records in a small CSV with one fixed header, so
the identifier can load either the EPA export or a snapshot.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

logger = logging.getLogger(__name__)

BRAND_COLUMNS = ("Brand Name", "Brand")
MODEL_COLUMNS = ("Model Number", "Model Name", "Model")
ID_COLUMNS = ("ENERGY STAR Unique ID", "ENERGY STAR ID")
ANNUAL_KWH_COLUMNS = (
    "Annual Energy Use (kWh/yr)",
    "Annual Energy Consumption (kWh/yr)",
)
FEDERAL_KWH_COLUMNS = ("US Federal Standard (kWh/yr)",)
DATE_CERTIFIED_COLUMNS = ("Date Certified",)
IMEF_COLUMN = "Integrated Modified Energy Factor (IMEF)"
FEDERAL_IMEF_COLUMN = "US Federal Standard (IMEF)"

# Columns that only one product type's export has.
PRODUCT_TYPE_SIGNATURES: dict[str, tuple[str, ...]] = {
    "refrigerator": ("Capacity (Total Volume) (ft3)", "Defrost Type"),
    "clothes_washer": (IMEF_COLUMN, "Load Configuration"),
}

SNAPSHOT_COLUMNS = (
    "energy_star_id",
    "brand",
    "model_number",
    "product_type",
    "annual_kwh",
    "federal_standard_kwh",
    "federal_standard_kwh_basis",
    "date_certified",
    "snapshot_date",
    "source_sha256",
)


class EnergyStarImportError(ValueError):
    """An ENERGY STAR export or snapshot that cannot be read."""


@dataclass(frozen=True, slots=True)
class EnergyStarRecord:
    """One certified model: brand, model number and its annual energy figures.

    `federal_standard_kwh_basis` is `record` when the export lists the federal
    kWh, and `imef_ratio_estimate` when it is estimated from the IMEF ratio
    (clothes washers), which assumes energy use scales with 1 / IMEF.
    """

    energy_star_id: str
    brand: str
    model_number: str
    product_type: str
    annual_kwh: Decimal | None
    federal_standard_kwh: Decimal | None
    federal_standard_kwh_basis: str | None
    date_certified: date | None


@dataclass(frozen=True)
class EnergyStarSnapshot:
    """The records of one export or snapshot file and the date they were taken."""

    path: Path
    product_type: str
    snapshot_date: date
    source_sha256: str
    records: tuple[EnergyStarRecord, ...]


def read_energy_star_file(
    path: Path, product_type: str | None = None
) -> EnergyStarSnapshot:
    """Read an EPA export or a greenloop snapshot of ENERGY STAR records.

    An EPA export carries no export date, so its snapshot date is the file's
    modification date (UTC).
    """
    raw_bytes = _read_bytes(path)
    digest = hashlib.sha256(raw_bytes).hexdigest()
    text = raw_bytes.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = tuple(reader.fieldnames or ())
    rows = list(reader)
    if set(SNAPSHOT_COLUMNS) <= set(header):
        return _read_snapshot(path, rows, digest)

    detected = product_type or detect_product_type(header, path)
    records = tuple(_export_records(path, header, rows, detected))
    modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date()
    logger.info(
        "read %d ENERGY STAR %s records from %s (sha256 %s)",
        len(records),
        detected,
        path,
        digest[:12],
    )
    return EnergyStarSnapshot(path, detected, modified, digest, records)


def detect_product_type(header: Sequence[str], path: Path) -> str:
    """Return the product type whose signature columns all appear in `header`."""
    for product_type, columns in PRODUCT_TYPE_SIGNATURES.items():
        if all(column in header for column in columns):
            return product_type
    known = ", ".join(PRODUCT_TYPE_SIGNATURES)
    raise EnergyStarImportError(
        f"{path}: cannot tell the ENERGY STAR product type from the columns; "
        f"pass the product type explicitly (known types: {known})"
    )


def write_snapshot(
    snapshot: EnergyStarSnapshot, out_dir: Path, snapshot_date: date
) -> Path:
    """Write the records as a dated snapshot CSV in `out_dir` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = (
        out_dir / f"energy_star_{snapshot.product_type}_{snapshot_date.isoformat()}.csv"
    )
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SNAPSHOT_COLUMNS)
        for record in snapshot.records:
            writer.writerow(
                _snapshot_row(record, snapshot_date, snapshot.source_sha256)
            )
    return target


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise EnergyStarImportError(
            f"{path}: cannot read the file ({error})"
        ) from error


def _pick(header: Sequence[str], names: Iterable[str], path: Path, what: str) -> str:
    for name in names:
        if name in header:
            return name
    raise EnergyStarImportError(
        f"{path}: no {what} column; expected one of {', '.join(names)}"
    )


def _optional(header: Sequence[str], names: Iterable[str]) -> str | None:
    return next((name for name in names if name in header), None)


def _export_records(
    path: Path, header: Sequence[str], rows: list[dict[str, str]], product_type: str
) -> Iterable[EnergyStarRecord]:
    brand_column = _pick(header, BRAND_COLUMNS, path, "brand")
    model_column = _pick(header, MODEL_COLUMNS, path, "model number")
    kwh_column = _pick(header, ANNUAL_KWH_COLUMNS, path, "annual kWh")
    id_column = _optional(header, ID_COLUMNS)
    federal_column = _optional(header, FEDERAL_KWH_COLUMNS)
    date_column = _optional(header, DATE_CERTIFIED_COLUMNS)
    has_imef = IMEF_COLUMN in header and FEDERAL_IMEF_COLUMN in header

    for row_number, row in enumerate(rows, start=2):
        brand = (row.get(brand_column) or "").strip()
        model = (row.get(model_column) or "").strip()
        if not brand or not model:
            logger.warning(
                "%s record %d: skipped, brand or model number empty", path, row_number
            )
            continue
        annual = _decimal(row.get(kwh_column), path, row_number, kwh_column)
        federal, basis = None, None
        if federal_column:
            federal = _decimal(
                row.get(federal_column), path, row_number, federal_column
            )
            basis = "record" if federal is not None else None
        elif has_imef and annual is not None:
            federal = _federal_kwh_from_imef(row, annual, path, row_number)
            basis = "imef_ratio_estimate" if federal is not None else None
        yield EnergyStarRecord(
            energy_star_id=(row.get(id_column) or "").strip() if id_column else "",
            brand=brand,
            model_number=model,
            product_type=product_type,
            annual_kwh=annual,
            federal_standard_kwh=federal,
            federal_standard_kwh_basis=basis,
            date_certified=_us_date(row.get(date_column) if date_column else None),
        )


def _federal_kwh_from_imef(
    row: dict[str, str], annual: Decimal, path: Path, row_number: int
) -> Decimal | None:
    # IMEF is cubic feet per kWh per cycle, so at equal capacity and cycles a
    # washer that just meets the federal IMEF uses annual * IMEF / federal IMEF.
    imef = _decimal(row.get(IMEF_COLUMN), path, row_number, IMEF_COLUMN)
    federal_imef = _decimal(
        row.get(FEDERAL_IMEF_COLUMN), path, row_number, FEDERAL_IMEF_COLUMN
    )
    if imef is None or not federal_imef:
        return None
    return (annual * imef / federal_imef).quantize(Decimal("1"))


def _decimal(
    value: str | None, path: Path, row_number: int, column: str
) -> Decimal | None:
    text = (value or "").strip().replace(",", "")
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        logger.warning(
            "%s record %d: %s is %r, not a number; left empty",
            path,
            row_number,
            column,
            value,
        )
        return None


def _us_date(value: str | None) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError:
        return date.fromisoformat(text)


def _read_snapshot(
    path: Path, rows: list[dict[str, str]], digest: str
) -> EnergyStarSnapshot:
    records: list[EnergyStarRecord] = []
    dates: set[date] = set()
    product_types: set[str] = set()
    for row_number, row in enumerate(rows, start=2):
        try:
            dates.add(date.fromisoformat(row["snapshot_date"]))
        except ValueError:
            raise EnergyStarImportError(
                f"{path} row {row_number}: snapshot_date {row['snapshot_date']!r} is "
                "not an ISO date such as 2026-11-30; rewrite the snapshot"
            ) from None
        product_types.add(row["product_type"])
        records.append(
            EnergyStarRecord(
                energy_star_id=row["energy_star_id"],
                brand=row["brand"],
                model_number=row["model_number"],
                product_type=row["product_type"],
                annual_kwh=_decimal(row["annual_kwh"], path, row_number, "annual_kwh"),
                federal_standard_kwh=_decimal(
                    row["federal_standard_kwh"],
                    path,
                    row_number,
                    "federal_standard_kwh",
                ),
                federal_standard_kwh_basis=row["federal_standard_kwh_basis"] or None,
                date_certified=_us_date(row["date_certified"]),
            )
        )
    if len(dates) > 1 or len(product_types) > 1:
        raise EnergyStarImportError(
            f"{path}: a snapshot contains one product type and one snapshot date; "
            f"found types {sorted(product_types)} and dates {sorted(dates)}"
        )
    snapshot_date = (
        dates.pop()
        if dates
        else datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date()
    )
    product_type = product_types.pop() if product_types else "unknown"
    return EnergyStarSnapshot(path, product_type, snapshot_date, digest, tuple(records))


def _snapshot_row(
    record: EnergyStarRecord, snapshot_date: date, digest: str
) -> list[str]:
    return [
        record.energy_star_id,
        record.brand,
        record.model_number,
        record.product_type,
        "" if record.annual_kwh is None else str(record.annual_kwh),
        "" if record.federal_standard_kwh is None else str(record.federal_standard_kwh),
        record.federal_standard_kwh_basis or "",
        record.date_certified.isoformat() if record.date_certified else "",
        snapshot_date.isoformat(),
        digest,
    ]
