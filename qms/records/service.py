"""The record service: the only code that registers units and writes step records.

`log_step` is the one way a step is recorded: it checks who may record it (the
checklist's roles for the step, membership of the unit's site), the signatures (the
performer's fresh session or password; a witness's own username and password), the
times, runs the engine's live check and stores its findings with the record, and
chains the record in the ledger. A value out of limits is recorded (it happened) but
only with a reason, and then it is a finding. Nothing is committed here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from qms.accounts.models import Site, User
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout
from qms.checklists import engine
from qms.checklists.facts import DueItem, Finding, ReadingFacts, StepFacts, UnitFacts
from qms.db import utcnow
from qms.records import ledger
from qms.records.canonical import CanonicalError, canonical_json, normalise
from qms.records.clock import CLOCK_SKEW, local
from qms.records.errors import (
    FindingsNeedReason,
    RecordError,
    RecordNotFound,
    RecordPermissionError,
    SignatureError,
)
from qms.records.fields import parse_field_values
from qms.records.models import Signature, StepRecord, Unit
from qms.records.signatures import (
    MEANINGS,
    Credential,
    WitnessCredential,
    authenticate_signer,
    authenticate_witness,
    is_member,
    write_signature,
)
from qms.records.status import require_open, status_of

UNIT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A pseudonymous reference such as P-0042: letters, digits and . _ - : /, at least one
# digit, no spaces. It keeps names out (a report never shows a patient's name).
PATIENT_REF_RE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
PERFORMER_MEANINGS = ("performed", "verified")


# --- units -------------------------------------------------------------------------------


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
    if not by.active or Permission.LOG_STEPS not in permissions_of(by.role):
        raise RecordPermissionError(f"a {by.role} may not register units")
    if session.get(Site, site_id) is None:
        raise RecordNotFound(f"there is no site {site_id}")
    if not is_member(session, by, site_id):
        raise RecordPermissionError(f"{by.username} does not belong to site {site_id}")
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


def create_unit_record(
    *,
    session: Session,
    registry,
    unit_id: str,
    checklist_id: str,
    checklist_version: str | None,
    site_id: str,
    patient_ref: str | None,
    coi_id: str | None,
    profile: str | None,
    attributes: Mapping[str, Any] | None,
    registered_at: datetime,
    registered_by: User | None,
    imported_at: datetime | None = None,
    imported_by: str | None = None,
) -> Unit:
    unit_id = (unit_id or "").strip()
    if not UNIT_ID_RE.match(unit_id):
        raise RecordError(
            f"unit id {unit_id!r} must start with a letter or digit and use only letters, digits, '.', '_' or '-' (at most 64)"
        )
    if session.get(Unit, unit_id) is not None:
        raise RecordError(f"unit {unit_id} is already registered")
    patient_ref = (patient_ref or "").strip()
    if not PATIENT_REF_RE.match(patient_ref):
        raise RecordError(
            "the patient reference must be a pseudonymous code such as P-0042 "
            "(letters, digits, '.', '_', '-', ':' or '/', at least one digit, no spaces) — never a name"
        )
    try:
        checklist = registry.get(checklist_id, checklist_version)
    except KeyError as exc:
        raise RecordError(exc.args[0]) from None
    if profile is not None and profile not in registry.profiles:
        raise RecordError(
            f"unknown profile {profile!r}; profiles: {', '.join(sorted(registry.profiles)) or 'none'}"
        )
    try:
        attributes_json = canonical_json(dict(attributes or {}))
    except CanonicalError as exc:
        raise RecordError(f"unit attributes: {exc}") from None
    content = ledger.unit_content(
        id=unit_id,
        site=site_id,
        checklist=checklist.id,
        checklist_version=checklist.version,
        profile=profile,
        coi_id=coi_id,
        patient=patient_ref,
        attributes=json.loads(attributes_json),
        registered_at=registered_at,
        registered_by=registered_by.username if registered_by else None,
        imported_at=imported_at,
        imported_by=imported_by,
    )
    entry = ledger.append(session, "unit", unit_id, content)
    unit = Unit(
        id=unit_id,
        site_id=site_id,
        checklist_id=checklist.id,
        checklist_version=checklist.version,
        profile=profile,
        coi_id=coi_id,
        patient_ref=patient_ref,
        attributes=attributes_json,
        registered_at=registered_at,
        registered_by_id=registered_by.id if registered_by else None,
        imported_at=imported_at,
        imported_by=imported_by,
        ledger_seq=entry.seq,
    )
    session.add(unit)
    session.flush()
    return unit


def unit_facts(unit: Unit, status: str | None = None) -> UnitFacts:
    return UnitFacts(
        id=unit.id,
        checklist=unit.checklist_id,
        site=unit.site_id,
        profile=unit.profile,
        coi_id=unit.coi_id,
        patient=unit.patient_ref,
        attributes=json.loads(unit.attributes),
        checklist_version=unit.checklist_version,
        status=status,
    )


# --- reading a unit's records ---------------------------------------------------------------


def step_history(session: Session, unit_id: str) -> list[StepRecord]:
    """Every record of a unit, originals and corrections, in ledger order."""
    return list(
        session.exec(
            select(StepRecord)
            .where(StepRecord.unit_id == unit_id)
            .order_by(col(StepRecord.ledger_seq))
        )
    )


def usernames_of(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.username).where(col(User.id).in_(wanted)))
    return dict(rows.all())


def to_facts(records: Sequence[StepRecord], names: Mapping[int, str]) -> list[StepFacts]:
    return [
        StepFacts(
            unit=r.unit_id,
            step=r.step,
            at=r.performed_at,
            by=names.get(r.performed_by_id),
            witness=names.get(r.witness_id) if r.witness_id is not None else None,
            fields=json.loads(r.fields),
            by_role=r.performed_by_role,
            witness_role=r.witness_role,
            record_id=r.id,
            corrects=r.corrects_id,
            reason=r.reason,
            recorded_at=r.recorded_at,
        )
        for r in records
    ]


def effective_records(records: Sequence[StepRecord]) -> list[StepRecord]:
    """What counts now: each original replaced by its latest correction (history is kept)."""
    latest: dict[str, StepRecord] = {}
    for record in records:  # ledger order: a later correction wins
        if record.corrects_id is not None:
            latest[record.corrects_id] = record
    return [latest.get(r.id, r) for r in records if r.corrects_id is None]


def effective_steps(session: Session, unit_id: str) -> list[StepFacts]:
    """The unit's steps as the engine should judge them: corrections applied."""
    records = effective_records(step_history(session, unit_id))
    names = usernames_of(
        session, {r.performed_by_id for r in records} | {r.witness_id for r in records}
    )
    return to_facts(records, names)


# --- the live check ----------------------------------------------------------------------------


def readings_for(session: Session, steps: Sequence[StepFacts]) -> dict[str, list[ReadingFacts]]:
    """Readings of the equipment a unit's steps name (for the checklist's storage rules)."""
    from qms.storage.models import Reading

    equipment = {s.fields["equipment"] for s in steps if isinstance(s.fields.get("equipment"), str)}
    out: dict[str, list[ReadingFacts]] = {e: [] for e in equipment}
    if not equipment:
        return out
    rows = session.exec(
        select(Reading).where(col(Reading.equipment_id).in_(equipment)).order_by(col(Reading.at))
    )
    for reading in rows:
        out[reading.equipment_id].append(
            ReadingFacts(reading.equipment_id, reading.at, reading.temperature_c)
        )
    return out


@dataclass(frozen=True)
class Assessment:
    """What the engine says of a unit now: findings so far and what is due next."""

    findings: list[Finding]
    due: list[DueItem]
    status: str = "in_progress"


def assess_unit(session: Session, registry, unit: Unit, *, now: datetime) -> Assessment:
    """Judge a unit's effective records (corrections applied) as at `now`."""
    checklist = registry.get(unit.checklist_id, unit.checklist_version)
    status = status_of(session, unit.id)
    facts = unit_facts(unit, status)
    steps = effective_steps(session, unit.id)
    readings = readings_for(session, steps)
    findings = engine.evaluate(checklist, facts, steps, readings, profile=unit.profile, now=now)
    due = (
        engine.due_next(checklist, facts, steps, profile=unit.profile, now=now)
        if status == "in_progress"
        else []
    )
    return Assessment(findings=findings, due=due, status=status)


def live_check(
    checklist,
    unit: UnitFacts,
    prior: Sequence[StepFacts],
    new: StepFacts,
    readings: Mapping[str, Sequence[ReadingFacts]] | None = None,
) -> list[Finding]:
    """The findings the new record raises (the engine's check_step)."""
    from qms.checklists.engine import check_step

    return check_step(checklist, unit, list(prior), new, readings=readings)


# --- recording a step ----------------------------------------------------------------------------


@dataclass
class LoggedStep:
    record: StepRecord
    findings: list[Finding]
    signatures: list[Signature] = field(default_factory=list)


def load_unit_and_checklist(session: Session, registry, unit_id: str):
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise RecordNotFound(f"there is no unit {unit_id}")
    try:
        checklist = registry.get(unit.checklist_id, unit.checklist_version)
    except KeyError:
        raise RecordError(
            f"unit {unit.id} was registered against checklist {unit.checklist_id} "
            f"version {unit.checklist_version}, which is not installed on this server"
        ) from None
    return unit, checklist


def step_def_of(checklist, step: str):
    if step not in checklist.steps:
        raise RecordError(
            f"checklist {checklist.id} {checklist.version} has no step {step!r}; "
            f"steps: {', '.join(checklist.steps)}"
        )
    return checklist.steps[step]


def check_performer(session: Session, user: User, unit: Unit, step_def) -> None:
    if not user.active:
        raise RecordPermissionError(f"{user.username} is deactivated")
    if Permission.LOG_STEPS not in permissions_of(user.role):
        raise RecordPermissionError(f"a {user.role} may not record steps")
    if step_def.roles and user.role not in step_def.roles:
        raise RecordPermissionError(
            f"{step_def.title} ({step_def.id}) is recorded by {', '.join(step_def.roles)}, not by a {user.role}"
        )
    if not is_member(session, user, unit.site_id):
        raise RecordPermissionError(
            f"{user.username} does not belong to site {unit.site_id}, where unit {unit.id} is"
        )


def check_witness(session: Session, witness: User, performer: User, unit: Unit, step_def) -> None:
    if witness.id == performer.id:
        raise SignatureError(
            "the witness must be a different person from the one who performed the step"
        )
    if Permission.WITNESS not in permissions_of(witness.role):
        raise SignatureError(f"{witness.username} is a {witness.role} and may not witness steps")
    if step_def.witness_roles and witness.role not in step_def.witness_roles:
        raise SignatureError(
            f"{step_def.title} is witnessed by {', '.join(step_def.witness_roles)}; "
            f"{witness.username} is a {witness.role}"
        )
    if not is_member(session, witness, unit.site_id):
        raise SignatureError(
            f"the witness {witness.username} does not belong to site {unit.site_id}"
        )


def equipment_check(session: Session, site_id: str, *, in_use: bool) -> Callable[[str], bool]:
    """Whether an equipment id names a device of the site (and, for new records, in use)."""
    from qms.storage.models import Equipment

    def exists(equipment_id: str) -> bool:
        equipment = session.get(Equipment, equipment_id)
        return (
            equipment is not None
            and equipment.site_id == site_id
            and (equipment.active or not in_use)
        )

    return exists


def clean_fields(
    step_def,
    fields: Mapping[str, Any],
    *,
    equipment_exists: Callable[[str], bool],
    partial: bool = False,
) -> dict[str, Any]:
    """Drop empty values, refuse unknown or missing required fields, parse each value as its
    field's type (numbers, yes/no, choices, scanned identifiers, equipment), normalise."""
    values = {k: v for k, v in dict(fields or {}).items() if v is not None and v != ""}
    unknown = sorted(set(values) - set(step_def.fields))
    if unknown:
        raise RecordError(
            f"{step_def.id} has no field {', '.join(unknown)}; fields: {', '.join(step_def.fields) or 'none'}"
        )
    if not partial:
        missing = [n for n, f in step_def.fields.items() if f.required and n not in values]
        if missing:
            raise RecordError(f"{step_def.title}: {', '.join(missing)} is required")
    values = parse_field_values(step_def, values, equipment_exists=equipment_exists)
    try:
        return normalise(values)
    except CanonicalError as exc:
        raise RecordError(f"{step_def.id}: {exc}") from None


def check_time(performed_at: datetime, unit: Unit, site_zone: str | None, now: datetime) -> None:
    if performed_at.tzinfo is None or performed_at.utcoffset() is None:
        raise RecordError("the time of the step must carry a UTC offset")
    if performed_at > now + CLOCK_SKEW:
        raise RecordError(
            f"the step is dated {local(performed_at, site_zone)}, in the future "
            f"(it is now {local(now, site_zone)}): record a step once it has happened"
        )
    if performed_at < unit.registered_at:
        raise RecordError(
            f"the step is dated {local(performed_at, site_zone)}, before unit {unit.id} "
            f"was registered ({local(unit.registered_at, site_zone)})"
        )


def authenticate_signers(
    *,
    session: Session,
    by: User,
    credential: Credential,
    witness: WitnessCredential | None,
    freshness_minutes: int,
    now: datetime,
    lockout: Lockout | None,
) -> tuple[str, User | None]:
    """The signer's proof, and the witness's own credentials when a witness co-signs.

    Returns the signer's signature method and the witness (None when there is none).
    """
    method = authenticate_signer(
        session=session,
        user=by,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    if witness is None or not (witness.username or "").strip():
        return method, None
    return method, authenticate_witness(
        session=session, credential=witness, now=now, lockout=lockout
    )


def sign_step(
    *,
    session: Session,
    record: StepRecord,
    by: User,
    meaning: str,
    method: str,
    witness: User | None,
    now: datetime,
) -> list[Signature]:
    """The performer's signature and, when present, the witness's (who always typed a password)."""
    signatures = [
        write_signature(
            session=session, record=record, signer=by, meaning=meaning, method=method, signed_at=now
        )
    ]
    if witness is not None:
        signatures.append(
            write_signature(
                session=session,
                record=record,
                signer=witness,
                meaning="witnessed",
                method="password",
                signed_at=now,
            )
        )
    return signatures


def require_reason(findings: list[Finding], reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if findings and reason is None:
        listed = " ".join(f"[{f.severity}] {f.message}" for f in findings)
        raise FindingsNeedReason(
            f"this record breaks {len(findings)} rule(s): {listed} What happened must be "
            "recorded: give a reason and it will be recorded, and reported as a finding.",
            findings,
        )
    return reason


def next_record_id(session: Session, unit_id: str) -> str:
    ledger.lock(session)
    count = len(session.exec(select(StepRecord.id).where(StepRecord.unit_id == unit_id)).all())
    n = count + 1
    while session.get(StepRecord, f"{unit_id}#{n}") is not None:
        n += 1
    return f"{unit_id}#{n}"


def write_step_record(
    *,
    session: Session,
    record_id: str,
    unit: Unit,
    checklist,
    step: str,
    fields: Mapping[str, Any],
    performed_at: datetime,
    recorded_at: datetime,
    performer: User,
    performer_role: str,
    witness: User | None,
    witness_role: str | None,
    recorded_by: User,
    meaning: str,
    corrects: str | None,
    reason: str | None,
    findings: Sequence[Finding],
    imported_at: datetime | None = None,
    imported_by: str | None = None,
) -> StepRecord:
    """Store and chain one step record or correction (internal: everything was checked)."""
    finding_docs = [f.to_json() for f in findings]
    content = ledger.step_content(
        id=record_id,
        unit=unit.id,
        step=step,
        fields=fields,
        performed_at=performed_at,
        recorded_at=recorded_at,
        performed_by=performer.username,
        performed_by_role=performer_role,
        witness=witness.username if witness else None,
        witness_role=witness_role,
        recorded_by=recorded_by.username,
        meaning=meaning,
        checklist=checklist.id,
        checklist_version=checklist.version,
        corrects=corrects,
        reason=reason,
        findings=finding_docs,
        imported_at=imported_at,
        imported_by=imported_by,
    )
    entry = ledger.append(session, content["type"], record_id, content)
    record = StepRecord(
        id=record_id,
        unit_id=unit.id,
        step=step,
        fields=canonical_json(fields),
        performed_at=performed_at,
        recorded_at=recorded_at,
        performed_by_id=performer.id,
        performed_by_role=performer_role,
        witness_id=witness.id if witness else None,
        witness_role=witness_role,
        recorded_by_id=recorded_by.id,
        meaning=meaning,
        checklist_id=checklist.id,
        checklist_version=checklist.version,
        corrects_id=corrects,
        reason=reason,
        findings=canonical_json(finding_docs),
        imported_at=imported_at,
        imported_by=imported_by,
        ledger_seq=entry.seq,
    )
    session.add(record)
    session.flush()
    return record


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

    Raises a RecordError subclass (nothing stored) when the performer may not record the
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
            f"the person recording a step signs it as {' or '.join(PERFORMER_MEANINGS)}, not {meaning!r}"
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
    prior = effective_steps(session, unit.id)
    if not step_def.repeats:
        done = [s for s in prior if s.step == step]
        if done:
            raise RecordError(
                f"{step_def.title} is already recorded for unit {unit.id} ({done[0].record_id}, "
                f"{local(done[0].at, site.timezone)}); if that record is wrong, correct it"
            )
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
    reason = require_reason(findings, reason)
    record = write_step_record(
        session=session,
        record_id=next_record_id(session, unit.id),
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
    return LoggedStep(record=record, findings=findings, signatures=signatures)


__all__ = [
    "MEANINGS",
    "LoggedStep",
    "effective_records",
    "effective_steps",
    "live_check",
    "log_step",
    "register_unit",
    "step_history",
    "unit_facts",
]
