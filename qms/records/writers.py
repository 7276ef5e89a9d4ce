"""The writers of the records domain: each builds one typed row and chains it.

Internal: callers (the services, the importer) have run the guards. The content that is
hashed derives from each model's declaration (`qms.core.ledger.write`); ids are
assigned under the ledger's lock, so concurrent writers cannot take the same one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, func, select

from qms.accounts.models import User
from qms.checklists.facts import Finding
from qms.core import ledger
from qms.core.canonical import CanonicalError, canonical_json
from qms.core.errors import Conflict, Invalid, SignatureError
from qms.core.i18n import _
from qms.records.models import Signature, StepRecord, Unit, UnitStatus

UNIT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A pseudonymous reference such as P-0042: letters, digits and . _ - : /, at least one
# digit, no spaces. It keeps names out (a report never shows a patient's name).
PATIENT_REF_RE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
MEANINGS = ("performed", "witnessed", "verified", "reviewed", "approved")


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
    known_new: bool = False,
) -> Unit:
    """`known_new`: the caller has checked, under the ledger's lock, that no unit has this id
    (the import, for all its units in one query)."""
    unit_id = (unit_id or "").strip()
    ledger.lock(session)  # "already registered" is decided under the lock
    if not UNIT_ID_RE.match(unit_id):
        raise Invalid(
            _(
                "unit id %(unit)s must start with a letter or digit and use only letters, "
                "digits, '.', '_' or '-' (at most 64)",
                unit=repr(unit_id),
            )
        )
    if not known_new and session.get(Unit, unit_id) is not None:
        raise Conflict(_("unit %(unit)s is already registered", unit=unit_id))
    patient_ref = (patient_ref or "").strip()
    if not PATIENT_REF_RE.match(patient_ref):
        raise Invalid(
            _(
                "the patient reference must be a pseudonymous code such as P-0042 "
                "(letters, digits, '.', '_', '-', ':' or '/', at least one digit, no spaces) "
                "— never a name"
            )
        )
    try:
        checklist = registry.get(checklist_id, checklist_version)
    except KeyError as exc:
        raise Invalid(exc.args[0]) from None
    if profile is not None and profile not in registry.profiles:
        raise Invalid(
            _(
                "unknown profile %(profile)s; profiles: %(profiles)s",
                profile=repr(profile),
                profiles=_(", ").join(sorted(registry.profiles)) or _("none"),
            )
        )
    try:
        attributes_json = canonical_json(dict(attributes or {}))
    except CanonicalError as exc:
        raise Invalid(_("unit attributes: %(problem)s", problem=exc)) from None
    unit = ledger.new_row(
        session,
        Unit,
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
    )
    return ledger.write(session, unit)


def next_record_id(session: Session, unit_id: str, *, count: int | None = None) -> str:
    """The unit's next record id, under the ledger lock; `count` is how many records the
    unit has, when the caller has just read them under the lock."""
    ledger.lock(session)
    if count is None:
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
    finding_docs = [f.to_record() for f in findings]
    record = ledger.new_row(
        session,
        StepRecord,
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
    )
    return ledger.write(session, record)


def write_signature(
    *,
    session: Session,
    record: StepRecord,
    signer: User,
    meaning: str,
    method: str,
    signed_at: datetime,
    imported_at: datetime | None = None,
    imported_by: str | None = None,
    number: int | None = None,
) -> Signature:
    """Store one signature and chain it (internal: callers have checked who may sign).

    Its id is "<record id>/<n>"; a caller that knows n (the import, for a record it has
    just written) gives `number` and saves the count."""
    if meaning not in MEANINGS:
        raise SignatureError(
            _(
                "unknown signature meaning %(meaning)s; one of: %(meanings)s",
                meaning=repr(meaning),
                meanings=_(", ").join(MEANINGS),
            )
        )
    ledger.lock(session)
    if number is None:
        number = (
            1
            + session.exec(
                select(func.count()).select_from(Signature).where(Signature.record_id == record.id)
            ).one()
        )
    signature_id = f"{record.id}/{number}"
    signature = ledger.new_row(
        session,
        Signature,
        id=signature_id,
        record_id=record.id,
        signer_id=signer.id,
        printed_name=signer.full_name,
        meaning=meaning,
        signed_at=signed_at,
        method=method,
        imported_at=imported_at,
        imported_by=imported_by,
    )
    return ledger.write(session, signature)


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
    """The performer's signature and, when present, the witness's (who always typed a password),
    on a record just written (so they are its first and second: no count)."""
    signatures = [
        write_signature(
            session=session,
            record=record,
            signer=by,
            meaning=meaning,
            method=method,
            signed_at=now,
            number=1,
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
                number=2,
            )
        )
    return signatures


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
    number: int | None = None,
) -> UnitStatus:
    """Store and chain one status record (internal: everything was checked). Its id is
    "<unit id>!<n>"; a caller that knows n (the import, for a unit it has just written)
    gives `number` and saves the count."""
    ledger.lock(session)
    if number is None:
        number = (
            1
            + session.exec(
                select(func.count()).select_from(UnitStatus).where(UnitStatus.unit_id == unit.id)
            ).one()
        )
    record_id = f"{unit.id}!{number}"
    finding_docs = [f.to_record() for f in findings]
    record = ledger.new_row(
        session,
        UnitStatus,
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
    )
    return ledger.write(session, record)
