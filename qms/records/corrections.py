"""Corrections: a new record pointing at the one it corrects, with the new values and a reason.

A record is never edited. A correction always points at the original record (correcting
a correction corrects the same original again); the latest correction is what counts
(`queries.effective_steps`) and every view shows the original, each correction, who,
when and why. The person correcting signs the correction (meaning "performed").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from qms.accounts.models import Site, User
from qms.accounts.service import Lockout
from qms.checklists.facts import StepFacts
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _
from qms.db import utcnow
from qms.quality.opening import open_for_step
from qms.records.guards import (
    authenticate_signers,
    check_corrector,
    check_time,
    check_witness,
    clean_fields,
    equipment_check,
)
from qms.records.loading import step_facts, unit_facts
from qms.records.models import StepRecord
from qms.records.queries import (
    effective_records,
    live_check,
    load_unit_and_checklist,
    readings_for,
    step_def_of,
    step_history,
    usernames_of,
)
from qms.records.service import LoggedStep
from qms.records.signatures import Credential, WitnessCredential
from qms.records.writers import next_record_id, sign_step, write_step_record


def correct_step(
    *,
    session: Session,
    registry,
    record_id: str,
    by: User,
    credential: Credential,
    freshness_minutes: int,
    reason: str,
    fields: Mapping[str, Any] | None = None,
    performed_at: datetime | None = None,
    witness: WitnessCredential | None = None,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> LoggedStep:
    """Correct a step record: changed field values (None removes one) and/or its time.

    The correction keeps the original performer and witness (unless a new witness signs
    it); `by` is recorded as who corrected it, with the reason. The caller commits.
    """
    now = now or utcnow()
    target = session.get(StepRecord, record_id)
    if target is None:
        raise NotFound(_("there is no record %(record)s", record=record_id))
    original_id = target.corrects_id or target.id
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(_("a correction needs a reason: it is shown beside the original record"))
    unit, checklist = load_unit_and_checklist(session, registry, target.unit_id)
    step_def = step_def_of(checklist, target.step)
    check_corrector(session, by, unit, step_def)
    history = step_history(session, unit.id)
    effective = effective_records(history)
    current = next(r for r in effective if r.id == original_id or r.corrects_id == original_id)
    names = usernames_of(
        session,
        {r.performed_by_id for r in history}
        | {r.witness_id for r in history}
        | {r.recorded_by_id for r in history},
    )
    current_facts = step_facts([current], names)[0]
    merged = {**current_facts.fields, **dict(fields or {})}
    # Earlier values are checked again, but a device taken out of use since stays valid.
    values = clean_fields(
        step_def, merged, equipment_exists=equipment_check(session, unit.site_id, in_use=False)
    )
    site = session.get(Site, unit.site_id)
    new_time = performed_at or current.performed_at
    check_time(new_time, unit, site.timezone, now)
    if values == dict(current_facts.fields) and new_time == current.performed_at:
        raise Invalid(_("the correction changes nothing: give the new values or the new time"))
    method, witness_user = authenticate_signers(
        session=session,
        by=by,
        credential=credential,
        witness=witness,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    performer = session.get(User, current.performed_by_id)
    if witness_user is not None:
        check_witness(session, witness_user, performer, unit, step_def)
        if witness_user.id == by.id:
            raise Invalid(_("the witness must be a different person from the one correcting"))
    kept_witness = witness_user or (
        session.get(User, current.witness_id) if current.witness_id is not None else None
    )
    kept_witness_role = witness_user.role if witness_user else current.witness_role
    others = [
        f for f in step_facts(effective, names) if f.record_id not in (original_id, current.id)
    ]
    corrected = StepFacts(
        unit=unit.id,
        step=current.step,
        at=new_time,
        by=performer.username,
        witness=kept_witness.username if kept_witness else None,
        fields=values,
        by_role=current.performed_by_role,
        witness_role=kept_witness_role,
        corrects=original_id,
        reason=reason,
        recorded_at=now,
    )
    findings = live_check(
        checklist, unit_facts(unit), others, corrected, readings_for(session, [*others, corrected])
    )
    record = write_step_record(
        session=session,
        record_id=next_record_id(session, unit.id),
        unit=unit,
        checklist=checklist,
        step=current.step,
        fields=values,
        performed_at=new_time,
        recorded_at=now,
        performer=performer,
        performer_role=current.performed_by_role,
        witness=kept_witness,
        witness_role=kept_witness_role,
        recorded_by=by,
        meaning="performed",
        corrects=original_id,
        reason=reason,
        findings=findings,
    )
    signatures = sign_step(
        session=session,
        record=record,
        by=by,
        meaning="performed",
        method=method,
        witness=witness_user,
        now=now,
    )
    # Quality hook: a correction that shows a major or critical finding the corrected
    # record did not have (a corrected time that makes an infusion late) opens a
    # deviation, as the original would have; one it already had opened its own.
    had = {(f["rule"], f["kind"]) for f in json.loads(current.findings or "[]")}
    open_for_step(
        session=session,
        site_id=unit.site_id,
        unit_id=unit.id,
        record_id=record.id,
        findings=[f for f in findings if (f.rule, f.kind) not in had],
        reason=reason,
        by=by,
        now=now,
    )
    return LoggedStep(record=record, findings=findings, signatures=signatures)
