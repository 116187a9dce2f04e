"""Derive greenloop's spend-based and second-hand factor sets from footprint tables.

Inputs (not shipped with greenloop):

- memobank/carbon-footprint `payment-cards/results.csv` (CC BY-SA 4.0): kgCO2e
  per EUR of 2019 per merchant category code (MCC) and country, from EXIOBASE 3.
- electricitymaps/bloom-contrib `co2eq/purchase/footprints.yml` (MIT): kgCO2e per
  EUR of 2011 per COICOP category and region (EXIOBASE 3.4), and per-item life-cycle
  footprints of devices, clothing, furniture and appliances.

Outputs, written into the packaged factor folder:

- `spend_mcc.yaml`: the factors of the MCCs greenloop purchases use, for the
  countries greenloop reports on. The file is an adaptation of the memobank table,
  so it carries that table's CC BY-SA 4.0 licence and attribution.
- `spend_category.yaml`: one COICOP factor per greenloop category (MIT, bloom).
- `second_hand_embodied.yaml`: the median embodied footprint of a new item per
  second-hand item kind (MIT, bloom). Embodied means the life-cycle footprint
  minus its use-phase share, where bloom states that share.

Run: `python -m greenloop.impact.derive_spend_factors --footprints DIR`.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "factors"
MEMOBANK_FILE = "memobank-mcc-factors.csv"
BLOOM_FILE = "bloom-footprints.yml"
MEMOBANK_URL = "https://github.com/memobank/carbon-footprint"
BLOOM_URL = "https://github.com/electricitymaps/bloom-contrib"

# Merchant category codes that greenloop's categories and common card purchases
# use: public transport, vehicles and fuel, electricity, food, clothing,
# furniture, appliances and electronics, restaurants, second-hand and general retail.
SELECTED_MCCS = (
    4111, 4112, 4121, 4131, 4900, 5200, 5251, 5300, 5311, 5399, 5411, 5499,
    5511, 5521, 5541, 5542, 5552, 5651, 5691, 5699, 5712, 5722, 5732, 5812,
    5814, 5931, 5932, 5999,
)  # fmt: skip

# Countries greenloop reports on. memobank maps HK and MO to China's EXIOBASE
# region; the output keeps them so a Hong Kong purchase finds its factor.
SELECTED_COUNTRIES = ("CN", "HK", "MO", "US", "GB", "DE", "FR", "JP")

# greenloop category -> COICOP code in bloom. Categories missing here
# (green_product, environmental_label, eu_ecolabel, second_hand) span many COICOP
# groups, so only their MCC identifies what was bought.
CATEGORY_COICOP = {
    "appliance": "5.3",
    "energy_star": "5.3",
    "new_energy_vehicle": "7.1",
    "public_transport": "07.3.5",
    "organic_food": "1.1",
    "green_food": "1.1",
}

# Second-hand item kind -> how to recognise bloom's per-item entries for it:
# (COICOP path fragment, icon or None for any icon).
ITEM_KIND_ENTRIES: dict[str, tuple[str, str | None]] = {
    "phone": ("Information and communication equipment", "mobile"),
    "laptop": ("Information and communication equipment", "laptop"),
    "clothing": ("CLOTHING AND FOOTWEAR/CLOTHING", None),
    "furniture": ("Furniture, furnishings and loose carpets", None),
    "appliance": ("HOUSEHOLD APPLIANCES", None),
}


class DerivationError(ValueError):
    """An input table lacks a column, a row or a value the derivation needs."""


@dataclass(frozen=True, slots=True)
class BloomItem:
    """One per-item life-cycle footprint from bloom."""

    path: str
    name: str
    kg_co2e: float
    use_phase_share: float | None
    icon: str | None
    source: str | None


def _factor(
    factor_id: str,
    value: float,
    unit: str,
    year: int | None,
    label: str,
    source_title: str,
    source_url: str,
    derivation: str,
    scope: str,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": factor_id,
        "value": round(value, 6),
        "unit": unit,
    }
    if year is not None:
        entry["year"] = year
    entry.update(
        {
            "status": "derived",
            "scope": scope,
            "label": label,
            "derivation": derivation,
            "source": {"title": source_title, "url": source_url},
            "last_checked": date.today(),
        }
    )
    return entry


def derive_mcc_factors(memobank_csv: Path) -> list[dict[str, Any]]:
    """Select the memobank factors of SELECTED_MCCS for SELECTED_COUNTRIES."""
    with memobank_csv.open(encoding="utf-8", newline="") as handle:
        rows = {row["MCC Code"].strip(): row for row in csv.DictReader(handle)}
    factors = []
    for mcc in SELECTED_MCCS:
        row = rows.get(str(mcc))
        if row is None:
            raise DerivationError(
                f"MCC {mcc} not found in {memobank_csv} (column 'MCC Code'); "
                "remove it from SELECTED_MCCS or use a newer table"
            )
        if row["Unit"] != "kgCO2e/€":
            raise DerivationError(
                f"MCC {mcc} in {memobank_csv} has unit {row['Unit']!r}; "
                "expected 'kgCO2e/€'"
            )
        year = int(row["Year"])
        for country in SELECTED_COUNTRIES:
            value = float(row[country])
            factors.append(
                _factor(
                    f"mcc.{mcc}.{country}",
                    value,
                    "kgCO2e/EUR",
                    year,
                    f"MCC {mcc} {row['MCC Name'].strip()} -> EXIOBASE "
                    f"'{' '.join(row['EXIOBASE Name'].split())}'",
                    "memobank/carbon-footprint payment-cards/results.csv "
                    "(EXIOBASE 3 monetary factors, scopes 1-3)",
                    MEMOBANK_URL,
                    f"Column {country}, row MCC {mcc}, rounded to 6 decimals.",
                    "purchase footprint, scopes 1-3 (EXIOBASE 3 multi-regional IO)",
                )
            )
    return factors


def _walk_bloom(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple]:
    for name, child in (node.get("_children") or {}).items():
        child_path = (*path, name)
        yield child_path, child
        yield from _walk_bloom(child, child_path)


def derive_category_factors(bloom: dict[str, Any]) -> list[dict[str, Any]]:
    """Pick bloom's COICOP factor for each greenloop category and country."""
    by_coicop: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {}
    for path, node in _walk_bloom(bloom, ()):
        if isinstance(node.get("intensityKilograms"), dict) and node.get("coicopCode"):
            by_coicop[str(node["coicopCode"])] = (path, node)
    factors = []
    for category, coicop in CATEGORY_COICOP.items():
        if coicop not in by_coicop:
            raise DerivationError(f"COICOP code {coicop} not found in bloom footprints")
        path, node = by_coicop[coicop]
        intensities = node["intensityKilograms"]
        for country in SELECTED_COUNTRIES:
            # bloom has no HK or MO regions; memobank maps both to China.
            region = "CN" if country in ("HK", "MO") else country
            if region not in intensities:
                continue
            factors.append(
                _factor(
                    f"category.{category}.{country}",
                    float(intensities[region]),
                    "kgCO2e/EUR",
                    int(node.get("year", 2011)),
                    f"COICOP {coicop} {path[-1]} (region {region})",
                    "electricitymaps/bloom-contrib co2eq/purchase/footprints.yml "
                    "(EXIOBASE 3.4)",
                    BLOOM_URL,
                    f"intensityKilograms.{region} of COICOP {coicop}.",
                    "purchase footprint, supply chain (EXIOBASE 3.4 household "
                    "consumption)",
                )
            )
    return factors


def _parse_share(value: Any) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def bloom_items(bloom: dict[str, Any]) -> list[BloomItem]:
    """List bloom's per-item footprints (unit `item`)."""
    items = []
    for path, node in _walk_bloom(bloom, ()):
        intensity = node.get("intensityKilograms")
        if node.get("unit") != "item" or isinstance(intensity, dict):
            continue
        if intensity is None:
            continue
        items.append(
            BloomItem(
                path="/".join(path[:-1]),
                name=path[-1],
                kg_co2e=float(intensity),
                use_phase_share=_parse_share(node.get("usage")),
                icon=node.get("icon"),
                source=node.get("source"),
            )
        )
    return items


def derive_second_hand_factors(bloom: dict[str, Any]) -> list[dict[str, Any]]:
    """Take the median embodied footprint of bloom's items for each item kind."""
    items = bloom_items(bloom)
    factors = []
    for kind, (path_fragment, icon) in ITEM_KIND_ENTRIES.items():
        matches = [
            item
            for item in items
            if path_fragment in item.path and (icon is None or item.icon == icon)
        ]
        if not matches:
            raise DerivationError(f"no bloom items found for second-hand kind {kind}")
        embodied = [
            item.kg_co2e * (1 - (item.use_phase_share or 0)) for item in matches
        ]
        with_share = sum(1 for item in matches if item.use_phase_share is not None)
        factors.append(
            _factor(
                f"embodied.{kind}",
                statistics.median(embodied),
                "kgCO2e/item",
                None,
                f"Median embodied footprint of {len(matches)} new {kind} items",
                "electricitymaps/bloom-contrib co2eq/purchase/footprints.yml "
                "(per-item life-cycle footprints, mostly manufacturer reports)",
                BLOOM_URL,
                f"median over {len(matches)} items under '{path_fragment}' of "
                "intensityKilograms x (1 - usage share); "
                f"{with_share} items state a usage share, the rest count in full.",
                "production and end of life of one new item, use phase excluded",
            )
        )
    return factors


def _header(lines: Sequence[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def write_factor_set(
    path: Path, header: Sequence[str], spec: dict[str, Any], factors: list
) -> None:
    """Write one factor-set YAML file with a comment header."""
    document = {**spec, "last_checked": date.today(), "factors": factors}
    body = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=88)
    path.write_text(_header(header) + body, encoding="utf-8")
    logger.info("wrote %d factors to %s", len(factors), path)


def derive(footprints: Path, output: Path, version: str) -> None:
    """Read the footprint tables in `footprints` and write the three factor sets."""
    memobank_csv = footprints / MEMOBANK_FILE
    bloom_yml = footprints / BLOOM_FILE
    for required in (memobank_csv, bloom_yml):
        if not required.is_file():
            raise DerivationError(
                f"{required} not found; pass --footprints with the folder holding "
                f"{MEMOBANK_FILE} and {BLOOM_FILE}"
            )
    bloom = yaml.safe_load(bloom_yml.read_text(encoding="utf-8"))
    generated = f"Generated by greenloop.impact.derive_spend_factors ({version})."

    write_factor_set(
        output / "spend_mcc.yaml",
        [
            "Spend-based emission factors per merchant category code (MCC).",
            "Licence: CC BY-SA 4.0. This file adapts a subset of the table by",
            "memobank, 'Carbon footprint of payment cards'",
            f"({MEMOBANK_URL}, payment-cards/results.csv), itself built on",
            "EXIOBASE 3 (CC BY-SA 4.0). Changes: only the MCCs and countries listed",
            "here, values rounded to 6 decimals. Share-alike applies to this file.",
            generated,
        ],
        {
            "id": "spend-mcc",
            "version": version,
            "title": "Spend-based factors per merchant category code (EXIOBASE 3)",
            "description": "kgCO2e per EUR of 2019, scopes 1-3, per MCC and "
            "merchant country. An MCC names the merchant, not the basket: these "
            "estimate a purchase's footprint and never express a saving.",
            "licence": "CC BY-SA 4.0",
            "attribution": "memobank, Carbon footprint of payment cards "
            f"({MEMOBANK_URL}), from EXIOBASE 3 (www.exiobase.eu), CC BY-SA 4.0",
        },
        derive_mcc_factors(memobank_csv),
    )
    write_factor_set(
        output / "spend_category.yaml",
        [
            "Spend-based emission factors per greenloop category (COICOP).",
            "Derived from electricitymaps/bloom-contrib co2eq/purchase/footprints.yml",
            f"({BLOOM_URL}), MIT licence, Copyright (c) 2020 Tomorrow.",
            generated,
        ],
        {
            "id": "spend-category",
            "version": version,
            "title": "Spend-based factors per greenloop category "
            "(COICOP, EXIOBASE 3.4)",
            "description": "kgCO2e per EUR of 2011 per category and country, used "
            "when a purchase's MCC has no factor.",
            "licence": "MIT (bloom-contrib, Copyright (c) 2020 Tomorrow)",
            "attribution": f"electricitymaps/bloom-contrib ({BLOOM_URL})",
        },
        derive_category_factors(bloom),
    )
    write_factor_set(
        output / "second_hand_embodied.yaml",
        [
            "Embodied footprint of a new item per second-hand item kind.",
            "Derived from electricitymaps/bloom-contrib co2eq/purchase/footprints.yml",
            f"({BLOOM_URL}), MIT licence, Copyright (c) 2020 Tomorrow.",
            generated,
        ],
        {
            "id": "second-hand-embodied",
            "version": version,
            "title": "Embodied footprint of new items, per second-hand item kind",
            "description": "Median cradle-to-gate-and-end-of-life footprint of a new "
            "item, without its use phase, that a second-hand purchase may avoid.",
            "licence": "MIT (bloom-contrib, Copyright (c) 2020 Tomorrow)",
            "attribution": f"electricitymaps/bloom-contrib ({BLOOM_URL})",
        },
        derive_second_hand_factors(bloom),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the derivation from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--footprints",
        type=Path,
        required=True,
        help=f"folder with {MEMOBANK_FILE} and {BLOOM_FILE}",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="folder to write the factor-set YAML files into",
    )
    parser.add_argument(
        "--version", default="2026.12.0", help="version string of the written sets"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        derive(args.footprints, args.output, args.version)
    except DerivationError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
