"""Schedule tables: schedules (versioned records), one run per (schedule, period), job
runs and alerts.

A schedule is a regulated record: a change is a new version of it (same `schedule_id`,
the next `version`), never an edit; the newest version is in force. A `ScheduleRun` is
the registry row of one (schedule, period): its primary key and a unique constraint
make a second one impossible, whichever process or instance tries. Job runs (the
nightly verify and backup) and alerts are append-only logs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from qms.core.i18n import _l
from qms.core.ledger import JSON, TIME, USER, declare, keep_append_only
from qms.core.ledger import Chained as C
from qms.core.models import ledger_seq_column
from qms.db import UTCDateTime, utcnow

ACTIVE = "active"
RETIRED = "retired"
# Release: a quality officer approves the generated draft (the default), or the report
# is released automatically (only with a configured site key).
APPROVAL = "approval"
AUTOMATIC = "automatic"
RELEASES = (APPROVAL, AUTOMATIC)
RELEASE_LABELS = {
    APPROVAL: _l("a quality officer approves before release"),
    AUTOMATIC: _l("released automatically"),
}


class Schedule(SQLModel, table=True):
    """One version of a schedule: what report, for which site, when, to whom."""

    __table_args__ = (UniqueConstraint("schedule_id", "version"),)

    id: str = Field(primary_key=True, max_length=64)  # "<schedule id>/<version>"
    schedule_id: str = Field(max_length=48, index=True)  # e.g. SCH-SH-01-1
    version: int = Field(sa_column=Column(Integer, nullable=False))
    report_type: str = Field(max_length=32)  # site-monthly, regional-annual, ...
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    cadence: str = Field(max_length=16)  # monthly | quarterly | yearly
    day: int = Field(sa_column=Column(Integer, nullable=False))  # day of the month, 1..31
    at_time: str = Field(max_length=5)  # "08:00", in the site's zone
    language: str = Field(max_length=16)  # en | zh_CN
    recipients: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON emails
    regulators: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON usernames
    release: str = Field(max_length=16)  # approval | automatic
    first_period: str = Field(max_length=16)  # the first period reported
    status: str = Field(max_length=16)  # active | retired
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    created_by: str = Field(max_length=200)  # the actor's name (a user or the system)
    ledger_seq: int = Field(sa_column=ledger_seq_column())


class ScheduleRun(SQLModel, table=True):
    """The registry row of one (schedule, period): claimed once, then generated."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("schedule_id", "period"),)

    id: str = Field(primary_key=True, max_length=72)  # "<schedule id>:<period>"
    schedule_id: str = Field(max_length=48, index=True)
    schedule_version: str = Field(max_length=64)  # the Schedule.id in force
    period: str = Field(max_length=16)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_by: str = Field(max_length=200)  # which process: host and pid
    ledger_seq: int = Field(sa_column=ledger_seq_column())


@keep_append_only
class JobRun(SQLModel, table=True):
    """One run of a nightly job (verify, backup), with what it found."""

    __tablename__ = "job_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # verify | backup
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    ok: bool
    head_seq: int | None = Field(default=None)
    head_hash: str | None = Field(default=None, max_length=64)
    details: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON


@keep_append_only
class Alert(SQLModel, table=True):
    """Something people must look at: a failed backup, verify or delivery, a reminder.

    `code` and `params` are rendered in the reader's language where it is shown. `key`,
    when given, makes the alert once-only: a second alert with the same key is refused by
    the unique index, whichever process or instance tries (reminders, logger gaps).
    `audience` says who sees it in the app: {"users": [ids], "roles": [roles]} of the
    alert's site; empty means the site's quality officers."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=32)  # None: all
    code: str = Field(max_length=48)
    params: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON
    key: str | None = Field(
        default=None, sa_column=Column(String(240), nullable=True, unique=True, index=True)
    )
    audience: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, server_default="{}")
    )  # JSON


class ScheduleChange(SQLModel, table=True):
    """Why a schedule got a new version: edited or retired, by whom, when, with a reason.

    One per version after the first (same id as the version it explains)."""

    __tablename__ = "schedule_change"

    id: str = Field(primary_key=True, max_length=64)  # "<schedule id>/<version>"
    schedule_id: str = Field(max_length=48, index=True)
    version: int = Field(sa_column=Column(Integer, nullable=False))
    change: str = Field(max_length=16)  # edited | retired
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int | None = Field(default=None, foreign_key="app_user.id")
    by: str = Field(max_length=200)
    ledger_seq: int = Field(sa_column=ledger_seq_column())


class ScheduleRegion(SQLModel, table=True):
    """The region a regional schedule's version reports on (one per such version).

    Beside the version rather than in it: a schedule's chained content stays as it was
    recorded before regions could be scheduled. Written with the version, chained."""

    __tablename__ = "schedule_region"

    id: str = Field(primary_key=True, foreign_key="schedule.id", max_length=64)  # the version
    schedule_id: str = Field(max_length=48, index=True)
    region_id: str = Field(foreign_key="region.id", max_length=32)
    ledger_seq: int = Field(sa_column=ledger_seq_column())


class SiteSetting(SQLModel, table=True):
    """A site setting the quality officer keeps (quality address, logger gap, reminder lead):
    each change is a chained record with a reason; the latest per name counts."""

    __tablename__ = "site_setting"

    id: str = Field(primary_key=True, max_length=96)  # "<site>:<name>/<n>"
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    name: str = Field(max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int | None = Field(default=None, foreign_key="app_user.id")
    by: str = Field(max_length=200)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


def _text(column: str):
    return lambda get: None if get(column) is None else str(get(column))


SCHEDULE = declare(
    Schedule,
    kind="schedule",
    chained=[
        C("id"),
        C("schedule", "schedule_id"),
        C("version", value=_text("version"), sql="CAST(t.version AS TEXT)"),
        C("report_type"),
        C("site", "site_id"),
        C("cadence"),
        C("day", value=_text("day"), sql="CAST(t.day AS TEXT)"),
        C("at", "at_time"),
        C("language"),
        C("recipients", encoding=JSON),
        C("regulators", encoding=JSON),
        C("release"),
        C("first_period"),
        C("status"),
        C("created_at", encoding=TIME),
        C("created_by_user", "created_by_id", USER),
        C("created_by"),
    ],
)

SCHEDULE_RUN = declare(
    ScheduleRun,
    kind="schedule_run",
    chained=[
        C("id"),
        C("schedule", "schedule_id"),
        C("schedule_version"),
        C("period"),
        C("due_at", encoding=TIME),
        C("claimed_at", encoding=TIME),
        C("claimed_by"),
    ],
)

SCHEDULE_CHANGE = declare(
    ScheduleChange,
    kind="schedule_change",
    chained=[
        C("id"),
        C("schedule", "schedule_id"),
        C("version", value=_text("version"), sql="CAST(t.version AS TEXT)"),
        C("change"),
        C("reason"),
        C("at", encoding=TIME),
        C("by_user", "by_id", USER),
        C("by"),
    ],
)

SCHEDULE_REGION = declare(
    ScheduleRegion,
    kind="schedule_region",
    chained=[C("id"), C("schedule", "schedule_id"), C("region", "region_id")],
)

SITE_SETTING = declare(
    SiteSetting,
    kind="site_setting",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("name"),
        C("value"),
        C("at", encoding=TIME),
        C("by_user", "by_id", USER),
        C("by"),
        C("reason"),
    ],
)
