"""Create the greenloop tables

The tables of greenloop.store.models (service), greenloop.store.ledger,
greenloop.store.finance and greenloop.store.runs, as of 2026-12-04 17:50 UTC.

Revision ID: 0001
Revises:
Create Date: 2026-12-04 17:50:08.292700
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_table(
        "checkout_confirmations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("purchase_id", sa.String(length=128), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=True),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("installments", sa.Integer(), nullable=False),
        sa.Column("verdict_status", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=False),
        sa.Column("offer", sa.JSON(), nullable=True),
        sa.Column("impact", sa.JSON(), nullable=True),
        sa.Column("kg_co2e_lifetime", sa.String(length=40), nullable=True),
        sa.Column("awards", sa.JSON(), nullable=False),
        sa.Column(
            "certification_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_confirmations")),
        sa.UniqueConstraint(
            "purchase_id", name=op.f("uq_checkout_confirmations_purchase_id")
        ),
    )
    with op.batch_alter_table("checkout_confirmations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkout_confirmations_certification_id",
            ["certification_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_checkout_confirmations_merchant_id", ["merchant_id"], unique=False
        )
        batch_op.create_index(
            "ix_checkout_confirmations_user_id", ["user_id"], unique=False
        )

    op.create_table(
        "finance_allocations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("facility_id", sa.String(length=80), nullable=False),
        sa.Column("purchase_id", sa.String(length=128), nullable=False),
        sa.Column("allocated_fen", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_fen", sa.BigInteger(), nullable=False),
        sa.Column("allocated_on", sa.Date(), nullable=False),
        sa.Column("measured_on", sa.Date(), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_allocations")),
        sa.UniqueConstraint(
            "facility_id",
            "purchase_id",
            name=op.f("uq_finance_allocations_facility_id"),
        ),
    )
    with op.batch_alter_table("finance_allocations", schema=None) as batch_op:
        batch_op.create_index(
            "uq_finance_allocations_active_purchase",
            ["purchase_id"],
            unique=True,
            sqlite_where=sa.text("released_on IS NULL"),
            postgresql_where=sa.text("released_on IS NULL"),
        )

    op.create_table(
        "finance_awards",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("campaign_id", sa.String(length=80), nullable=False),
        sa.Column("purchase_id", sa.String(length=128), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("benefit_kind", sa.String(length=40), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("facility_id", sa.String(length=80), nullable=False),
        sa.Column("savings_fen", sa.BigInteger(), nullable=False),
        sa.Column("savings_balance_after_fen", sa.BigInteger(), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draw_id", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_awards")),
        sa.UniqueConstraint(
            "campaign_id", "purchase_id", name=op.f("uq_finance_awards_campaign_id")
        ),
    )
    op.create_table(
        "finance_campaign_days",
        sa.Column("campaign_id", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "day", name=op.f("pk_finance_campaign_days")
        ),
    )
    op.create_table(
        "finance_campaign_users",
        sa.Column("campaign_id", sa.String(length=80), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("awards", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "user_key", name=op.f("pk_finance_campaign_users")
        ),
    )
    op.create_table(
        "finance_campaigns",
        sa.Column("campaign_id", sa.String(length=80), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("facility_id", sa.String(length=80), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_finance_campaigns")),
    )
    op.create_table(
        "finance_draws",
        sa.Column("draw_id", sa.String(length=80), nullable=False),
        sa.Column("campaign_id", sa.String(length=80), nullable=False),
        sa.Column("commitment", sa.JSON(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("seed_hex", sa.String(length=128), nullable=True),
        sa.Column("winners", sa.JSON(), nullable=True),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("draw_id", name=op.f("pk_finance_draws")),
        sa.UniqueConstraint("campaign_id", name=op.f("uq_finance_draws_campaign_id")),
    )
    op.create_table(
        "finance_facilities",
        sa.Column("facility_id", sa.String(length=80), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("drawn_fen", sa.BigInteger(), nullable=False),
        sa.Column("unallocated_fen", sa.BigInteger(), nullable=False),
        sa.Column("accrued_fen", sa.BigInteger(), nullable=False),
        sa.Column("savings_spent_fen", sa.BigInteger(), nullable=False),
        sa.Column("accrued_through", sa.Date(), nullable=True),
        sa.Column("allocated_as_of", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("facility_id", name=op.f("pk_finance_facilities")),
    )
    op.create_table(
        "finance_loans",
        sa.Column("purchase_id", sa.String(length=128), nullable=False),
        sa.Column("user_key", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("merchant_id", sa.String(length=128), nullable=True),
        sa.Column("kg_co2e_lifetime", sa.Float(), nullable=True),
        sa.Column("plan_kind", sa.String(length=16), nullable=False),
        sa.Column("fee_rate", sa.String(length=20), nullable=False),
        sa.Column("fee_schedule", sa.String(length=80), nullable=False),
        sa.Column("consumer_fee_waived", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_on", sa.Date(), nullable=True),
        sa.Column("partial_refunds", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id", name=op.f("pk_finance_loans")),
    )
    op.create_table(
        "finance_savings_days",
        sa.Column("facility_id", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("drawn_fen", sa.BigInteger(), nullable=False),
        sa.Column("savings_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "facility_id", "day", name=op.f("pk_finance_savings_days")
        ),
    )
    op.create_table(
        "green_assets",
        sa.Column("purchase_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=True),
        sa.Column("merchant_id", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("standard_id", sa.String(length=80), nullable=False),
        sa.Column("standard_version", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("kg_co2e_per_year", sa.Float(), nullable=True),
        sa.Column("kg_co2e_lifetime", sa.Float(), nullable=True),
        sa.Column("verdict_digest", sa.String(length=64), nullable=False),
        sa.Column("impact_digest", sa.String(length=64), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("reversed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id", name=op.f("pk_green_assets")),
        sa.UniqueConstraint("ledger_index", name=op.f("uq_green_assets_ledger_index")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("api_key_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint(
            "api_key_id", "idempotency_key", name=op.f("uq_idempotency_keys_api_key_id")
        ),
    )
    op.create_table(
        "ledger_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_log")),
        sa.UniqueConstraint("origin", name=op.f("uq_ledger_log_origin")),
    )
    op.create_table(
        "products",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("brand", sa.String(length=200), nullable=True),
        sa.Column("model_number", sa.String(length=200), nullable=True),
        sa.Column("mcc", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("merchant_id", "sku", name=op.f("uq_products_merchant_id")),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_path", sa.Text(), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("standard", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manifest", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    op.create_table(
        "certifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "product_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("claimed_category", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("auto_check", sa.JSON(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_certifications_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certifications")),
    )
    with op.batch_alter_table("certifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_certifications_merchant_state", ["merchant_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_certifications_product_id", ["product_id"], unique=False
        )
        batch_op.create_index("ix_certifications_state", ["state"], unique=False)

    op.create_table(
        "ledger_checkpoint",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"],
            ["ledger_log.id"],
            name=op.f("fk_ledger_checkpoint_log_id_ledger_log"),
        ),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_ledger_checkpoint")),
    )
    op.create_table(
        "ledger_entry",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("purchase_id", sa.String(length=255), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"],
            ["ledger_log.id"],
            name=op.f("fk_ledger_entry_log_id_ledger_log"),
        ),
        sa.PrimaryKeyConstraint("log_id", "entry_index", name=op.f("pk_ledger_entry")),
        sa.UniqueConstraint(
            "log_id", "purchase_id", name=op.f("uq_ledger_entry_log_id")
        ),
    )
    op.create_table(
        "ledger_tile",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tile_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("inner_hashes", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["log_id"], ["ledger_log.id"], name=op.f("fk_ledger_tile_log_id_ledger_log")
        ),
        sa.PrimaryKeyConstraint(
            "log_id", "level", "tile_index", name=op.f("pk_ledger_tile")
        ),
    )
    op.create_table(
        "certification_transitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "certification_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certification_id"],
            ["certifications.id"],
            name=op.f("fk_certification_transitions_certification_id_certifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification_transitions")),
    )
    with op.batch_alter_table("certification_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_certification_transitions_certification_id",
            ["certification_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("certification_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_certification_transitions_certification_id")

    op.drop_table("certification_transitions")
    op.drop_table("ledger_tile")
    op.drop_table("ledger_entry")
    op.drop_table("ledger_checkpoint")
    with op.batch_alter_table("certifications", schema=None) as batch_op:
        batch_op.drop_index("ix_certifications_state")
        batch_op.drop_index("ix_certifications_product_id")
        batch_op.drop_index("ix_certifications_merchant_state")

    op.drop_table("certifications")
    op.drop_table("runs")
    op.drop_table("products")
    op.drop_table("ledger_log")
    op.drop_table("idempotency_keys")
    op.drop_table("green_assets")
    op.drop_table("finance_savings_days")
    op.drop_table("finance_loans")
    op.drop_table("finance_facilities")
    op.drop_table("finance_draws")
    op.drop_table("finance_campaigns")
    op.drop_table("finance_campaign_users")
    op.drop_table("finance_campaign_days")
    op.drop_table("finance_awards")
    with op.batch_alter_table("finance_allocations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_finance_allocations_active_purchase",
            sqlite_where=sa.text("released_on IS NULL"),
            postgresql_where=sa.text("released_on IS NULL"),
        )

    op.drop_table("finance_allocations")
    with op.batch_alter_table("checkout_confirmations", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_confirmations_user_id")
        batch_op.drop_index("ix_checkout_confirmations_merchant_id")
        batch_op.drop_index("ix_checkout_confirmations_certification_id")

    op.drop_table("checkout_confirmations")
    op.drop_table("api_keys")
