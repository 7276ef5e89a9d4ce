"""Storage tables: equipment and readings, both chained in the ledger.

A device's registration (id, site, kind, description, who and when) is a regulated record:
moving a freezer to another site in the database is named by `qms verify`. Whether it is
in use (`active`) is the one column that changes, each change with a reason in the audit
trail; the database refuses every other UPDATE, and DELETE."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlmodel import AutoString, Field, SQLModel

from qms.core.canonical import canonical_time
from qms.core.ledger import JSON, NUMBER, TIME, USER, declare
from qms.core.ledger import Chained as C
from qms.core.models import CHECKED_PER_STATEMENT, ledger_seq_column
from qms.db import UTCDateTime, utcnow


class Equipment(SQLModel, table=True):
    """A storage device, chained when registered. Never deleted; deactivated with a reason
    in the audit trail (`active` is not chained: it is the one column that may change)."""

    id: str = Field(primary_key=True, max_length=64)  # e.g. LN2-01
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    kind: str = Field(max_length=32)  # ln2_vapour | freezer_minus80 | fridge | room | ...
    description: str = Field(default="", max_length=200)
    active: bool = Field(default=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    created_by: str = Field(max_length=200)
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    # Nullable where the other ledger tables' is not: the column was added to a table that
    # already had rows (migration 0011 chains them), and SQLite adds a column in place only
    # if it may be NULL. `qms verify` names any row without one.
    ledger_seq: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("ledger_entry.seq"), nullable=True, index=True, unique=True
        ),
    )


EQUIPMENT = declare(
    Equipment,
    kind="equipment",
    chained=[
        C("id"),
        C("site", "site_id"),
        C("kind"),
        C("description"),
        C("created_at", encoding=TIME),
        C("created_by"),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)
# What may change in place (see the module docstring): the migration's trigger allows it.
EQUIPMENT_MUTABLE = ("active",)


class Reading(SQLModel, table=True):
    """One temperature reading: a regulated record, chained in the ledger."""

    __table_args__ = (UniqueConstraint("equipment_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Both parents are append-only (never deleted, their keys never updated). On PostgreSQL
    # the two references are checked once per INSERT statement for all its rows (trigger
    # `reading_parents`, migration 0016) instead of row by row: a logger import is 500,000
    # rows, and the row-level checks were most of its time. SQLite keeps its foreign keys.
    equipment_id: str = Field(
        sa_column=Column(
            AutoString(64),
            ForeignKey("equipment.id", info={CHECKED_PER_STATEMENT: True}),
            nullable=False,
        )
    )
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # when measured
    temperature_c: float = Field(sa_column=Column(Float, nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recorded_by: str = Field(max_length=200)  # a username, or the system that sent it
    source: str = Field(max_length=16)  # manual | logger | import
    imported_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    imported_by: str | None = Field(default=None, max_length=200)
    ledger_seq: int = Field(sa_column=ledger_seq_column(checked_per_statement=True))


def reading_ref(equipment: str, at: datetime) -> str:
    """A reading's id: its equipment and the time it was measured (unique together)."""
    return f"{equipment}@{canonical_time(at)}"


READING = declare(
    Reading,
    kind="reading",
    chained=[
        C(
            "id",
            value=lambda get: reading_ref(get("equipment_id"), get("at")),
            sql="(t.equipment_id || '@' || {time:t.at})",
        ),
        C("equipment", "equipment_id"),
        C("at", encoding=TIME),
        C("temperature_c", encoding=NUMBER),
        C("recorded_at", encoding=TIME),
        C("recorded_by"),
        C("source"),
        C("imported_at", encoding=TIME),
        C("imported_by"),
    ],
)


class ExcursionAck(SQLModel, table=True):
    """An excursion acknowledged by a pharmacist or quality officer: a signed ledger record
    naming the readings' span, the comment, and the units that were inside."""

    __tablename__ = "excursion_ack"

    id: str = Field(primary_key=True, max_length=120)  # "<equipment>@<first reading's time>"
    equipment_id: str = Field(foreign_key="equipment.id", max_length=64, index=True)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    warmest_c: float = Field(sa_column=Column(Float, nullable=False))
    comment: str = Field(sa_column=Column(Text, nullable=False))
    units: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # canonical JSON
    by_id: int = Field(foreign_key="app_user.id")
    by_role: str = Field(max_length=32)
    printed_name: str = Field(max_length=200)
    method: str = Field(max_length=16)  # password | session
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


EXCURSION_ACK = declare(
    ExcursionAck,
    kind="excursion_ack",
    chained=[
        C("id"),
        C("equipment", "equipment_id"),
        C("started_at", encoding=TIME),
        C("ended_at", encoding=TIME),
        C("warmest_c", encoding=NUMBER),
        C("comment"),
        C("units", encoding=JSON),
        C("by", "by_id", USER),
        C("by_role"),
        C("printed_name"),
        C("method"),
        C("at", encoding=TIME),
    ],
)
