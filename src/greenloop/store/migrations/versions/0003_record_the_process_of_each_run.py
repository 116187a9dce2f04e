"""Record the process of each run and when its interruption was noticed

A run killed part-way stays `running`. With the host name, process id, pid
scope and process start time in its row, a later run on the same host can see
that the process has ended and mark the run `interrupted`. Rows recorded
before this revision keep NULL in the new columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS = (
    "host_name",
    "process_id",
    "process_scope",
    "process_start_ticks",
    "interruption_noticed_at",
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host_name", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("process_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("process_scope", sa.String(length=128), nullable=True)
        )
        batch.add_column(
            sa.Column("process_start_ticks", sa.BigInteger(), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "interruption_noticed_at", sa.DateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    # Runs marked `interrupted` keep that status, which needs no column.
    with op.batch_alter_table("runs") as batch:
        for name in reversed(NEW_COLUMNS):
            batch.drop_column(name)
