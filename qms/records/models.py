"""Record tables: the hash-chained ledger, units, step records (and corrections), signatures.

Every row here is written once and never updated or deleted: the database refuses
UPDATE and DELETE on them (triggers made by migration 0002). Each typed row points at
its ledger entry (``ledger_seq``), whose canonical JSON covers all of the row's content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from qms.db import UTCDateTime

# The ledger also chains storage readings: their tables register with the records' ones.
from qms.storage.models import Equipment, Reading  # noqa: F401


class LedgerEntry(SQLModel, table=True):
    """One link of the chain: hash = sha256(prev_hash + content)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("kind", "ref"),)

    # Assigned by the ledger under its lock: 1, 2, 3, ... with no gaps.
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=16)  # unit | step | correction | signature | reading
    ref: str = Field(max_length=128)  # the typed row's id
    content: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON
    # Unique: two entries can never follow the same one (no fork, even by mistake).
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))


def _ledger_seq_column() -> Column:
    return Column(Integer, ForeignKey("ledger_entry.seq"), nullable=False, unique=True)


class Unit(SQLModel, table=True):
    """One dose or bag of one product for one patient at one site."""

    id: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    checklist_id: str = Field(max_length=64)
    checklist_version: str = Field(max_length=32)
    profile: str | None = Field(default=None, max_length=32)
    coi_id: str | None = Field(default=None, max_length=64)
    # Pseudonymous reference only: never a name (see service.PATIENT_REF_RE).
    patient_ref: str = Field(max_length=64)
    attributes: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # canonical JSON
    registered_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # None for a unit imported from another site's file (its registrar is not in the file).
    registered_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    ledger_seq: int = Field(sa_column=_ledger_seq_column())


class StepRecord(SQLModel, table=True):
    """One performed step of a unit, or a correction of one (``corrects_id`` set)."""

    __tablename__ = "step_record"
    __table_args__ = (Index("ix_step_record_unit_step", "unit_id", "step"),)

    id: str = Field(primary_key=True, max_length=96)  # "<unit id>#<n>", kept across import
    unit_id: str = Field(foreign_key="unit.id", max_length=64)
    step: str = Field(max_length=64)
    fields: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # canonical JSON
    performed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    performed_by_id: int = Field(foreign_key="app_user.id")
    performed_by_role: str = Field(max_length=32)  # the role held when signing
    witness_id: int | None = Field(default=None, foreign_key="app_user.id")
    witness_role: str | None = Field(default=None, max_length=32)
    # Who entered this record: the performer, or for a correction the person correcting.
    recorded_by_id: int = Field(foreign_key="app_user.id")
    meaning: str = Field(max_length=16)  # the performer's signature meaning
    checklist_id: str = Field(max_length=64)
    checklist_version: str = Field(max_length=32)
    corrects_id: str | None = Field(
        default=None, sa_column=Column(String(96), ForeignKey("step_record.id"), index=True)
    )
    reason: str | None = Field(default=None, sa_column=Column(Text))
    findings: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # canonical JSON
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    ledger_seq: int = Field(sa_column=_ledger_seq_column())


class Signature(SQLModel, table=True):
    """An electronic signature on a step record: printed name, date-time and meaning."""

    id: str = Field(primary_key=True, max_length=112)  # "<record id>/<n>"
    record_id: str = Field(foreign_key="step_record.id", max_length=96, index=True)
    signer_id: int = Field(foreign_key="app_user.id")
    printed_name: str = Field(max_length=200)  # User.full_name when signed
    meaning: str = Field(max_length=16)  # performed | witnessed | verified | reviewed | approved
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    method: str = Field(max_length=16)  # password | session | imported
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    ledger_seq: int = Field(sa_column=_ledger_seq_column())


class UnitStatus(SQLModel, table=True):
    """A unit declared complete, cancelled, or back in progress: a signed record, never edited.

    The latest one (in ledger order) is the unit's status; none means in progress.
    """

    __tablename__ = "unit_status"

    id: str = Field(primary_key=True, max_length=80)  # "<unit id>!<n>"
    unit_id: str = Field(foreign_key="unit.id", max_length=64, index=True)
    status: str = Field(max_length=16)  # in_progress | complete | cancelled
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # when it took effect
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # None only when imported: the interchange file says the status, not who declared it.
    by_id: int | None = Field(default=None, foreign_key="app_user.id")
    by_role: str | None = Field(default=None, max_length=32)
    method: str = Field(max_length=16)  # how it was signed: password | session | imported
    reason: str | None = Field(default=None, sa_column=Column(Text))
    findings: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # canonical JSON
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    ledger_seq: int = Field(sa_column=_ledger_seq_column())
