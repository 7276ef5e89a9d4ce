"""A unit's status: in progress until someone declares it complete or cancelled.

Each change is a signed record on the ledger, never edited: the latest one is the
status. Declaring a unit complete asks the engine to judge it as finished (every
required step never recorded is missing); if it finds anything, the closing needs a
reason, as any record that breaks a rule does. A closed unit takes no new step until it
is reopened, which also needs a reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from qms.accounts.models import Site, User
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout
from qms.checklists import engine
from qms.checklists.facts import Finding
from qms.core.i18n import _l
from qms.db import utcnow
from qms.records import ledger
from qms.records.canonical import canonical_json
from qms.records.errors import RecordError, RecordPermissionError
from qms.records.models import Unit, UnitStatus
from qms.records.signatures import Credential, authenticate_signer, is_member

IN_PROGRESS, COMPLETE, CANCELLED = "in_progress", "complete", "cancelled"
STATUSES = (IN_PROGRESS, COMPLETE, CANCELLED)
STATUS_LABELS = {
    IN_PROGRESS: _l("in progress"),
    COMPLETE: _l("complete"),
    CANCELLED: _l("cancelled"),
}


@dataclass
class StatusChange:
    record: UnitStatus
    findings: list[Finding]


def latest_status(session: Session, unit_id: str) -> UnitStatus | None:
    return session.exec(
        select(UnitStatus)
        .where(UnitStatus.unit_id == unit_id)
        .order_by(col(UnitStatus.ledger_seq).desc())
        .limit(1)
    ).first()


def status_of(session: Session, unit_id: str) -> str:
    latest = latest_status(session, unit_id)
    return latest.status if latest is not None else IN_PROGRESS


def require_open(session: Session, unit: Unit) -> None:
    """New step records go only to a unit in progress."""
    status = status_of(session, unit.id)
    if status != IN_PROGRESS:
        raise RecordError(
            f"unit {unit.id} is {STATUS_LABELS[status]}: reopen it (with a reason) to add a late record"
        )


def set_unit_status(
    *,
    session: Session,
    registry,
    unit_id: str,
    status: str,
    by: User,
    credential: Credential,
    freshness_minutes: int,
    reason: str | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> StatusChange:
    """Declare a unit complete or cancelled, or reopen it; signed by `by`."""
    from qms.records.service import (
        check_time,
        effective_steps,
        load_unit_and_checklist,
        readings_for,
        require_reason,
        unit_facts,
    )

    now = now or utcnow()
    at = at or now
    if status not in STATUSES:
        raise RecordError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    unit, checklist = load_unit_and_checklist(session, registry, unit_id)
    granted = permissions_of(by.role)
    if not by.active or not (Permission.LOG_STEPS in granted or Permission.AUDIT in granted):
        raise RecordPermissionError(f"a {by.role} may not close or reopen units")
    if not is_member(session, by, unit.site_id):
        raise RecordPermissionError(f"{by.username} does not belong to site {unit.site_id}")
    current = status_of(session, unit.id)
    if status == current:
        raise RecordError(f"unit {unit.id} is already {STATUS_LABELS[status]}")
    check_time(at, unit, session.get(Site, unit.site_id).timezone, now)
    reason = (reason or "").strip() or None
    if status == CANCELLED and reason is None:
        raise RecordError(
            "cancelling a unit needs a reason (e.g. the patient's infusion was stopped)"
        )
    if status == IN_PROGRESS and reason is None:
        raise RecordError("reopening a unit needs a reason (e.g. a record entered late)")
    method = authenticate_signer(
        session=session,
        user=by,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    findings: list[Finding] = []
    if status == COMPLETE:
        steps = effective_steps(session, unit.id)
        facts = dataclasses.replace(unit_facts(unit), status=COMPLETE)
        findings = engine.evaluate(
            checklist, facts, steps, readings_for(session, steps), profile=unit.profile
        )
        reason = require_reason(findings, reason)
    record = write_unit_status(
        session=session,
        unit=unit,
        status=status,
        at=at,
        recorded_at=now,
        by=by,
        method=method,
        reason=reason,
        findings=findings,
    )
    return StatusChange(record=record, findings=findings)


def write_unit_status(
    *,
    session: Session,
    unit: Unit,
    status: str,
    at: datetime,
    recorded_at: datetime,
    by: User | None,
    method: str,
    reason: str | None,
    findings: list[Finding],
    imported_at: datetime | None = None,
    imported_by: str | None = None,
) -> UnitStatus:
    """Store and chain one status record (internal: everything was checked)."""
    ledger.lock(session)
    count = session.exec(
        select(func.count()).select_from(UnitStatus).where(UnitStatus.unit_id == unit.id)
    ).one()
    record_id = f"{unit.id}!{count + 1}"
    finding_docs = [f.to_json() for f in findings]
    content = ledger.unit_status_content(
        id=record_id,
        unit=unit.id,
        status=status,
        at=at,
        recorded_at=recorded_at,
        by=by.username if by else None,
        by_role=by.role if by else None,
        method=method,
        reason=reason,
        findings=finding_docs,
        imported_at=imported_at,
        imported_by=imported_by,
    )
    entry = ledger.append(session, "unit_status", record_id, content)
    record = UnitStatus(
        id=record_id,
        unit_id=unit.id,
        status=status,
        at=at,
        recorded_at=recorded_at,
        by_id=by.id if by else None,
        by_role=by.role if by else None,
        method=method,
        reason=reason,
        findings=canonical_json(finding_docs),
        imported_at=imported_at,
        imported_by=imported_by,
        ledger_seq=entry.seq,
    )
    session.add(record)
    session.flush()
    return record
