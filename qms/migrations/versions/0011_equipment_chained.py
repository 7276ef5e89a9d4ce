"""equipment chained: each device's registration is a ledger record; only `active` changes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 15:45:00

Existing devices are chained here, in the order they were created, after the current
head, and sealed with the installation's key when `qms init-db` gives it (as the app
would seal them). The triggers then refuse DELETE and any UPDATE but of `active`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlmodel import Session, select

from qms.core import ledger
from qms.core.canonical import GENESIS, chain_hash
from qms.core.migration import append_only, drop_append_only
from qms.db import SEAL_KEY

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # In place: a batch rebuild would drop a table that readings refer to.
        op.execute(
            "ALTER TABLE equipment ADD COLUMN ledger_seq INTEGER REFERENCES ledger_entry (seq)"
        )
    else:
        op.add_column("equipment", sa.Column("ledger_seq", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_equipment_ledger_seq_ledger_entry"),
            "equipment",
            "ledger_entry",
            ["ledger_seq"],
            ["seq"],
        )
    op.create_index(op.f("ix_equipment_ledger_seq"), "equipment", ["ledger_seq"], unique=True)
    _chain_existing(bind)
    append_only("equipment", mutable=("active",))


def _chain_existing(bind) -> None:
    from qms.storage.models import EQUIPMENT, Equipment

    key = context.config.attributes.get(SEAL_KEY)
    session = Session(bind=bind)
    found = bind.execute(sa.text("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1"))
    seq, previous = found.first() or (0, GENESIS)
    devices = session.exec(select(Equipment).order_by(Equipment.created_at, Equipment.id)).all()
    for device in devices:
        kind, ref, body = EQUIPMENT.body(device, lambda user_id: str(user_id))
        seq, digest = seq + 1, chain_hash(previous, body)
        bind.execute(
            sa.text(
                "INSERT INTO ledger_entry (seq, kind, ref, content, prev_hash, hash, seal) "
                "VALUES (:seq, :kind, :ref, :content, :prev, :hash, :seal)"
            ),
            {
                "seq": seq,
                "kind": kind,
                "ref": ref,
                "content": body,
                "prev": previous,
                "hash": digest,
                "seal": ledger.seal_of(key, digest),
            },
        )
        bind.execute(
            sa.text("UPDATE equipment SET ledger_seq = :seq WHERE id = :id"),
            {"seq": seq, "id": device.id},
        )
        previous = digest
    session.close()


def downgrade() -> None:
    drop_append_only("equipment")
    op.drop_index(op.f("ix_equipment_ledger_seq"), table_name="equipment")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(
            op.f("fk_equipment_ledger_seq_ledger_entry"), "equipment", type_="foreignkey"
        )
    op.execute("ALTER TABLE equipment DROP COLUMN ledger_seq")
