"""ward grants: nurses and physicians belong to wards (append-only grant events)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import qms.db
from qms.core.migration import append_only, drop_append_only

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ward_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ward_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["app_user.id"], name=op.f("fk_ward_grant_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_ward_grant_user_id_app_user")
        ),
        sa.ForeignKeyConstraint(["ward_id"], ["ward.id"], name=op.f("fk_ward_grant_ward_id_ward")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ward_grant")),
        sa.UniqueConstraint(
            "user_id", "ward_id", "n", name=op.f("uq_ward_grant_user_id_ward_id_n")
        ),
    )
    with op.batch_alter_table("ward_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ward_grant_user_id"), ["user_id"], unique=False)
    append_only("ward_grant")


def downgrade() -> None:
    drop_append_only("ward_grant")
    with op.batch_alter_table("ward_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ward_grant_user_id"))
    op.drop_table("ward_grant")
