"""The impact step: avoided emissions of green purchases and spend-based estimates.

Impact is linear in quantity and spend estimates are linear in amount, so each
is computed once per distinct (product, region) or (category, region, currency,
year) for one unit and scaled in SQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from greenloop.categories import Status
from greenloop.identify.verdict import Verdict
from greenloop.impact import ImpactCalculator, normalize_region
from greenloop.impact.record import Impact
from greenloop.pipeline.progress import ProgressSink

UNIT_IMPACT_SCHEMA = pa.schema(
    [
        ("facts_id", pa.int64()),
        ("region_code", pa.string()),
        ("impact_method", pa.string()),
        ("impact_basis", pa.string()),
        ("region_used", pa.string()),
        ("unit_kg_co2e_per_year", pa.float64()),
        ("unit_kg_co2e_lifetime", pa.float64()),
        ("unit_low_kg_co2e_lifetime", pa.float64()),
        ("unit_high_kg_co2e_lifetime", pa.float64()),
        ("lifetime_years", pa.float64()),
        ("impact_json", pa.string()),
        ("impact_digest", pa.string()),
    ]
)

SPEND_SCHEMA = pa.schema(
    [
        ("mcc", pa.int32()),
        ("category", pa.string()),
        ("currency", pa.string()),
        ("region_code", pa.string()),
        ("year", pa.int64()),
        ("spend_method", pa.string()),
        ("kg_co2e_per_currency_unit", pa.float64()),
    ]
)


def normalize_regions(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Create `region_codes` mapping each raw region to a code; return counts."""
    raw_values = [
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT region FROM purchases WHERE region IS NOT NULL"
        ).fetchall()
    ]
    pairs = [(value, normalize_region(value)) for value in raw_values]
    table = pa.table(
        {
            "region": pa.array([raw for raw, _ in pairs], pa.string()),
            "region_code": pa.array([code for _, code in pairs], pa.string()),
        }
    )
    connection.register("region_pairs", table)
    connection.execute(
        "CREATE OR REPLACE TABLE region_codes AS SELECT * FROM region_pairs"
    )
    connection.unregister("region_pairs")
    unknown = sum(1 for _, code in pairs if code is None)
    return {"distinct_regions": len(pairs), "unrecognised_regions": unknown}


@dataclass
class GreenFacts:
    """The green products and what an impact method may read of their verdicts.

    `facts[i]` is the `impact_facts_key` of the verdict of `product_keys[i]`,
    and `representatives` contains one verdict for each distinct facts key.
    """

    product_keys: list[int] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    representatives: dict[str, Verdict] = field(default_factory=dict)

    def add(self, product_key: int, verdict: Verdict) -> None:
        """Add one product if its verdict is green."""
        if verdict.status != Status.GREEN:
            return
        key = impact_facts_key(verdict)
        self.product_keys.append(product_key)
        self.facts.append(key)
        self.representatives.setdefault(key, verdict)

    def extend(self, other: GreenFacts) -> None:
        """Add the products of `other` after these."""
        self.product_keys.extend(other.product_keys)
        self.facts.extend(other.facts)
        for key, verdict in other.representatives.items():
            self.representatives.setdefault(key, verdict)


def compute_impacts(
    connection: duckdb.DuckDBPyConnection,
    calculator: ImpactCalculator,
    green: GreenFacts,
    progress: ProgressSink,
) -> dict[tuple[int, str | None], Impact]:
    """Create `product_facts`, `unit_impacts` and `spend_factors`.

    Green products with the same verified facts have the same impact in the same
    region, so the calculator runs once per distinct (facts, region) pair, and
    the returned dict maps each pair to the impact of one unit.
    """
    facts_ids: dict[str, int] = {}
    product_facts = [facts_ids.setdefault(key, len(facts_ids)) for key in green.facts]
    representative = {
        facts_id: green.representatives[key] for key, facts_id in facts_ids.items()
    }
    _replace_table(
        connection,
        "product_facts",
        pa.table(
            {
                "product_key": pa.array(green.product_keys, pa.uint64()),
                "facts_id": pa.array(product_facts, pa.int64()),
            }
        ),
    )
    pairs = connection.execute(
        """
        SELECT DISTINCT f.facts_id, r.region_code
        FROM purchases p JOIN product_facts f USING (product_key)
        LEFT JOIN region_codes r ON p.region = r.region
        ORDER BY 1, 2
        """
    ).fetchall()
    progress.start("impact", len(pairs))
    rows: list[dict[str, Any]] = []
    unit_impacts: dict[tuple[int, str | None], Impact] = {}
    for facts_id, region_code in pairs:
        impact = calculator.impact(representative[facts_id], 1.0, region_code)
        if impact is not None:
            unit_impacts[(facts_id, region_code)] = impact
            rows.append(_unit_row(facts_id, region_code, impact))
        progress.advance(1)
    _replace_table(
        connection, "unit_impacts", pa.Table.from_pylist(rows, UNIT_IMPACT_SCHEMA)
    )
    _spend_factors(connection, calculator)
    progress.finish()
    return unit_impacts


def impact_facts_key(verdict: Verdict) -> str:
    """Return a key of everything in a verdict that an impact method may read."""
    return json.dumps(
        [
            str(verdict.status),
            verdict.category,
            verdict.standard_id,
            verdict.standard_version,
            verdict.top_tier,
            verdict.attributes,
        ],
        sort_keys=True,
        default=str,
    )


def _unit_row(facts_id: int, region_code: str | None, impact: Impact) -> dict[str, Any]:
    impact_json = json.dumps(impact.to_dict(), ensure_ascii=False, default=str)
    return {
        "facts_id": facts_id,
        "region_code": region_code,
        "impact_method": f"{impact.method}@{impact.method_version}",
        "impact_basis": str(impact.basis),
        "region_used": impact.region_used,
        "unit_kg_co2e_per_year": impact.kg_co2e_per_year,
        "unit_kg_co2e_lifetime": impact.kg_co2e_lifetime,
        "unit_low_kg_co2e_lifetime": impact.low_kg_co2e_lifetime,
        "unit_high_kg_co2e_lifetime": impact.high_kg_co2e_lifetime,
        "lifetime_years": impact.lifetime_years,
        "impact_json": impact_json,
        "impact_digest": hashlib.sha256(impact_json.encode("utf-8")).hexdigest(),
    }


def _spend_factors(
    connection: duckdb.DuckDBPyConnection, calculator: ImpactCalculator
) -> None:
    keys = connection.execute(
        """
        SELECT DISTINCT p.mcc, v.category, p.currency, r.region_code,
               year(p.occurred_at) AS year
        FROM purchases p JOIN product_verdicts v USING (product_key)
        LEFT JOIN region_codes r ON p.region = r.region
        """
    ).fetchall()
    rows = []
    for mcc, category, currency, region_code, year in keys:
        estimate = calculator.spend_estimate(
            Decimal(1), currency, mcc, category, region_code, year
        )
        if estimate is None:
            continue
        rows.append(
            {
                "mcc": mcc,
                "category": category,
                "currency": currency,
                "region_code": region_code,
                "year": year,
                "spend_method": f"{estimate.method}@{estimate.method_version}",
                "kg_co2e_per_currency_unit": estimate.kg_co2e_per_year,
            }
        )
    _replace_table(
        connection, "spend_factors", pa.Table.from_pylist(rows, SPEND_SCHEMA)
    )


def _replace_table(
    connection: duckdb.DuckDBPyConnection, name: str, table: pa.Table
) -> None:
    connection.register(f"{name}_arrow", table)
    connection.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name}_arrow")
    connection.unregister(f"{name}_arrow")


def create_purchase_results(connection: duckdb.DuckDBPyConnection) -> None:
    """Create `results`: each purchase with its verdict, impact and spend estimate.

    The verdict's reasons, claims, evidence and attributes stay in
    `product_verdicts`, one row per product, instead of being copied to every
    purchase of the product.
    """
    connection.execute(
        """
        CREATE OR REPLACE TABLE results AS
        SELECT p.*, r.region_code, f.facts_id,
               v.status, v.category, v.standard_id, v.standard_version, v.top_tier,
               v.model_category, v.model_score, v.claim_kinds, v.verdict_digest,
               u.impact_method, u.impact_basis, u.region_used, u.lifetime_years,
               u.unit_kg_co2e_per_year * p.net_quantity AS kg_co2e_per_year,
               u.unit_kg_co2e_lifetime * p.net_quantity AS kg_co2e_lifetime,
               u.unit_low_kg_co2e_lifetime * p.net_quantity AS low_kg_co2e_lifetime,
               u.unit_high_kg_co2e_lifetime * p.net_quantity AS high_kg_co2e_lifetime,
               u.impact_digest,
               s.spend_method,
               s.kg_co2e_per_currency_unit * CAST(p.net_amount AS DOUBLE)
                   AS spend_estimate_kg_co2e
        FROM purchases p
        JOIN product_verdicts v USING (product_key)
        LEFT JOIN region_codes r ON p.region = r.region
        LEFT JOIN product_facts f ON f.product_key = p.product_key
        LEFT JOIN unit_impacts u
          ON u.facts_id = f.facts_id
         AND u.region_code IS NOT DISTINCT FROM r.region_code
        LEFT JOIN spend_factors s
          ON s.mcc IS NOT DISTINCT FROM p.mcc
         AND s.category IS NOT DISTINCT FROM v.category
         AND s.currency = p.currency
         AND s.region_code IS NOT DISTINCT FROM r.region_code
         AND s.year = year(p.occurred_at)
        """
    )
