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

from sqlmodel import Session

from qms.accounts.access import require, require_visible
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission
from qms.accounts.service import Lockout
from qms.checklists import engine
from qms.checklists.facts import Finding
from qms.core import ledger
from qms.core.errors import Conflict, Invalid
from qms.core.i18n import _, _l
from qms.db import utcnow
from qms.records.guards import check_time, require_reason
from qms.records.loading import unit_facts
from qms.records.models import (
    CANCELLED,
    COMPLETE,
    IN_PROGRESS,
    STATUS_LABELS,
    STATUSES,
    UnitStatus,
)
from qms.records.queries import (
    effective_steps,
    load_unit_and_checklist,
    readings_for,
    status_of,
)
from qms.records.signatures import Credential, authenticate_signer
from qms.records.wards import require_on_ward
from qms.records.writers import write_unit_status


@dataclass
class StatusChange:
    record: UnitStatus
    findings: list[Finding]


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
    now = now or utcnow()
    at = at or now
    if status not in STATUSES:
        raise Invalid(
            _(
                "unknown status %(status)s; one of: %(statuses)s",
                status=repr(status),
                statuses=_(", ").join(STATUSES),
            )
        )
    unit, checklist = load_unit_and_checklist(session, registry, unit_id)
    require(
        session, by, Permission.LOG_STEPS | Permission.AUDIT, action=_l("close or reopen units")
    )
    require_visible(session, by, unit.site_id, _("there is no unit %(unit)s", unit=unit.id))
    require_on_ward(session, by, unit)
    ledger.lock(session)  # the current status is read under the lock: one change wins
    current = status_of(session, unit.id)
    if status == current:
        raise Conflict(
            _("unit %(unit)s is already %(status)s", unit=unit.id, status=STATUS_LABELS[status])
        )
    check_time(at, unit, session.get(Site, unit.site_id).timezone, now)
    reason = (reason or "").strip() or None
    if status == CANCELLED and reason is None:
        raise Invalid(
            _("cancelling a unit needs a reason (e.g. the patient's infusion was stopped)")
        )
    if status == IN_PROGRESS and reason is None:
        raise Invalid(_("reopening a unit needs a reason (e.g. a record entered late)"))
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
        reason = require_reason(findings, reason, checklist)
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
