"""Operator-provided registries: dated snapshots of certificates, models and merchants.

A registry folder contains `snapshot.yaml` and one CSV per registry. The YAML names
each registry's file, snapshot date, source and maximum age. A registry that is
absent, or older than its maximum age on the identification date, cannot confirm
anything, and the identifier reports the purchases that need it as unverifiable.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greenloop.categories import Category
from greenloop.identify.evidence import brand_key, normalize_code
from greenloop.identify.model_index import ModelIndex

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.yaml"

CODE_REGISTRIES: dict[str, Category] = {
    "organic": Category.ORGANIC_FOOD,
    "green_food": Category.GREEN_FOOD,
    "green_product": Category.GREEN_PRODUCT,
    "environmental_label": Category.ENVIRONMENTAL_LABEL,
    "eu_ecolabel": Category.EU_ECOLABEL,
}

REGISTRY_COLUMNS: dict[str, tuple[str, ...]] = {
    "energy_label": ("brand", "model_number", "appliance_type", "grade", "valid_until"),
    "organic": ("code", "product", "holder", "valid_until"),
    "green_food": ("code", "product", "holder", "valid_from", "valid_until"),
    "green_product": ("code", "product", "holder", "scope", "valid_until"),
    "environmental_label": ("code", "product", "holder", "valid_until"),
    "eu_ecolabel": ("code", "product", "holder", "valid_until"),
    "nev_models": (
        "brand",
        "model",
        "vehicle_kind",
        "catalogue_batch",
        "catalogue_date",
    ),
    "merchants": ("merchant_id", "merchant_name", "category", "kind", "source"),
    "label_credibility": ("id", "name", "cred:credibility"),
}

VEHICLE_KINDS = ("bev", "phev", "fcev")
MERCHANT_CATEGORIES = (Category.PUBLIC_TRANSPORT.value, Category.SECOND_HAND.value)


class RegistryError(ValueError):
    """A registry folder, snapshot description or registry row that is invalid."""


class RegistryState(StrEnum):
    """Whether a registry can confirm evidence on the identification date."""

    AVAILABLE = "available"
    MISSING = "missing"
    STALE = "stale"


class RegistrySpec(BaseModel):
    """One registry's entry in `snapshot.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1)
    snapshot_date: date
    source: str = Field(min_length=1)
    max_age_days: int = Field(gt=0)


class SnapshotDescription(BaseModel):
    """The whole of `snapshot.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registries: dict[str, RegistrySpec]


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """A certificate or licence found in a code registry."""

    registry: str
    code: str
    product: str
    holder: str
    valid_until: date | None
    valid_from: date | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class EnergyLabelRecord:
    """A China Energy Label filing: brand, model, appliance type and grade."""

    brand: str
    model_number: str
    appliance_type: str
    grade: int
    valid_until: date | None


@dataclass(frozen=True, slots=True)
class NevModelRecord:
    """A model in the new-energy vehicle catalogue."""

    brand: str
    model: str
    vehicle_kind: str
    catalogue_batch: str
    catalogue_date: date


@dataclass(frozen=True, slots=True)
class MerchantRecord:
    """A merchant registered as a public-transport operator or second-hand seller."""

    merchant_id: str
    merchant_name: str
    category: Category
    kind: str
    source: str


@dataclass(frozen=True, slots=True)
class LabelScore:
    """A sustainability label's credibility score (0-100); unscored rows have None."""

    label_id: str
    name: str
    credibility: int | None


@dataclass
class Registries:
    """Every registry loaded from one folder, indexed for lookups by normalized key."""

    folder: Path | None = None
    specs: dict[str, RegistrySpec] = field(default_factory=dict)
    certificates: dict[str, dict[str, CertificateRecord]] = field(default_factory=dict)
    energy_label: ModelIndex[EnergyLabelRecord] = field(default_factory=ModelIndex)
    nev_models: ModelIndex[NevModelRecord] = field(default_factory=ModelIndex)
    merchants: dict[str, MerchantRecord] = field(default_factory=dict)
    labels: dict[str, LabelScore] = field(default_factory=dict)

    def state(self, name: str, as_of: date) -> RegistryState:
        """Return whether registry `name` can confirm evidence on `as_of`."""
        spec = self.specs.get(name)
        if spec is None:
            return RegistryState.MISSING
        if as_of - spec.snapshot_date > timedelta(days=spec.max_age_days):
            return RegistryState.STALE
        return RegistryState.AVAILABLE

    def describe_state(self, name: str, as_of: date) -> str:
        """Return a sentence giving why registry `name` is unusable on `as_of`."""
        spec = self.specs.get(name)
        if spec is None:
            return f"the {name} registry is not loaded"
        age = (as_of - spec.snapshot_date).days
        return (
            f"the {name} registry snapshot of {spec.snapshot_date.isoformat()} is "
            f"{age} days old on {as_of.isoformat()}, over its maximum of "
            f"{spec.max_age_days} days"
        )

    def find_certificate(self, code: str) -> CertificateRecord | None:
        """Return the record of `code` in any code registry, or None."""
        key = normalize_code(code)
        for records in self.certificates.values():
            record = records.get(key)
            if record is not None:
                return record
        return None

    def versions(self) -> dict[str, str]:
        """Return each loaded registry's snapshot date, keyed `registry.NAME`."""
        return {
            f"registry.{name}": spec.snapshot_date.isoformat()
            for name, spec in sorted(self.specs.items())
        }


def load_registries(folder: Path) -> Registries:
    """Load every registry that `folder/snapshot.yaml` lists.

    Raises RegistryError naming the file, row and column of the first bad value.
    """
    description = _read_description(folder)
    registries = Registries(folder=folder, specs=dict(description.registries))
    for name, spec in description.registries.items():
        path = folder / spec.file
        rows = _read_rows(path, name)
        loader = _LOADERS[name]
        count = loader(registries, name, path, rows)
        logger.info(
            "loaded %d %s records from %s (snapshot %s)",
            count,
            name,
            path,
            spec.snapshot_date.isoformat(),
        )
    return registries


def _read_description(folder: Path) -> SnapshotDescription:
    path = folder / SNAPSHOT_FILE
    if not path.is_file():
        raise RegistryError(
            f"{path} not found; a registry folder needs {SNAPSHOT_FILE} listing "
            "each registry's file, snapshot_date, source and max_age_days"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        description = SnapshotDescription.model_validate(raw)
    except yaml.YAMLError as error:
        raise RegistryError(f"{path}: invalid YAML ({error})") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise RegistryError(f"{path}: {problems}") from error
    unknown = sorted(set(description.registries) - set(REGISTRY_COLUMNS))
    if unknown:
        raise RegistryError(
            f"{path}: unknown registry {', '.join(unknown)}; known registries are "
            f"{', '.join(REGISTRY_COLUMNS)}"
        )
    return description


def _read_rows(path: Path, name: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise RegistryError(
            f"{path}: cannot read the {name} registry ({error})"
        ) from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [column.strip() for column in reader.fieldnames or ()]
    missing = [column for column in REGISTRY_COLUMNS[name] if column not in header]
    if missing:
        raise RegistryError(
            f"{path}: the {name} registry lacks column {', '.join(missing)}; "
            f"expected header {','.join(REGISTRY_COLUMNS[name])}"
        )
    return [
        {key.strip(): (value or "").strip() for key, value in row.items() if key}
        for row in reader
    ]


def _rows(
    path: Path, rows: list[dict[str, str]]
) -> Iterator[tuple[_Row, dict[str, str]]]:
    for number, row in enumerate(rows, start=2):
        yield _Row(path, number, row), row


@dataclass(frozen=True, slots=True)
class _Row:
    path: Path
    number: int
    values: dict[str, str]

    def fail(self, column: str, expected: str) -> RegistryError:
        value = self.values.get(column, "")
        return RegistryError(
            f"{self.path} row {self.number}: {column} is {value!r}; expected "
            f"{expected}; correct the row or remove it"
        )

    def text(self, column: str) -> str:
        value = self.values.get(column, "")
        if not value:
            raise self.fail(column, "a non-empty value")
        return value

    def iso_date(self, column: str, required: bool = False) -> date | None:
        value = self.values.get(column, "")
        if not value and not required:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(column, "an ISO 8601 date such as 2027-06-30") from None

    def choice(self, column: str, allowed: tuple[str, ...]) -> str:
        value = self.values.get(column, "")
        if value not in allowed:
            raise self.fail(column, f"one of {', '.join(allowed)}")
        return value


def _load_codes(
    registries: Registries, name: str, path: Path, rows: list[dict[str, str]]
) -> int:
    records: dict[str, CertificateRecord] = {}
    for row, values in _rows(path, rows):
        code = normalize_code(row.text("code"))
        records[code] = CertificateRecord(
            registry=name,
            code=code,
            product=values.get("product", ""),
            holder=values.get("holder", ""),
            valid_until=row.iso_date("valid_until"),
            valid_from=row.iso_date("valid_from"),
            scope=row.text("scope") if name == "green_product" else None,
        )
    registries.certificates[name] = records
    return len(records)


def _load_energy_label(
    registries: Registries, name: str, path: Path, rows: list[dict[str, str]]
) -> int:
    for row, values in _rows(path, rows):
        grade_text = values.get("grade", "")
        if not grade_text.isdigit() or not 1 <= int(grade_text) <= 5:
            raise row.fail("grade", "a whole number from 1 to 5")
        record = EnergyLabelRecord(
            brand=row.text("brand"),
            model_number=row.text("model_number"),
            appliance_type=row.text("appliance_type"),
            grade=int(grade_text),
            valid_until=row.iso_date("valid_until"),
        )
        registries.energy_label.add(record.model_number, record)
    return registries.energy_label.size


def _load_nev_models(
    registries: Registries, name: str, path: Path, rows: list[dict[str, str]]
) -> int:
    for row, _ in _rows(path, rows):
        catalogue_date = row.iso_date("catalogue_date", required=True)
        assert catalogue_date is not None
        record = NevModelRecord(
            brand=row.text("brand"),
            model=row.text("model"),
            vehicle_kind=row.choice("vehicle_kind", VEHICLE_KINDS),
            catalogue_batch=row.text("catalogue_batch"),
            catalogue_date=catalogue_date,
        )
        registries.nev_models.add(record.model, record)
    return registries.nev_models.size


def _load_merchants(
    registries: Registries, name: str, path: Path, rows: list[dict[str, str]]
) -> int:
    for row, values in _rows(path, rows):
        merchant_id = row.text("merchant_id")
        registries.merchants[merchant_id] = MerchantRecord(
            merchant_id=merchant_id,
            merchant_name=values.get("merchant_name", ""),
            category=Category(row.choice("category", MERCHANT_CATEGORIES)),
            kind=row.text("kind"),
            source=values.get("source", ""),
        )
    return len(registries.merchants)


def _load_label_credibility(
    registries: Registries, name: str, path: Path, rows: list[dict[str, str]]
) -> int:
    for row, values in _rows(path, rows):
        label_id = row.text("id")
        scores = [
            _score(row, column) for column in values if ":" in column and column != "id"
        ]
        credibility = _score(row, "cred:credibility")
        # A label that is 0 in every score column was never scored.
        unscored = all(score == 0 for score in scores)
        registries.labels[label_id] = LabelScore(
            label_id=label_id,
            name=values.get("name", ""),
            credibility=None if unscored else credibility,
        )
    return len(registries.labels)


def _score(row: _Row, column: str) -> int:
    value = row.values.get(column, "") or "0"
    try:
        score = int(float(value))
    except ValueError:
        raise row.fail(column, "a score from 0 to 100") from None
    if not 0 <= score <= 100:
        raise row.fail(column, "a score from 0 to 100")
    return score


_Loader = Callable[[Registries, str, Path, list[dict[str, str]]], int]
_LOADERS: dict[str, _Loader] = {
    **dict.fromkeys(CODE_REGISTRIES, _load_codes),
    "energy_label": _load_energy_label,
    "nev_models": _load_nev_models,
    "merchants": _load_merchants,
    "label_credibility": _load_label_credibility,
}


def brand_matches(record_brand: str, query_brand: str | None) -> bool:
    """Return whether a stated brand names the same brand as a registry record."""
    if not query_brand:
        return False
    record_key, query_key = brand_key(record_brand), brand_key(query_brand)
    if not record_key or not query_key:
        return False
    return record_key.startswith(query_key) or query_key.startswith(record_key)
