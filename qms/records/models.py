"""Record tables: units, step records (and corrections), signatures, unit statuses.

Every row here is written once and never updated or deleted: the database refuses
UPDATE and DELETE on them (triggers its migration installs). Each typed row points at
its ledger entry (``ledger_seq``), whose canonical JSON covers all of the row's content;
each table's declaration below says which key comes from which column.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel

from qms.checklists.facts import CANCELLED, COMPLETE, IN_PROGRESS, UNIT_STATUSES
from qms.core.i18n import _l
from qms.core.ledger import JSON, TIME, USER, declare
from qms.core.ledger import Chained as C
from qms.core.models import ledger_seq_column
from qms.db import UTCDateTime

# A unit's status: in progress (no status record yet, or reopened), complete, cancelled.
STATUSES = UNIT_STATUSES
STATUS_LABELS = {
    IN_PROGRESS: _l("in progress"),
    COMPLETE: _l("complete"),
    CANCELLED: _l("cancelled"),
}


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
    ledger_seq: int = Field(sa_column=ledger_seq_column())


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
    ledger_seq: int = Field(sa_column=ledger_seq_column())


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
    ledger_seq: int = Field(sa_column=ledger_seq_column())


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
    ledger_seq: int = Field(sa_column=ledger_seq_column())


# --- what each record chains (qms.core.ledger.declare) ----------------------------------

UNIT = declare(
    Unit,
    kind="unit",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("checklist", "checklist_id"),
        C("checklist_version"),
        C("profile"),
        C("coi_id"),
        C("patient", "patient_ref"),
        C("attributes", encoding=JSON),
        C("registered_at", encoding=TIME),
        C("registered_by", "registered_by_id", USER),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)

STEP_RECORD = declare(
    StepRecord,
    kinds=("step", "correction"),
    kind_of=lambda get: "step" if get("corrects_id") is None else "correction",
    kind_sql="CASE WHEN t.corrects_id IS NULL THEN 'step' ELSE 'correction' END",
    chained=[
        C("id"),
        C("unit", "unit_id"),
        C("step"),
        C("fields", encoding=JSON),
        C("performed_at", encoding=TIME),
        C("recorded_at", encoding=TIME),
        C("performed_by", "performed_by_id", USER),
        C("performed_by_role"),
        C("witness", "witness_id", USER),
        C("witness_role"),
        C("recorded_by", "recorded_by_id", USER),
        C("meaning"),
        C("checklist", "checklist_id"),
        C("checklist_version"),
        C("corrects", "corrects_id"),
        C("reason"),
        C("findings", encoding=JSON),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)

SIGNATURE = declare(
    Signature,
    kind="signature",
    chained=[
        C("id"),
        C("record", "record_id"),
        C("signer", "signer_id", USER),
        C("printed_name"),
        C("meaning"),
        C("signed_at", encoding=TIME),
        C("method"),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)

UNIT_STATUS = declare(
    UnitStatus,
    kind="unit_status",
    chained=[
        C("id"),
        C("unit", "unit_id"),
        C("status"),
        C("at", encoding=TIME),
        C("recorded_at", encoding=TIME),
        C("by", "by_id", USER),
        C("by_role"),
        C("method"),
        C("reason"),
        C("findings", encoding=JSON),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)
