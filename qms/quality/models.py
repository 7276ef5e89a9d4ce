"""Quality records: audit runs, finding reviews, deviations, CAPA and their state changes.

Every row here is a regulated record, chained in the ledger and never updated or
deleted (the migration makes the database refuse it). State is derived from history:
a deviation is its opening row plus its events in ledger order; a CAPA likewise.
Identifiers are ones a person can say on the phone: `AUD-SH01-2026-0003`,
`DEV-SH01-2026-0007`, `CAPA-SH01-2026-0002`; events append `/n` to their subject's id.
Findings are kept as codes and parameters (`Finding.to_record()`), never as prose.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Text
from sqlmodel import Field, SQLModel

from qms.core.ledger import JSON, TIME, USER, declare
from qms.core.ledger import Chained as C
from qms.core.models import ledger_seq_column
from qms.db import UTCDateTime

AUDIT_KINDS = ("routine", "for_cause", "inspection_readiness", "effectiveness")
CLASSIFICATIONS = ("critical", "major", "minor")
DEVIATION_SOURCES = ("step", "audit", "manual")


class AuditRun(SQLModel, table=True):
    """One audit of a scope: what was judged, against what, and what was found."""

    __tablename__ = "audit_run"

    id: str = Field(primary_key=True, max_length=64)  # AUD-SH01-2026-0003
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    kind: str = Field(max_length=32)  # routine | for_cause | inspection_readiness
    # {"from": date, "to": date, "checklists": [...], "wards": [...], "units": [...]}
    scope: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # None for a run the system made (a command without --as, the scheduler).
    by_id: int | None = Field(default=None, foreign_key="app_user.id")
    # [{"id", "version", "digest", "rules_digest", "site", "parameters": {name: value}}]
    checklists: str = Field(sa_column=Column(Text, nullable=False))
    parameters: str = Field(sa_column=Column(Text, nullable=False))  # quality site parameters
    covers: str = Field(sa_column=Column(Text, nullable=False))  # {"seq", "hash"}: ledger head
    counts: str = Field(sa_column=Column(Text, nullable=False))
    findings: str = Field(sa_column=Column(Text, nullable=False))  # [Finding.to_record()]
    ledger_seq: int = Field(sa_column=ledger_seq_column())


AUDIT_RUN = declare(
    AuditRun,
    kind="audit_run",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("kind"),
        C("scope", encoding=JSON),
        C("at", encoding=TIME),
        C("by", "by_id", USER),
        C("checklists", encoding=JSON),
        C("parameters", encoding=JSON),
        C("covers", encoding=JSON),
        C("counts", encoding=JSON),
        C("findings", encoding=JSON),
    ],
)


class FindingReview(SQLModel, table=True):
    """A quality officer's decision on one finding of a run: confirmed or dismissed, signed."""

    __tablename__ = "finding_review"

    id: str = Field(primary_key=True, max_length=96)  # "<run id>/<finding index>/<n>"
    run_id: str = Field(foreign_key="audit_run.id", max_length=64, index=True)
    finding: str = Field(max_length=16)  # the finding's index in the run, as text
    decision: str = Field(max_length=16)  # confirmed | dismissed
    deviation_id: str | None = Field(default=None, max_length=64)
    rationale: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int = Field(foreign_key="app_user.id")
    method: str = Field(max_length=16)  # how it was signed: password | session
    ledger_seq: int = Field(sa_column=ledger_seq_column())


FINDING_REVIEW = declare(
    FindingReview,
    kind="finding_review",
    chained=[
        C("id"),
        C("run", "run_id"),
        C("finding"),
        C("decision"),
        C("deviation", "deviation_id"),
        C("rationale"),
        C("at", encoding=TIME),
        C("by", "by_id", USER),
        C("method"),
    ],
)


class Deviation(SQLModel, table=True):
    """A deviation as it was opened; everything after is a `DeviationEvent`."""

    id: str = Field(primary_key=True, max_length=64)  # DEV-SH01-2026-0007
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    source: str = Field(max_length=16)  # step | audit | manual
    classification: str = Field(max_length=16)  # critical | major | minor (as opened)
    rule: str | None = Field(default=None, max_length=128, index=True)
    title: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))  # what happened
    units: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON unit ids
    records: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON record ids
    findings: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # to_record()s
    # The step record whose storing opened it: unique, so a record opens one deviation.
    step_record_id: str | None = Field(
        default=None,
        sa_column=Column(String(96), ForeignKey("step_record.id"), unique=True),
    )
    audit_run_id: str | None = Field(default=None, foreign_key="audit_run.id", max_length=64)
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    opened_by_id: int = Field(foreign_key="app_user.id")
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


DEVIATION = declare(
    Deviation,
    kind="deviation",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("source"),
        C("classification"),
        C("rule"),
        C("title"),
        C("description"),
        C("units", encoding=JSON),
        C("records", encoding=JSON),
        C("findings", encoding=JSON),
        C("step_record", "step_record_id"),
        C("audit_run", "audit_run_id"),
        C("opened_at", encoding=TIME),
        C("opened_by", "opened_by_id", USER),
        C("due_at", encoding=TIME),
    ],
)


class DeviationEvent(SQLModel, table=True):
    """One signed state change of a deviation: who, when, what it means, why."""

    __tablename__ = "deviation_event"

    id: str = Field(primary_key=True, max_length=80)  # "DEV-SH01-2026-0007/3"
    deviation_id: str = Field(foreign_key="deviation.id", max_length=64, index=True)
    action: str = Field(max_length=32)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int = Field(foreign_key="app_user.id")
    method: str = Field(max_length=16)  # password | session | system
    reason: str | None = Field(default=None, sa_column=Column(Text))
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # canonical JSON
    ledger_seq: int = Field(sa_column=ledger_seq_column())


DEVIATION_EVENT = declare(
    DeviationEvent,
    kind="deviation_event",
    chained=[
        C("id"),
        C("deviation", "deviation_id"),
        C("action"),
        C("at", encoding=TIME),
        C("by", "by_id", USER),
        C("method"),
        C("reason"),
        C("details", encoding=JSON),
    ],
)


class Capa(SQLModel, table=True):
    """A corrective and preventive action plan as opened; the rest is `CapaEvent`s."""

    id: str = Field(primary_key=True, max_length=64)  # CAPA-SH01-2026-0002
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    title: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))
    deviations: str = Field(sa_column=Column(Text, nullable=False))  # JSON deviation ids
    rules: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON rule ids
    owner_id: int = Field(foreign_key="app_user.id")
    # The CAPA whose effectiveness check found it not effective, if any.
    follows_id: str | None = Field(default=None, max_length=64)
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    opened_by_id: int = Field(foreign_key="app_user.id")
    ledger_seq: int = Field(sa_column=ledger_seq_column())


CAPA = declare(
    Capa,
    kind="capa",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("title"),
        C("description"),
        C("deviations", encoding=JSON),
        C("rules", encoding=JSON),
        C("owner", "owner_id", USER),
        C("follows", "follows_id"),
        C("opened_at", encoding=TIME),
        C("opened_by", "opened_by_id", USER),
    ],
)


class CapaEvent(SQLModel, table=True):
    """One signed change of a CAPA or of one of its actions (``action_no`` set)."""

    __tablename__ = "capa_event"

    id: str = Field(primary_key=True, max_length=80)  # "CAPA-SH01-2026-0002/4"
    capa_id: str = Field(foreign_key="capa.id", max_length=64, index=True)
    action_no: str | None = Field(default=None, max_length=16)  # "1", "2": the action concerned
    change: str = Field(max_length=32)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int = Field(foreign_key="app_user.id")
    method: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


CAPA_EVENT = declare(
    CapaEvent,
    kind="capa_event",
    chained=[
        C("id"),
        C("capa", "capa_id"),
        C("action_no"),
        C("change"),
        C("at", encoding=TIME),
        C("by", "by_id", USER),
        C("method"),
        C("reason"),
        C("details", encoding=JSON),
    ],
)


class QualityParameter(SQLModel, table=True):
    """A site's quality parameter set (days to a deviation's due date...): the latest counts."""

    __tablename__ = "quality_parameter"

    id: str = Field(primary_key=True, max_length=96)  # "<site>:<name>/<n>"
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    name: str = Field(max_length=64)
    value: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int = Field(foreign_key="app_user.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


QUALITY_PARAMETER = declare(
    QualityParameter,
    kind="quality_param",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("name"),
        C("value"),
        C("at", encoding=TIME),
        C("by", "by_id", USER),
        C("reason"),
    ],
)
