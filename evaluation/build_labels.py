"""Write the LABELS.csv files that `greenloop evaluate` reads.

The reference data may not be copied into the repository, so the labelled sets
drawn from it are stored here as keys plus labels and joined with the data at
run time:

- `online-retail-green-words.csv` contains the hand-checked labels of every
  distinct Online Retail description with a green-sounding word, keyed by
  StockCode and the first 16 hex digits of the description's SHA-256.
- The full Online Retail set is every distinct description. Rows of the
  green-words set keep their labels; every other row is `not_green`, because the
  shop sells gifts and homeware and no row carries evidence.
- The Open Food Facts set is every product with a name. A product whose
  `labels_tags` names an organic label, or whose name makes an organic claim, is
  `needs_review` in organic_food, because a label tag or a word is a claim
  without a certificate code. Every other product is `not_green`.
- The ENERGY STAR set is every certified model of the two registry files, with
  the brand and model number written into the title ("*" wildcards filled with
  "X"), expected `green` in energy_star under the `us` standards.
- `handwritten.csv` contains greenloop's own Chinese and English titles and is
  copied as it is.
- `evidence.csv` contains greenloop's own titles with certificate codes, model
  numbers and merchant ids, scored with `--registries registry-sample --as-of
  2026-12-04`. The folder `registry-sample/` is copied beside it; its rows are
  invented and follow the real code formats.

Usage: python evaluation/build_labels.py [--data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
DEFAULT_OUT = Path("/tmp/greenloop-evaluation")
KEY_DIGITS = 16
LABEL_COLUMNS = (
    "title",
    "brand",
    "model_number",
    "label_codes",
    "expected_status",
    "expected_category",
    "trap",
    "note",
)
ORGANIC_LABEL_TAGS = ("en:organic", "en:eu-organic", "fr:ab-agriculture-biologique")
ORGANIC_WORDS = re.compile(r"(?<![a-z])(organic|bio|biologique|ökologisch)(?![a-z])")
WILDCARD_FILL = "X"


def description_key(description: str) -> str:
    """Return the first hex digits of the SHA-256 of the exact description."""
    return hashlib.sha256(description.encode("utf-8")).hexdigest()[:KEY_DIGITS]


def main(argv: list[str] | None = None) -> int:
    """Write every labelled set into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    arguments = parser.parse_args(argv)
    data: Path = arguments.data
    out: Path = arguments.out
    if not data.is_dir():
        print(f"error: data folder {data} not found; pass --data DIR", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)

    descriptions = retail_descriptions(data)
    green_words = join_green_words(descriptions, HERE / "online-retail-green-words.csv")
    write(out / "online-retail-green-words.csv", green_words)
    write(out / "online-retail-all.csv", all_retail_rows(descriptions, green_words))
    write(out / "open-food-facts.csv", food_rows(data))
    write(out / "energy-star.csv", energy_star_rows(data))
    shutil.copyfile(HERE / "handwritten.csv", out / "handwritten.csv")
    shutil.copyfile(HERE / "evidence.csv", out / "evidence.csv")
    shutil.copytree(
        HERE / "registry-sample", out / "registry-sample", dirs_exist_ok=True
    )
    print(f"wrote labelled sets to {out}")
    return 0


def retail_descriptions(data: Path) -> dict[tuple[str, str], str]:
    """Map (StockCode, description key) to the description, first row wins."""
    import pyarrow.parquet as pq

    table = pq.read_table(
        data / "online-retail" / "online_retail.parquet",
        columns=["StockCode", "Description"],
    )
    found: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    for code, description in zip(
        table.column("StockCode").to_pylist(),
        table.column("Description").to_pylist(),
        strict=True,
    ):
        if description is None or description in seen:
            continue
        seen.add(description)
        found[(str(code), description_key(description))] = description
    return found


def join_green_words(
    descriptions: dict[tuple[str, str], str], keys_file: Path
) -> list[dict[str, str]]:
    """Join the hand-checked keys with the descriptions they stand for."""
    rows = []
    with keys_file.open(encoding="utf-8", newline="") as handle:
        for line, key_row in enumerate(csv.DictReader(handle), start=2):
            key = (key_row["stock_code"], key_row["description_sha256"])
            description = descriptions.get(key)
            if description is None:
                raise SystemExit(
                    f"{keys_file}: row {line}: no description for StockCode "
                    f"{key[0]} with SHA-256 prefix {key[1]}; is the data file the "
                    "one the keys were made from?"
                )
            rows.append(
                {
                    "title": description,
                    "expected_status": key_row["expected_status"],
                    "expected_category": key_row["expected_category"],
                    "trap": key_row["trap"],
                    "note": key_row["note"],
                }
            )
    return rows


def all_retail_rows(
    descriptions: dict[tuple[str, str], str], green_words: list[dict[str, str]]
) -> list[dict[str, str]]:
    """Label every distinct description, keeping the hand-checked labels."""
    labelled = {row["title"]: row for row in green_words}
    rows = []
    for description in descriptions.values():
        row = labelled.get(description)
        if row is None:
            row = {"title": description, "expected_status": "not_green"}
        rows.append(row)
    return rows


def food_rows(data: Path) -> Iterator[dict[str, str]]:
    """Label every named Open Food Facts product by its organic label or claim."""
    csv.field_size_limit(1 << 30)
    path = data / "open-food-facts" / "products.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            name = " ".join((row.get("product_name") or "").split())
            if not name:
                continue
            tags = [tag.strip() for tag in (row.get("labels_tags") or "").split(",")]
            labelled = any(tag in ORGANIC_LABEL_TAGS for tag in tags)
            claimed = ORGANIC_WORDS.search(name.lower()) is not None
            organic = labelled or claimed
            yield {
                "title": name,
                "brand": (row.get("brands") or "").split(",")[0].strip(),
                "label_codes": ";".join(tag for tag in tags if tag),
                "expected_status": "needs_review" if organic else "not_green",
                "expected_category": "organic_food" if organic else "",
                "note": "organic label tag" if labelled else "",
            }


def energy_star_rows(data: Path) -> Iterator[dict[str, str]]:
    """Write one title per certified model: brand, model number, product word."""
    for name, product_word in (
        ("refrigerators.csv", "refrigerator"),
        ("clothes-washers.csv", "clothes washer"),
    ):
        path = data / "energy-star" / name
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                brand = row["Brand Name"].strip()
                model = row["Model Number"].strip().replace("*", WILDCARD_FILL)
                yield {
                    "title": f"{brand} {model} {product_word}",
                    "expected_status": "green",
                    "expected_category": "energy_star",
                    "note": row["ENERGY STAR Unique ID"],
                }


def write(path: Path, rows: Iterator[dict[str, str]] | list[dict[str, str]]) -> None:
    """Write rows with the LABELS.csv header, empty cells for absent columns."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LABEL_COLUMNS, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


if __name__ == "__main__":
    raise SystemExit(main())
