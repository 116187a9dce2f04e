"""The ingest step: map, validate and split the input into purchases and returns.

The whole step is SQL in DuckDB, so it runs out of core at any size. Each row
gets a list of problems. A row with any problem goes to the quarantine with its
row number, column, value and reason, and every other row becomes either a
purchase or a return. The records that reading found malformed join the
quarantine with a detail beside the reason. Returns are matched to the purchase
they reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pycountry

from greenloop.pipeline.mapping import (
    IDENTITY_MAPPING_NAME,
    ROW_NUMBER_COLUMN,
    TEMPLATE_FIELD,
    ColumnMapping,
    ColumnSpec,
    MappingError,
)
from greenloop.pipeline.schema import (
    EARLIEST_PURCHASE_YEAR,
    ENERGY_LABEL_GRADES,
    MAX_AMOUNT,
    MAX_INSTALLMENTS,
    MAX_MERCHANT_ID_LENGTH,
    MAX_PURCHASE_ID_LENGTH,
    MAX_QUANTITY,
    MCC_RANGE,
    PRODUCT_KEY_FIELDS,
    PURCHASE_FIELDS,
    REQUIRED_FIELDS,
)
from greenloop.pipeline.sources import MALFORMED_CELLS, Source

EXPECTED_FORMS = {
    "TIMESTAMP": "a date and time such as 2024-05-01 14:30:00",
    "INTEGER": "a whole number",
    "DOUBLE": "a number such as 2 or 1.5",
    "DECIMAL(18,4)": (
        "a decimal number such as 3299.00, with at most 14 digits before the point"
    ),
}


@dataclass(frozen=True)
class IngestCounts:
    """Counts of what the ingest step found, row by row."""

    rows_read: int
    quarantined_rows: int
    quarantine_problems: int
    purchases: int
    returns: int
    returns_matched: int
    returns_unmatched: int


def ingest(
    connection: duckdb.DuckDBPyConnection,
    source: Source,
    mapping: ColumnMapping,
    run_started_at: datetime,
) -> IngestCounts:
    """Create the tables `quarantine` and `returns` and the view `purchases`.

    The rows come from `raw`. `drop_purchases` frees the tables under the view
    once no step reads it.
    """
    _check_mapping(source, mapping)
    _create_currency_table(connection)
    text_fields = _text_fields(mapping, source.column_types)
    connection.execute(_staging_sql(mapping, run_started_at, text_fields))
    _create_quarantine(connection, source, mapping)
    _create_returns(connection, mapping)
    _create_purchases(connection)
    # Every row now sits in purchases, returns or the quarantine.
    return _counts(connection, source)


def _check_mapping(source: Source, mapping: ColumnMapping) -> None:
    missing = sorted(mapping.source_columns() - set(source.columns))
    if missing:
        raise MappingError(
            f"{source.path} has no column {', '.join(repr(m) for m in missing)} that "
            f"mapping {mapping.name!r} reads; its columns are "
            f"{', '.join(source.columns)}. Give --mapping for this export."
        )
    mapped = set(mapping.columns) | set(mapping.constants)
    for field in REQUIRED_FIELDS:
        if field not in mapped and mapping.name == IDENTITY_MAPPING_NAME:
            raise MappingError(
                f"{source.path} has no column {field!r} (its columns are "
                f"{', '.join(source.columns)}); name the columns as purchase fields "
                f"or give --mapping FILE (shipped: online-retail, bank-transactions)"
            )
        if field not in mapped:
            raise MappingError(
                f"mapping {mapping.name!r} does not provide the required field "
                f"{field!r}; map it under 'columns' or set it under 'constants'"
            )
    if not {"amount", "unit_price"} & mapped:
        raise MappingError(
            f"mapping {mapping.name!r} provides neither 'amount' nor 'unit_price'"
        )


def _create_currency_table(connection: duckdb.DuckDBPyConnection) -> None:
    codes = sorted(currency.alpha_3 for currency in pycountry.currencies)
    connection.execute("CREATE OR REPLACE TABLE currency_codes (code VARCHAR)")
    connection.executemany(
        "INSERT INTO currency_codes VALUES (?)", [(c,) for c in codes]
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _raw_expression(field: str, mapping: ColumnMapping) -> str:
    """Return SQL for the field's source value before parsing, or NULL."""
    if field in mapping.constants:
        return _literal(mapping.constants[field])
    spec = mapping.spec(field)
    if spec is None:
        return "NULL"
    if spec.template is not None:
        return _template_sql(spec.template)
    assert spec.column is not None
    column = _quote(spec.column)
    if spec.integer_text:
        return f"CAST(TRY_CAST(TRY_CAST({column} AS DOUBLE) AS BIGINT) AS VARCHAR)"
    return column


def _template_sql(template: str) -> str:
    parts: list[str] = []
    position = 0
    for match in TEMPLATE_FIELD.finditer(template):
        if match.start() > position:
            parts.append(_literal(template[position : match.start()]))
        parts.append(f"CAST({_quote(match.group(1))} AS VARCHAR)")
        position = match.end()
    if position < len(template):
        parts.append(_literal(template[position:]))
    return " || ".join(parts) if parts else "''"


def _text_fields(mapping: ColumnMapping, column_types: dict[str, str]) -> set[str]:
    """Return the fields whose source value is text, which parsing must trim first."""
    fields = set()
    for field in PURCHASE_FIELDS:
        if field in mapping.constants:
            if isinstance(mapping.constants[field], str):
                fields.add(field)
            continue
        spec = mapping.spec(field)
        if spec is None:
            continue
        source_type = column_types.get(spec.column or "", "VARCHAR")
        if spec.template is not None or spec.integer_text or source_type == "VARCHAR":
            fields.add(field)
    return fields


def _blank(raw: str, is_text: bool) -> str:
    """Return SQL that is true when a source value is missing or blank."""
    return f"NULLIF(trim({raw}), '') IS NULL" if is_text else f"{raw} IS NULL"


def _typed_expression(
    field: str, raw: str, spec: ColumnSpec | None, is_text: bool
) -> str:
    kind = PURCHASE_FIELDS[field]
    if kind == "VARCHAR":
        return f"NULLIF(trim({raw}), '')" if is_text else f"CAST({raw} AS VARCHAR)"
    if kind == "TIMESTAMP" and spec is not None and spec.date_format:
        return f"try_strptime(CAST({raw} AS VARCHAR), {_literal(spec.date_format)})"
    if kind.startswith("DECIMAL") or kind in ("DOUBLE", "INTEGER"):
        # Text may group thousands with spaces, as in "-1 300.00".
        text = f"replace(trim({raw}), ' ', '')" if is_text else raw
        typed = f"TRY_CAST({text} AS {kind})"
        if spec is not None and spec.negate:
            typed = f"(-{typed})"
        return typed
    return f"TRY_CAST({raw} AS {kind})"


def _staging_sql(
    mapping: ColumnMapping, run_started_at: datetime, text_fields: set[str]
) -> str:
    raw_columns = [
        f"{_raw_expression(f, mapping)} AS {_quote('raw_' + f)}"
        for f in PURCHASE_FIELDS
    ]
    prefix_rule = mapping.returns.prefix
    prefix_sql = (
        f"starts_with(CAST({_quote(prefix_rule.column)} AS VARCHAR), "
        f"{_literal(prefix_rule.value)})"
        if prefix_rule
        else "false"
    )
    id_spec = mapping.spec("purchase_id")
    id_sql = '"raw_purchase_id"'
    if id_spec is not None and id_spec.number_repeats:
        id_sql = (
            "raw_purchase_id || CASE WHEN row_number() OVER (PARTITION BY "
            "raw_purchase_id ORDER BY __row__) > 1 THEN ':' || CAST(row_number() "
            "OVER (PARTITION BY raw_purchase_id ORDER BY __row__) AS VARCHAR) "
            "ELSE '' END"
        )
    typed_columns = []
    for field in PURCHASE_FIELDS:
        raw = _quote("raw_" + field)
        typed = _typed_expression(field, raw, mapping.spec(field), field in text_fields)
        typed_columns.append(f"{typed} AS {field}")
    latest = run_started_at.replace(tzinfo=None).isoformat(sep=" ")
    amount_from_price = (
        "amount" not in mapping.columns and "amount" not in mapping.constants
    )
    # Within MAX_QUANTITY, quantity x unit_price is below 10**20, which
    # DECIMAL(38,4) contains, so the check against MAX_AMOUNT compares the whole
    # amount. DuckDB evaluates the product only for the rows whose quantity is
    # within the limit. The staged table narrows the amount to DECIMAL(18,4),
    # which loses nothing because rows above MAX_AMOUNT are quarantined.
    amount_sql = (
        f"CASE WHEN abs(quantity) <= {MAX_QUANTITY} THEN CAST(CAST(abs(quantity) "
        "AS DECIMAL(38,4)) * CAST(unit_price AS DECIMAL(38,4)) AS DECIMAL(38,4)) END"
        if amount_from_price
        else "amount"
    )
    conditions = _problem_conditions(amount_from_price, latest, text_fields)
    problems = ",\n        ".join(_problem(*check) for check in conditions)
    any_problem = " OR ".join(f"coalesce({check[0]}, false)" for check in conditions)
    raw_names = ", ".join(_quote("raw_" + field) for field in PURCHASE_FIELDS)
    # The duplicate check reads `typed` a second time, so DuckDB stored the
    # whole input once and spilled it to disk at millions of rows.
    # Inlined, the second read takes only the id and row columns. Both reads
    # give the same rows because `raw` numbers them from the file.
    return f"""
CREATE OR REPLACE TABLE staged AS
WITH source AS NOT MATERIALIZED (
    SELECT {ROW_NUMBER_COLUMN}, {", ".join(raw_columns)},
           {prefix_sql} AS prefix_return
    FROM raw
), numbered AS NOT MATERIALIZED (
    SELECT * REPLACE ({id_sql} AS raw_purchase_id) FROM source
), typed AS NOT MATERIALIZED (
    SELECT {ROW_NUMBER_COLUMN}, prefix_return,
           numbered.* EXCLUDE ({ROW_NUMBER_COLUMN}, prefix_return),
           {", ".join(typed_columns)}
    FROM numbered
), computed AS (
    SELECT * REPLACE (
        upper(currency) AS currency,
        {amount_sql} AS amount
    ),
    prefix_return OR quantity < 0 OR returns_purchase_id IS NOT NULL AS is_return
    FROM typed
), duplicates AS (
    SELECT purchase_id, min({ROW_NUMBER_COLUMN}) AS first_row
    FROM typed WHERE purchase_id IS NOT NULL
    GROUP BY purchase_id HAVING count(*) > 1
), checked AS (
    SELECT computed.*, duplicates.first_row,
           CASE WHEN {any_problem}
                THEN list_filter([{problems}], lambda p: p IS NOT NULL)
                ELSE [] END AS problems
    FROM computed LEFT JOIN duplicates USING (purchase_id)
)
SELECT * EXCLUDE ({raw_names}, first_row)
         REPLACE (TRY_CAST(amount AS DECIMAL(18,4)) AS amount),
       raw_purchase_id, {product_key_sql("checked")} AS product_key
FROM checked
"""


def _problem(condition: str, column: str, value: str, reason: str) -> str:
    return (
        f"CASE WHEN {condition} THEN {{'column': {_literal(column)}, "
        f"'value': CAST({value} AS VARCHAR), 'reason': {_literal(reason)}}} END"
    )


def _problem_conditions(
    amount_from_price: bool, latest: str, text_fields: set[str]
) -> list[tuple[str, str, str, str]]:
    """Return each check as (condition, column, value, reason); true means a problem."""
    checks: list[tuple[str, str, str, str]] = []
    for field in REQUIRED_FIELDS:
        raw = _quote("raw_" + field)
        checks.append(
            (
                _blank(raw, field in text_fields),
                field,
                raw,
                f"missing {field}: every purchase needs one",
            )
        )
    money_field = "unit_price" if amount_from_price else "amount"
    checks.append(
        (
            _blank(f"raw_{money_field}", money_field in text_fields),
            money_field,
            f"raw_{money_field}",
            f"missing {money_field}: every purchase needs one",
        )
    )
    for field, kind in PURCHASE_FIELDS.items():
        if kind == "VARCHAR":
            continue
        raw = _quote("raw_" + field)
        checks.append(
            (
                f"NOT ({_blank(raw, field in text_fields)}) AND {field} IS NULL",
                field,
                raw,
                f"unparseable {field}: expected {EXPECTED_FORMS[kind]}",
            )
        )
    low_grade, high_grade = ENERGY_LABEL_GRADES
    low_mcc, high_mcc = MCC_RANGE
    checks += [
        (
            "currency IS NOT NULL "
            "AND currency NOT IN (SELECT code FROM currency_codes)",
            "currency",
            "raw_currency",
            "unknown currency: expected an ISO 4217 code such as CNY, GBP or USD",
        ),
        (
            "first_row IS NOT NULL AND __row__ > first_row",
            "purchase_id",
            "purchase_id",
            "duplicate purchase_id: the first row with this id is kept",
        ),
        (
            f"length(purchase_id) > {MAX_PURCHASE_ID_LENGTH} "
            "OR contains(purchase_id, chr(0))",
            "purchase_id",
            "purchase_id",
            f"invalid purchase_id: the store takes ids of up to "
            f"{MAX_PURCHASE_ID_LENGTH} characters with no NUL character",
        ),
        (
            f"length(merchant_id) > {MAX_MERCHANT_ID_LENGTH} "
            "OR contains(merchant_id, chr(0))",
            "merchant_id",
            "merchant_id",
            f"invalid merchant_id: the store takes ids of up to "
            f"{MAX_MERCHANT_ID_LENGTH} characters with no NUL character",
        ),
        (
            "quantity = 0",
            "quantity",
            "quantity",
            "impossible quantity 0: give the number of units bought, or a "
            "negative number for units returned",
        ),
        (
            "NOT isfinite(quantity)",
            "quantity",
            "raw_quantity",
            "impossible quantity: not a finite number; give the number of units bought",
        ),
        (
            f"isfinite(quantity) AND abs(quantity) > {MAX_QUANTITY}",
            "quantity",
            "raw_quantity",
            f"impossible quantity: more than {MAX_QUANTITY:,} units on one purchase "
            "line; give the number of units bought",
        ),
        (
            "NOT is_return AND amount < 0",
            money_field,
            "amount",
            "impossible amount: a purchase line must not be negative (money in, "
            "such as a deposit or refund, is not a purchase)",
        ),
        (
            "NOT is_return AND amount = 0",
            money_field,
            "amount",
            "impossible amount 0: a purchase on credit has a price (zero-price lines "
            "are notes or stock adjustments)",
        ),
        (
            f"amount > {MAX_AMOUNT}",
            money_field,
            "amount",
            f"impossible amount: more than {MAX_AMOUNT:,}, the most a ledger record "
            "states exactly",
        ),
        (
            "is_return AND amount < 0",
            money_field,
            "amount",
            "impossible amount on a return: give the refunded amount as a positive "
            "number",
        ),
        (
            f"year(occurred_at) < {EARLIEST_PURCHASE_YEAR} OR occurred_at > "
            f"TIMESTAMP '{latest}' + INTERVAL 1 DAY",
            "occurred_at",
            "occurred_at",
            f"impossible date: expected a date from {EARLIEST_PURCHASE_YEAR} up to "
            f"the run date",
        ),
        (
            f"installments < 0 OR installments > {MAX_INSTALLMENTS}",
            "installments",
            "installments",
            f"impossible installments: expected 0 to {MAX_INSTALLMENTS}",
        ),
        (
            f"energy_label_grade < {low_grade} OR energy_label_grade > {high_grade}",
            "energy_label_grade",
            "energy_label_grade",
            f"impossible energy_label_grade: China energy labels have grades "
            f"{low_grade} to {high_grade}",
        ),
        (
            f"mcc < {low_mcc} OR mcc > {high_mcc}",
            "mcc",
            "mcc",
            "impossible mcc: a merchant category code has four digits",
        ),
    ]
    return checks


def _create_quarantine(
    connection: duckdb.DuckDBPyConnection, source: Source, mapping: ColumnMapping
) -> None:
    connection.execute(
        """
        CREATE OR REPLACE TABLE quarantine AS
        SELECT __row__ AS row, purchase_id, p.column AS "column", p.value AS value,
               p.reason AS reason, CAST(NULL AS VARCHAR) AS detail
        FROM (SELECT __row__, raw_purchase_id AS purchase_id, unnest(problems) AS p
              FROM staged WHERE len(problems) > 0)
        """
    )
    if source.malformed:
        _insert_malformed(connection, source, mapping)


def _insert_malformed(
    connection: duckdb.DuckDBPyConnection, source: Source, mapping: ColumnMapping
) -> None:
    """Add the records that reading found malformed to the quarantine.

    A record's purchase id is made from its cells that could be read, by the
    mapping's expression for any row, but without the :2, :3 that number_repeats
    appends. It stays empty when the record could not be split into cells or a
    cell that the id needs could not be read.
    """
    records = pa.table(
        {
            "row": pa.array([m.row for m in source.malformed], pa.int64()),
            "column": [m.column for m in source.malformed],
            "value": [m.text for m in source.malformed],
            "reason": [m.reason for m in source.malformed],
            "detail": pa.array([m.detail for m in source.malformed], pa.string()),
        }
    )
    purchase_id = _raw_expression("purchase_id", mapping)
    connection.register("malformed_records", records)
    try:
        connection.execute(
            f"""
            INSERT INTO quarantine
            SELECT m.row, ids.purchase_id, m."column", m.value, m.reason, m.detail
            FROM malformed_records m
            LEFT JOIN (SELECT {ROW_NUMBER_COLUMN} AS row,
                              CAST({purchase_id} AS VARCHAR) AS purchase_id
                       FROM {MALFORMED_CELLS}) ids ON ids.row = m.row
            """
        )
    finally:
        connection.unregister("malformed_records")


def _create_returns(
    connection: duckdb.DuckDBPyConnection, mapping: ColumnMapping
) -> None:
    keys = mapping.returns.match_on
    key_join = " AND ".join(f"r.{k} = p.{k}" for k in keys)
    keys_present = " AND ".join(f"{k} IS NOT NULL" for k in keys) or "true"
    extra_keys = "".join(f", {k}" for k in keys if k not in ("user_id", "sku", "title"))
    returns = connection.execute(
        "SELECT count(*) FROM staged WHERE len(problems) = 0 AND is_return"
    ).fetchall()[0][0]
    # Without returns there is nothing to match, so the join reads no purchases.
    only_when_returns = "" if returns else "AND false"
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE returns AS
        WITH candidates AS (
            SELECT * FROM staged
            WHERE len(problems) = 0 AND NOT is_return {only_when_returns}
        ), rows AS (
            SELECT __row__ AS row, purchase_id AS return_id, occurred_at, user_id, sku,
                   title, returns_purchase_id, abs(quantity) AS quantity,
                   abs(amount) AS amount{extra_keys}
            FROM staged WHERE len(problems) = 0 AND is_return
        ), by_reference AS (
            SELECT r.row, c.purchase_id AS matched_id
            FROM rows r JOIN candidates c ON r.returns_purchase_id = c.purchase_id
        ), by_match AS (
            SELECT r.row, p.purchase_id AS matched_id
            FROM (SELECT * FROM rows
                  WHERE returns_purchase_id IS NULL AND {keys_present}) r
            ASOF JOIN candidates p ON {key_join} AND r.occurred_at >= p.occurred_at
        )
        SELECT rows.row, rows.return_id, rows.occurred_at, rows.user_id, rows.sku,
               rows.title, rows.quantity, rows.amount,
               coalesce(by_reference.matched_id, by_match.matched_id)
                   AS returns_purchase_id,
               CASE
                 WHEN coalesce(by_reference.matched_id, by_match.matched_id) IS NOT NULL
                   THEN 'matched'
                 WHEN rows.returns_purchase_id IS NOT NULL
                   THEN 'unmatched: purchase ' || rows.returns_purchase_id
                        || ' is not in this input'
                 ELSE 'unmatched: no earlier purchase with the same {", ".join(keys)}'
               END AS match_status
        FROM rows
        LEFT JOIN by_reference USING (row)
        LEFT JOIN by_match USING (row)
        """
    )


def product_key_sql(alias: str) -> str:
    """Return SQL for the product key: DuckDB's 64-bit hash of the product fields.

    The key identifies a product within one run; it is not meant to be compared
    across DuckDB versions.
    """
    fields = ", ".join(f"{alias}.{name}" for name in PRODUCT_KEY_FIELDS)
    return f"hash({fields})"


def _create_purchases(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the view `purchases`: the staged rows without problems or returns.

    A view, because a table would copy every purchase a second time, and
    DuckDB would spill one of the two copies to disk at millions of rows. Only
    the returned quantities are a table of their own, one row per purchase
    that a return reverses.
    """
    connection.execute(
        """
        CREATE OR REPLACE TABLE returned_quantities AS
        SELECT returns_purchase_id AS purchase_id, sum(quantity) AS quantity
        FROM returns WHERE returns_purchase_id IS NOT NULL GROUP BY 1
        """
    )
    columns = ", ".join(f"s.{name}" for name in PURCHASE_FIELDS if name != "quantity")
    connection.execute(
        f"""
        CREATE OR REPLACE VIEW purchases AS
        SELECT s.__row__ AS row, {columns}, s.quantity, s.product_key,
               least(coalesce(r.quantity, 0), s.quantity) AS returned_quantity,
               s.quantity - least(coalesce(r.quantity, 0), s.quantity) AS net_quantity,
               CAST(s.amount * (s.quantity - least(coalesce(r.quantity, 0), s.quantity))
                    / s.quantity AS DECIMAL(18,4)) AS net_amount
        FROM staged s LEFT JOIN returned_quantities r USING (purchase_id)
        WHERE len(s.problems) = 0 AND NOT s.is_return
        """
    )


def drop_purchases(connection: duckdb.DuckDBPyConnection) -> None:
    """Drop the view `purchases` and the tables under it, once no step reads it."""
    connection.execute("DROP VIEW purchases")
    connection.execute("DROP TABLE returned_quantities")
    connection.execute("DROP TABLE staged")


def _counts(connection: duckdb.DuckDBPyConnection, source: Source) -> IngestCounts:
    staged_rows, quarantined_staged = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE len(problems) > 0) FROM staged"
    ).fetchall()[0]
    problems = connection.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    purchases = connection.execute("SELECT count(*) FROM purchases").fetchall()[0][0]
    returns, matched = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE match_status = 'matched') FROM returns"
    ).fetchall()[0]
    # A record can have several problems, one entry each.
    malformed = len({record.row for record in source.malformed})
    return IngestCounts(
        rows_read=int(staged_rows) + malformed,
        quarantined_rows=int(quarantined_staged) + malformed,
        quarantine_problems=int(problems),
        purchases=int(purchases),
        returns=int(returns),
        returns_matched=int(matched),
        returns_unmatched=int(returns) - int(matched),
    )
