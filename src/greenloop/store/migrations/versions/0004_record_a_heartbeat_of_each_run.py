"""Record a heartbeat of each run and why a run was marked interrupted

A run of another host, or one whose process cannot be checked, could only stay
`running` for ever. With `heartbeat_at`, which the run's process refreshes
while it runs, a later process marks such a run `interrupted` once the
heartbeat is stale. `interruption_reason` records which rule marked it. Rows
recorded before this revision have no heartbeat, so their start time stands in
for it. Before this revision only an ended process could mark a run, so every
row with an interruption time gets that reason.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS = ("heartbeat_at", "interruption_reason")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("interruption_reason", sa.String(length=32), nullable=True)
        )
    op.execute(
        "UPDATE runs SET interruption_reason = 'process_ended' "
        "WHERE interruption_noticed_at IS NOT NULL"
    )


def downgrade() -> None:
    # Runs marked `interrupted` keep that status, which needs no column.
    with op.batch_alter_table("runs") as batch:
        for name in reversed(NEW_COLUMNS):
            batch.drop_column(name)
