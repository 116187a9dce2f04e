"""Tables of the service: products, certifications, API keys and checkouts.

All tables sit on the shared `metadata`, so the one Alembic history covers them
next to the ledger, finance and run tables. Money is stored as canonical
decimal text (`str(Decimal)`), because SQLite has no exact decimal type and the
service never sums money in SQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from greenloop.store.base import Identifier, metadata

# SQLite makes an INTEGER PRIMARY KEY an alias of its row id only for INTEGER,
# so BigInteger keys use INTEGER there and BIGINT elsewhere.

products = Table(
    "products",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("merchant_id", String(64), nullable=False),
    Column("sku", String(128), nullable=False),
    Column("title", String(500), nullable=False),
    Column("brand", String(200), nullable=True),
    Column("model_number", String(200), nullable=True),
    Column("mcc", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("merchant_id", "sku"),
)

certifications = Table(
    "certifications",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column(
        "product_id",
        Identifier,
        ForeignKey("products.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("merchant_id", String(64), nullable=False),
    Column("claimed_category", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    # The merchant's evidence: certificate codes, energy-label grade, registry
    # model number and document references, as submitted.
    Column("evidence", JSON, nullable=False),
    # The automatic check: the identifier's verdict on the evidence.
    Column("auto_check", JSON, nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_certifications_merchant_state",
    certifications.c.merchant_id,
    certifications.c.state,
)
Index("ix_certifications_state", certifications.c.state)
Index("ix_certifications_product_id", certifications.c.product_id)

certification_transitions = Table(
    "certification_transitions",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column(
        "certification_id",
        Identifier,
        ForeignKey("certifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("actor_role", String(32), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_certification_transitions_certification_id",
    certification_transitions.c.certification_id,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    # The public part of the key, shown in logs and listings in place of the key.
    Column("key_id", String(32), nullable=False, unique=True),
    # SHA-256 of the whole key. Keys carry 256 random bits, so a fast hash is
    # enough: there is nothing to guess by brute force.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("api_key_id", String(32), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("api_key_id", "idempotency_key"),
)

checkout_confirmations = Table(
    "checkout_confirmations",
    metadata,
    Column("id", Identifier, primary_key=True, autoincrement=True),
    Column("purchase_id", String(128), nullable=False, unique=True),
    Column("merchant_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("sku", String(128), nullable=True),
    Column("title", String(500), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("region", String(8), nullable=True),
    Column("quantity", String(40), nullable=False),
    Column("installments", Integer, nullable=False),
    Column("verdict_status", String(16), nullable=False),
    Column("category", String(32), nullable=True),
    Column("verdict", JSON, nullable=False),
    Column("offer", JSON, nullable=True),
    Column("impact", JSON, nullable=True),
    Column("kg_co2e_lifetime", String(40), nullable=True),
    Column("awards", JSON, nullable=False),
    # The certification whose certified product was evidence for the verdict,
    # so that a revocation can find the purchases it affects.
    Column("certification_id", Identifier, nullable=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_checkout_confirmations_user_id", checkout_confirmations.c.user_id)
Index("ix_checkout_confirmations_merchant_id", checkout_confirmations.c.merchant_id)
Index(
    "ix_checkout_confirmations_certification_id",
    checkout_confirmations.c.certification_id,
)

SERVICE_TABLES = (
    products,
    certifications,
    certification_transitions,
    api_keys,
    idempotency_keys,
    checkout_confirmations,
)
