"""The audit trail of changes outside the ledger: users, roles, checklist versions, site parameters.

Each row says who changed what, when, the old and the new value, and why. Rows are
only ever appended.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, Session, SQLModel

from qms.core.ledger import keep_append_only
from qms.db import UTCDateTime, utcnow


@keep_append_only
class AuditTrailEntry(SQLModel, table=True):
    __tablename__ = "audit_trail"
    __table_args__ = (Index("ix_audit_trail_entity", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")  # None: the system or CLI
    actor_name: str = Field(max_length=200)
    entity: str = Field(max_length=64)  # e.g. "user", "checklist_version", "site_parameter"
    entity_id: str = Field(max_length=128)
    action: str = Field(max_length=32)  # create | change | deactivate | activate | ...
    field_name: str | None = Field(default=None, max_length=64)
    old_value: str | None = Field(default=None, sa_column=Column(Text))
    new_value: str | None = Field(default=None, sa_column=Column(Text))
    reason: str = Field(sa_column=Column(Text, nullable=False))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def record_change(
    *,
    session: Session,
    actor_id: int | None,
    actor_name: str,
    entity: str,
    entity_id: str | int,
    action: str,
    reason: str,
    field_name: str | None = None,
    old_value: Any = None,
    new_value: Any = None,
) -> AuditTrailEntry:
    if not reason or not reason.strip():
        raise ValueError("a change to the audit trail needs a reason")
    entry = AuditTrailEntry(
        actor_id=actor_id,
        actor_name=actor_name,
        entity=entity,
        entity_id=str(entity_id),
        action=action,
        field_name=field_name,
        old_value=_text(old_value),
        new_value=_text(new_value),
        reason=reason.strip(),
    )
    session.add(entry)
    return entry
