"""Reading a unit's records: its history, the facts the engine judges, its status, signatures.

Read-only: nothing here writes. The guards, the writers and the services build on these.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlmodel import Session, col, func, select

from qms.accounts.models import User
from qms.checklists import engine
from qms.checklists.facts import Finding, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.judging import Judgement
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _
from qms.records.loading import load_readings, load_units_by_id, step_facts
from qms.records.models import IN_PROGRESS, Signature, StepRecord, Unit, UnitStatus
from qms.storage.models import Reading


def load_unit_and_checklist(session: Session, registry, unit_id: str):
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(_("there is no unit %(unit)s", unit=unit_id))
    try:
        checklist = registry.get(unit.checklist_id, unit.checklist_version)
    except KeyError:
        raise Invalid(
            _(
                "unit %(unit)s was registered against checklist %(checklist)s version "
                "%(version)s, which is not installed on this server",
                unit=unit.id,
                checklist=unit.checklist_id,
                version=unit.checklist_version,
            )
        ) from None
    return unit, checklist


def step_def_of(checklist, step: str):
    if step not in checklist.steps:
        raise Invalid(
            _(
                "checklist %(checklist)s %(version)s has no step %(step)s; steps: %(steps)s",
                checklist=checklist.id,
                version=checklist.version,
                step=repr(step),
                steps=_(", ").join(checklist.steps),
            )
        )
    return checklist.steps[step]


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


def effective_records(records: Sequence[StepRecord]) -> list[StepRecord]:
    """What counts now: each original replaced by its latest correction (history is kept).

    The engine decides (`engine.effective_records`, the one owner of the rule); this maps
    its choice back to the rows."""
    by_id = {r.id: r for r in records}
    return [by_id[f.record_id] for f in engine.effective_records(step_facts(records, {}))]


def effective_steps(session: Session, unit_id: str) -> list[StepFacts]:
    """The unit's steps as the engine should judge them: corrections applied."""
    return effective_history(session, unit_id)[0]


_HISTORY_COLUMNS = (
    StepRecord.id,
    StepRecord.unit_id,
    StepRecord.step,
    StepRecord.fields,
    StepRecord.performed_at,
    StepRecord.recorded_at,
    StepRecord.performed_by_id,
    StepRecord.performed_by_role,
    StepRecord.witness_id,
    StepRecord.witness_role,
    StepRecord.recorded_by_id,
    StepRecord.corrects_id,
    StepRecord.reason,
)


def effective_history(session: Session, unit_id: str) -> tuple[list[StepFacts], int]:
    """`effective_steps`, and how many records the unit has (originals and corrections).

    Two queries: the records' columns (no model objects: a unit's history is read on
    every step recorded), then the usernames of the effective records' people."""
    rows = session.exec(
        select(*_HISTORY_COLUMNS)
        .where(StepRecord.unit_id == unit_id)
        .order_by(col(StepRecord.ledger_seq))
    ).all()
    by_id = {r.id: r for r in rows}
    chosen = engine.effective_records(step_facts(rows, {}))
    ids = {by_id[f.record_id].performed_by_id for f in chosen}
    ids |= {by_id[f.record_id].witness_id for f in chosen}
    names = usernames_of(session, ids)
    facts = []
    for f in chosen:
        r = by_id[f.record_id]
        facts.append(
            replace(
                f,
                by=names.get(r.performed_by_id),
                witness=names.get(r.witness_id) if r.witness_id is not None else None,
                recorded_by=names.get(r.recorded_by_id)
                if r.recorded_by_id != r.performed_by_id
                else None,
            )
        )
    return facts, len(rows)


def unit_version(
    session: Session,
    unit_id: str,
    equipment: Collection[str] | None,
    *,
    records: tuple | None = None,
) -> tuple:
    """What a live check of the unit reads, as ledger positions: the newest seq of its step
    records, of its status records, and of the readings of `equipment` (None for none).
    Records are only ever appended, in seq order, so an unchanged version means unchanged
    facts. `records` reuses the first two, read earlier (before the unit's history)."""
    columns = []
    if records is None:
        columns += [
            select(func.max(StepRecord.ledger_seq))
            .where(StepRecord.unit_id == unit_id)
            .scalar_subquery(),
            select(func.max(UnitStatus.ledger_seq))
            .where(UnitStatus.unit_id == unit_id)
            .scalar_subquery(),
        ]
    if equipment:
        columns.append(
            select(func.max(Reading.ledger_seq))
            .where(col(Reading.equipment_id).in_(sorted(equipment)))
            .scalar_subquery()
        )
    if not columns:
        return (*records[:2], None)
    found = tuple(session.execute(select(*columns)).one())
    if records is not None:
        return (*records[:2], found[0])
    return found if equipment else (*found, None)


def equipment_named(steps: Sequence[StepFacts]) -> set[str]:
    return {s.fields["equipment"] for s in steps if isinstance(s.fields.get("equipment"), str)}


def readings_for(session: Session, steps: Sequence[StepFacts]) -> dict[str, list[ReadingFacts]]:
    """Readings of the equipment a unit's steps name (for the checklist's storage rules),
    from the reading in effect at the earliest step that names each: what the unit's page
    judges with (`loading.load_readings`), in one query of three columns, not a device's
    whole history as model objects (a year of a logger is 525,600 readings)."""
    return load_readings(session, steps)


def readings_of(session: Session, equipment: set[str]) -> dict[str, list[ReadingFacts]]:
    """The readings of these devices, in time order, in one query."""
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


def signatures_of(session: Session, record_ids: list[str]) -> dict[str, list[Signature]]:
    out: dict[str, list[Signature]] = {rid: [] for rid in record_ids}
    if not record_ids:
        return out
    rows = session.exec(
        select(Signature)
        .where(col(Signature.record_id).in_(record_ids))
        .order_by(col(Signature.ledger_seq))
    )
    for signature in rows:
        out[signature.record_id].append(signature)
    return out


def assess_unit(session: Session, registry, unit: Unit, *, now: datetime) -> Judgement:
    """Judge one unit as at `now` (findings, what is due, its status): the loader and the
    judging function every page uses (`records.loading`, `checklists.judging`)."""
    return load_units_by_id(session, [unit.id]).judge(registry, now=now)[unit.id]


def live_check(
    checklist,
    unit: UnitFacts,
    prior: Sequence[StepFacts],
    new: StepFacts,
    readings: Mapping[str, Sequence[ReadingFacts]] | None = None,
) -> list[Finding]:
    """The findings the new record raises (the engine's check_step)."""
    return engine.check_step(checklist, unit, list(prior), new, readings=readings)
