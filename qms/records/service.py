"""The record service: the only code that registers units and writes step records.

`log_step` is the one way a step is recorded: it checks who may record it (the
checklist's roles for the step, membership of the unit's site), the signatures (the
performer's fresh session or password; a witness's own username and password), the
times, runs the engine's live check and stores its findings with the record, and
chains the record in the ledger. A value out of limits is recorded (it happened) but
only with a reason, and then it is a finding. Nothing is committed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from qms.accounts.access import require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission
from qms.accounts.service import Lockout
from qms.checklists.facts import Finding, StepFacts
from qms.core import ledger
from qms.core.errors import NotFound, SignatureError
from qms.core.i18n import _, _l
from qms.db import utcnow
from qms.quality.opening import open_for_step
from qms.records.guards import (
    PERFORMER_MEANINGS,
    authenticate_signers,
    check_performer,
    check_time,
    check_witness,
    clean_fields,
    equipment_check,
    require_not_recorded,
    require_open,
    require_reason,
)
from qms.records.loading import unit_facts
from qms.records.models import Signature, StepRecord, Unit
from qms.records.queries import (
    effective_history,
    live_check,
    load_unit_and_checklist,
    readings_for,
    step_def_of,
)
from qms.records.signatures import Credential, WitnessCredential
from qms.records.writers import create_unit_record, next_record_id, sign_step, write_step_record


@dataclass
class LoggedStep:
    record: StepRecord
    findings: list[Finding]
    signatures: list[Signature] = field(default_factory=list)


def register_unit(
    *,
    session: Session,
    registry,
    by: User,
    unit_id: str,
    checklist_id: str,
    site_id: str,
    patient_ref: str,
    coi_id: str | None = None,
    profile: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    checklist_version: str | None = None,
    now: datetime | None = None,
) -> Unit:
    """Register a unit against a checklist version (the newest unless named)."""
    now = now or utcnow()
    require(session, by, Permission.LOG_STEPS, action=_l("register units"))
    if session.get(Site, site_id) is None:
        raise NotFound(_("there is no site %(site)s", site=site_id))
    require(session, by, Permission.LOG_STEPS, site_id, action=_l("register units"))
    return create_unit_record(
        session=session,
        registry=registry,
        unit_id=unit_id,
        checklist_id=checklist_id,
        checklist_version=checklist_version,
        site_id=site_id,
        patient_ref=patient_ref,
        coi_id=coi_id,
        profile=profile,
        attributes=attributes,
        registered_at=now,
        registered_by=by,
    )


def log_step(
    *,
    session: Session,
    registry,
    unit_id: str,
    step: str,
    performed_at: datetime,
    fields: Mapping[str, Any],
    by: User,
    credential: Credential,
    freshness_minutes: int,
    witness: WitnessCredential | None = None,
    meaning: str = "performed",
    reason: str | None = None,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> LoggedStep:
    """Record one performed step with its signatures; the only way a step is written.

    Raises a Invalid subclass (nothing stored) when the performer may not record the
    step, a signature fails, the time is impossible, or the live check raises findings
    and no reason was given. The caller commits.
    """
    now = now or utcnow()
    unit, checklist = load_unit_and_checklist(session, registry, unit_id)
    step_def = step_def_of(checklist, step)
    check_performer(session, by, unit, step_def)
    require_open(session, unit)
    if meaning not in PERFORMER_MEANINGS:
        raise SignatureError(
            _(
                "the person recording a step signs it as %(meanings)s, not %(meaning)s",
                meanings=_(" or ").join(PERFORMER_MEANINGS),
                meaning=repr(meaning),
            )
        )
    site = session.get(Site, unit.site_id)
    check_time(performed_at, unit, site.timezone, now)
    values = clean_fields(
        step_def, fields, equipment_exists=equipment_check(session, unit.site_id, in_use=True)
    )
    method, witness_user = authenticate_signers(
        session=session,
        by=by,
        credential=credential,
        witness=witness,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    if witness_user is not None:
        check_witness(session, witness_user, by, unit, step_def)
    # Decided under the ledger's lock, so concurrent writers cannot both pass.
    ledger.lock(session)
    prior, recorded = effective_history(session, unit.id)
    require_not_recorded(step_def, unit, prior, site.timezone)
    new = StepFacts(
        unit=unit.id,
        step=step,
        at=performed_at,
        by=by.username,
        witness=witness_user.username if witness_user else None,
        fields=values,
        by_role=by.role,
        witness_role=witness_user.role if witness_user else None,
        recorded_at=now,
    )
    findings = live_check(
        checklist, unit_facts(unit), prior, new, readings_for(session, [*prior, new])
    )
    reason = require_reason(findings, reason, checklist)
    record = write_step_record(
        session=session,
        record_id=next_record_id(session, unit.id, count=recorded),
        unit=unit,
        checklist=checklist,
        step=step,
        fields=values,
        performed_at=performed_at,
        recorded_at=now,
        performer=by,
        performer_role=by.role,
        witness=witness_user,
        witness_role=witness_user.role if witness_user else None,
        recorded_by=by,
        meaning=meaning,
        corrects=None,
        reason=reason,
        findings=findings,
    )
    signatures = sign_step(
        session=session,
        record=record,
        by=by,
        meaning=meaning,
        method=method,
        witness=witness_user,
        now=now,
    )
    # Quality hook: a major or critical finding opens one deviation, in this transaction.
    open_for_step(
        session=session,
        site_id=unit.site_id,
        unit_id=unit.id,
        record_id=record.id,
        findings=findings,
        reason=reason,
        by=by,
        now=now,
    )
    return LoggedStep(record=record, findings=findings, signatures=signatures)
