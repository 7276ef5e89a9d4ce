"""readings' references checked once per INSERT statement on PostgreSQL

On PostgreSQL the two foreign keys of `reading` (its equipment, its ledger entry) fired a
check per row: most of a 500,000-row logger import. Both parents are append-only (never
deleted, keys never updated) and so is `reading`: a statement-level trigger over the new
rows checks them all in one query each (`qms.core.migration.parents_checked_per_statement`).
SQLite keeps its foreign keys (checked in C), so nothing changes there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

from alembic import op

from qms.core.migration import drop_parents_checked_per_statement, parents_checked_per_statement

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCES = (("equipment_id", "equipment", "id"), ("ledger_seq", "ledger_entry", "seq"))
FOREIGN_KEYS = {
    "fk_reading_equipment_id_equipment": ("equipment_id", "equipment", "id"),
    "fk_reading_ledger_seq_ledger_entry": ("ledger_seq", "ledger_entry", "seq"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in FOREIGN_KEYS:
        op.drop_constraint(name, "reading", type_="foreignkey")
    parents_checked_per_statement("reading", REFERENCES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    drop_parents_checked_per_statement("reading")
    for name, (column, parent, key) in FOREIGN_KEYS.items():
        op.create_foreign_key(name, "reading", parent, [column], [key])
