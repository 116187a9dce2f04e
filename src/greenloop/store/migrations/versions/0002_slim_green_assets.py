"""Drop the copied record from green assets and index them by user

The ledger entry already holds each asset's canonical record, so the copy in
green_assets only doubled the bytes a run writes. The consumer's green record
selects assets by user_key, which needs an index at millions of assets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("green_assets") as batch:
        batch.drop_column("record")
        batch.create_index(op.f("ix_green_assets_user_key"), ["user_key"])


def downgrade() -> None:
    # The records come back from the ledger entries of the same purchases.
    with op.batch_alter_table("green_assets") as batch:
        batch.drop_index(op.f("ix_green_assets_user_key"))
        batch.add_column(
            sa.Column("record", sa.Text(), nullable=False, server_default="")
        )
    text = (
        "convert_from(e.record, 'UTF8')"
        if op.get_bind().dialect.name == "postgresql"
        else "CAST(e.record AS TEXT)"
    )
    op.execute(
        f"UPDATE green_assets SET record = (SELECT {text} "
        "FROM ledger_entry e WHERE e.purchase_id = green_assets.purchase_id) "
        "WHERE EXISTS (SELECT 1 FROM ledger_entry e "
        "WHERE e.purchase_id = green_assets.purchase_id)"
    )
