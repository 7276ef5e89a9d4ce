"""ledger anchors and seals: the heads each verify, audit run and report relied on
(append-only), and each ledger entry's seal (an HMAC under a key kept outside the database)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import qms.db
from qms.core.migration import append_only, drop_append_only

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_anchor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("source_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_anchor")),
    )
    append_only("ledger_anchor")  # qms_refuse_change() comes from 0002
    # Not in a batch: SQLite adds the column in place, so ledger_entry keeps its triggers.
    op.add_column("ledger_entry", sa.Column("seal", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # In place on both (SQLite 3.35+): a batch rebuild would lose ledger_entry's triggers.
    op.execute("ALTER TABLE ledger_entry DROP COLUMN seal")
    drop_append_only("ledger_anchor")
    op.drop_table("ledger_anchor")
