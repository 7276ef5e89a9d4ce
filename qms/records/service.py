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
from qms.checklists import engine
from qms.checklists.facts import Finding, StepFacts
from qms.core import ledger
from qms.core.errors import Denied, NotFound, SignatureError
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
    equipment_named,
    live_check,
    load_unit_and_checklist,
    readings_for,
    step_def_of,
    unit_version,
)
from qms.records.signatures import Credential, WitnessCredential
from qms.records.wards import off_ward, ward_in
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
    refusal = off_ward(session, by, unit_id, site_id, ward_in(attributes))
    if refusal is not None:
        raise Denied(refusal)
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
    # What the checks below read, as ledger positions, before they read it (PostgreSQL:
    # see `_judge`); None when this transaction is already the only writer.
    before = None if ledger.holds_lock(session) else unit_version(session, unit.id, None)
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
    new_step = StepFacts(
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
    # Judged before the ledger's lock (the unit's records, the readings, the engine's live
    # check: most of the work), so that writers of other units wait for none of it; then,
    # under the lock, what the judgement read is checked unchanged (else judged again),
    # so concurrent writers still cannot both pass a once-only rule.
    judged = _judge(session, checklist, unit, step_def, site, new_step, version=before)
    ledger.lock(session)
    if judged.version is not None and unit_version(session, unit.id, judged.equipment) != (
        judged.version
    ):
        require_open(session, unit)
        judged = _judge(session, checklist, unit, step_def, site, new_step, version=None)
    findings = judged.findings
    reason = require_reason(findings, reason, checklist)
    ledger.known_usernames(session, {by.id: by.username})
    if witness_user is not None:
        ledger.known_usernames(session, {witness_user.id: witness_user.username})
    # One statement per table for the record, its signatures and their ledger entries.
    with ledger.batch(session):
        record = write_step_record(
            session=session,
            record_id=next_record_id(session, unit.id, count=judged.recorded),
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


@dataclass
class _Judged:
    """What the live check said of a new record, and what it read to say so."""

    findings: list[Finding]
    recorded: int  # the unit's records (originals and corrections)
    equipment: frozenset[str]  # the devices whose readings it read
    version: tuple | None  # `unit_version` before it read; None when it read under the lock


def _judge(session, checklist, unit, step_def, site, new, *, version) -> _Judged:
    """Judge a new record against the unit's records as they are now.

    `version` is `unit_version` read before the unit's status and records were (None
    under the lock): a record, a status or a reading that lands after it makes the version
    read under the lock differ, and the step is judged again there. (On SQLite a write
    session holds the database's write lock from its first statement: nothing can land.)"""
    prior, recorded = effective_history(session, unit.id)
    require_not_recorded(step_def, unit, prior, site.timezone)
    steps = [*prior, new]
    # The readings only when the new record can change a storage finding (a stay still
    # open, a storage record): a device's logger may hold weeks of readings of the stay.
    storage = engine.storage_can_change(prior, new)
    equipment = frozenset(equipment_named(steps)) if storage else frozenset()
    if version is not None and equipment:
        version = unit_version(session, unit.id, equipment, records=version)
    readings = readings_for(session, steps) if storage else None
    findings = live_check(checklist, unit_facts(unit), prior, new, readings)
    return _Judged(findings, recorded, equipment, version)
