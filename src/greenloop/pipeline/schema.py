"""The purchase record the run works on, as DuckDB column types.

An input file is mapped onto these fields. `amount` is the line total in the
currency's major unit, or is computed as `quantity * unit_price` when the input
gives a unit price instead.
"""

from __future__ import annotations

from decimal import Decimal

PURCHASE_FIELDS: dict[str, str] = {
    "purchase_id": "VARCHAR",
    "occurred_at": "TIMESTAMP",
    "user_id": "VARCHAR",
    "merchant_id": "VARCHAR",
    "merchant_name": "VARCHAR",
    "mcc": "INTEGER",
    "title": "VARCHAR",
    "sku": "VARCHAR",
    "brand": "VARCHAR",
    "model_number": "VARCHAR",
    "quantity": "DOUBLE",
    "unit_price": "DECIMAL(18,4)",
    "amount": "DECIMAL(18,4)",
    "currency": "VARCHAR",
    "region": "VARCHAR",
    "installments": "INTEGER",
    "energy_label_grade": "INTEGER",
    "certificate_id": "VARCHAR",
    "label_codes": "VARCHAR",
    "returns_purchase_id": "VARCHAR",
}

REQUIRED_FIELDS = ("purchase_id", "occurred_at", "title", "quantity", "currency")

NUMERIC_FIELDS = frozenset(
    name for name, kind in PURCHASE_FIELDS.items() if kind not in ("VARCHAR",)
)

# Columns that together identify a product: purchases with equal values share
# one identification.
PRODUCT_KEY_FIELDS = (
    "title",
    "mcc",
    "merchant_id",
    "merchant_name",
    "brand",
    "model_number",
    "sku",
    "energy_label_grade",
    "certificate_id",
    "label_codes",
)

# Limits that no real purchase line crosses; a value outside them is an input error.
EARLIEST_PURCHASE_YEAR = 1990
MAX_INSTALLMENTS = 60
ENERGY_LABEL_GRADES = (1, 5)
MCC_RANGE = (1, 9999)
# The store's narrowest purchase_id column (the finance tables') takes this many
# characters, and PostgreSQL text cannot contain a NUL character.
MAX_PURCHASE_ID_LENGTH = 128
# The merchant_id column of the finance tables, the narrowest the run writes.
MAX_MERCHANT_ID_LENGTH = 128
# A ledger record states the amount in hundredths as an RFC 8785 number, which
# is exact only up to 2**53 - 1.
MAX_AMOUNT = Decimal(2**53 - 1) / 100
# No consumer purchase line has a million units, so a larger quantity is an
# input error. The limit also keeps a ledger record's lifetime grams CO2e
# (quantity x unit kgCO2e x 1000) within 2**53 - 1 for any product that avoids
# less than 9,000 t CO2e per unit. The largest unit impact of the shipped
# factors is a new-energy vehicle's, which is less than the 24.5 t that the
# petrol car of impact/factors/vehicles.yaml emits over its 150,000 km.
MAX_QUANTITY = 1_000_000
