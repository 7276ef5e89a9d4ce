"""regional schedules and people's mail addresses

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 10:00:00

A regional schedule's version names its region in `schedule_region` (chained,
append-only, one row beside the version: a schedule's own chained content stays as it
was recorded). An account may carry a mail address (`app_user.email`), added in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from qms.core.migration import append_only, drop_append_only

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "app_user",
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    )
    op.create_table(
        "schedule_region",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("schedule_id", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["id"], ["schedule.id"], name=op.f("fk_schedule_region_id_schedule")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_schedule_region_ledger_seq_ledger_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["region.id"], name=op.f("fk_schedule_region_region_id_region")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_region")),
        sa.UniqueConstraint("ledger_seq", name=op.f("uq_schedule_region_ledger_seq")),
    )
    op.create_index(
        op.f("ix_schedule_region_schedule_id"), "schedule_region", ["schedule_id"], unique=False
    )
    append_only("schedule_region")


def downgrade() -> None:
    drop_append_only("schedule_region")
    op.drop_index(op.f("ix_schedule_region_schedule_id"), table_name="schedule_region")
    op.drop_table("schedule_region")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_column("email")
