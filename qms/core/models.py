"""The ledger's own table: one link of the hash chain per regulated record."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# A ForeignKey's `info` key: on PostgreSQL this reference is checked by its table's
# statement-level trigger (`qms.core.migration.parents_checked_per_statement`), not by a
# foreign-key constraint (SQLite keeps the constraint). Only for append-only parents.
CHECKED_PER_STATEMENT = "qms_checked_per_statement"


class LedgerEntry(SQLModel, table=True):
    """One link of the chain: hash = sha256(prev_hash + content)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("kind", "ref"),)

    # Assigned by the ledger under its lock: 1, 2, 3, ... with no gaps.
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=16)  # one of the declared record types' kinds
    ref: str = Field(max_length=128)  # the typed row's id
    content: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    # Unique: two entries can never follow the same one (no fork, even by mistake).
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    # HMAC-SHA256 of `hash` under the installation's ledger key (kept outside the
    # database): a record appended or rewritten by someone without the key has no valid
    # seal. NULL on entries written before sealing began (or by code given no key).
    seal: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


def ledger_seq_column(*, checked_per_statement: bool = False) -> Column:
    """The column by which a typed row points at its ledger entry (one entry, one row).

    `checked_per_statement`: on PostgreSQL the reference is checked by the table's
    statement-level trigger (`qms.core.migration.parents_checked_per_statement`), not by a
    foreign key row by row: for tables written in bulk (readings)."""
    info = {CHECKED_PER_STATEMENT: True} if checked_per_statement else {}
    return Column(Integer, ForeignKey("ledger_entry.seq", info=info), nullable=False, unique=True)
