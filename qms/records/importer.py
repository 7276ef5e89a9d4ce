"""`qms import`: load an interchange file (docs/interchange.md) into the ledger, all or nothing.

The whole file is checked before anything is written: the format
(`interchange.read_interchange`), the checklists (`validate_against`), then against
this database (existing ids, sites, people, times). Any problem stops the import with
every bad line named ("file:line: what is wrong") and the database untouched.

Imported records keep their original times and authors and are marked imported, with
who imported them and when. Authors are usernames. A username unknown here is refused
with its line number, unless `create_missing_users` is set: then an *inactive*
placeholder account is created for it (it can never sign in; its printed name says it
was imported), a member of the unit's or equipment's site, and both the creation and
the deactivation are in the audit trail with the file's name and sha256.

The interchange format carries no unit registration time or author, no signature
meaning beyond performer/witness, and no reading entry time: an imported unit is dated
by its earliest step (or the import time), with no registrar; its steps are signed
"performed"/"witnessed" (method "imported"); a reading is entered at the import time
by the importer. Findings are recomputed by the engine, record by record, and a major or
critical one opens a deviation as at the bedside (a correction: only what its original
did not show).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from qms.accounts import service as accounts
from qms.accounts.access import require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission, Role
from qms.checklists.engine import added_findings, effective_records, evaluate
from qms.checklists.facts import StepFacts
from qms.core import ledger
from qms.core.canonical import CanonicalError, normalise
from qms.core.clock import CLOCK_SKEW
from qms.core.errors import Invalid
from qms.core.i18n import _, _l, ngettext
from qms.core.trail import record_change
from qms.db import utcnow
from qms.quality.opening import OPENS_A_DEVIATION, open_for_step
from qms.records.interchange import (
    Interchange,
    InterchangeError,
    read_interchange,
    validate_against,
)
from qms.records.loading import unit_facts
from qms.records.models import CANCELLED, COMPLETE, StepRecord, Unit
from qms.records.queries import (
    equipment_named,
    readings_of,
)
from qms.records.wards import WardView, off_ward_words, ward_in, ward_view
from qms.records.writers import (
    PATIENT_REF_RE,
    UNIT_ID_RE,
    create_unit_record,
    write_signature,
    write_step_record,
    write_unit_status,
)
from qms.storage import service as storage
from qms.storage.models import Equipment, Reading


class ImportFileError(Invalid):
    """The file has problems; nothing was imported. `problems` names each bad line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            ngettext(
                "nothing was imported: %(num)d problem in the file",
                "nothing was imported: %(num)d problems in the file",
                len(self.problems),
            )
            + "\n"
            + "\n".join(self.problems)
        )


@dataclass
class ImportSummary:
    """What an import wrote. Its text is kept in the audit trail (the import's record), so
    it stays in English whoever imports: it is not a message of the interface."""

    units: int = 0
    steps: int = 0
    corrections: int = 0
    equipment: int = 0
    readings: int = 0
    created_users: list[str] = field(default_factory=list)
    sha256: str = ""

    def __str__(self) -> str:
        text = (
            f"imported {self.units} unit(s), {self.steps} step record(s), "
            f"{self.corrections} correction(s), {self.equipment} equipment, "
            f"{self.readings} reading(s) (file sha256 {self.sha256})"
        )
        if self.created_users:
            text += f"; inactive placeholder accounts created: {', '.join(self.created_users)}"
        return text


def _require_every_site(session: Session, actor: accounts.Actor, data) -> None:
    """The person importing answers for every site the file writes to: the sites of its
    units and of its equipment (a reading names equipment of the same file). Someone of one
    site cannot import another's records (the system, a command run without --as, acts at
    every site)."""
    if actor.id is None:
        return
    for site_id in sorted({u.site for u in data.units} | {e.site for e in data.equipment}):
        require(session, actor, Permission.IMPORT_EXPORT, site_id, action=_l("import records"))


def import_interchange(
    *,
    session: Session,
    registry,
    lines: Iterable[str],
    source: str,
    actor: accounts.Actor,
    create_missing_users: bool = False,
    now: datetime | None = None,
) -> ImportSummary:
    """Validate the whole file, then write it; raise ImportFileError (nothing written)."""
    now = now or utcnow()
    require(session, actor, Permission.IMPORT_EXPORT, action=_l("import records"))
    lines = list(lines)
    digest = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    try:
        data = read_interchange(lines, source=source)
    except InterchangeError as exc:
        raise ImportFileError(exc.problems) from None
    problems = validate_against(data, registry)
    if problems:
        raise ImportFileError(problems)
    _require_every_site(session, actor, data)
    # What the file may add (new unit ids, record ids) is decided under the ledger's lock,
    # held until the import commits: of imports running at once, the later ones are refused
    # in the import's words (never a database error), and the writers below need not ask
    # again, unit by unit.
    ledger.lock(session)
    plan = _check_against_database(
        session, registry, data, source, create_missing_users, now, actor
    )
    if plan.problems:
        raise ImportFileError([text for _, text in sorted(plan.problems, key=lambda p: p[0])])
    summary = ImportSummary(sha256=digest)
    imported_by = actor.name
    # The right to import covers the storage records in the file (equipment, readings).
    storage_actor = accounts.Actor(id=None, name=actor.name, permissions=~Permission(0))
    # Rows are inserted together (ledger.batch), not one round trip each.
    with ledger.batch(session):
        usernames = _authors(data)
        users = _users(session, usernames, plan, actor, source, digest, summary)
        units: dict[str, Unit] = {}  # the rows written here (not reloaded from the session)
        steps_of: dict[str, list] = {}
        serious: list[tuple] = []  # (unit, record id, findings, reason, author)
        kinds_found: dict[str, set[tuple[str, str]]] = {}  # record id -> (rule, kind)
        for step in data.steps:
            steps_of.setdefault(step.unit, []).append(step)
        for unit in data.units:
            steps = steps_of.get(unit.id, [])
            times = [s.at for s in steps] + [s.recorded_at for s in steps if s.recorded_at]
            units[unit.id] = create_unit_record(
                session=session,
                registry=registry,
                unit_id=unit.id,
                checklist_id=unit.checklist,
                checklist_version=unit.checklist_version,
                site_id=unit.site,
                patient_ref=unit.patient,
                coi_id=unit.coi_id,
                profile=unit.profile,
                attributes=unit.attributes,
                registered_at=min(times) if times else now,
                registered_by=None,
                imported_at=now,
                imported_by=imported_by,
                known_new=True,  # checked above, under the lock
            )
            summary.units += 1
        for item in data.equipment:
            storage.register_equipment(
                session=session,
                actor=storage_actor,
                equipment_id=item.id,
                kind=item.kind,
                site_id=item.site,
                reason=f"imported from {source} (sha256 {digest})",
                imported_at=now,
            )
            summary.equipment += 1
        ledger.flush_batch(session)  # the units, before their steps look them up
        # Originals before corrections (a correction points at its original), then by time.
        ordered = sorted(
            data.steps,
            key=lambda s: (s.corrects is not None, s.recorded_at or s.at, data.line_of(s)),
        )
        history: dict[str, list[StepFacts]] = {}
        # Every unit is new in this import: its record ids are numbered here as
        # writers.next_record_id would (count + 1, skipping ids already taken), without a query
        # per record; the readings of a device are read once (they are written after the steps).
        written: dict[str, int] = {}
        taken: set[str] = set()
        readings_cache: dict[str, list] = {}
        last_after: dict[str, list] = {}

        def readings(steps: list[StepFacts]) -> dict[str, list]:
            wanted = equipment_named(steps)
            readings_cache.update(readings_of(session, wanted - readings_cache.keys()))
            return {e: readings_cache[e] for e in wanted}

        for step in ordered:
            unit = units[step.unit]
            checklist = registry.get(unit.checklist_id, unit.checklist_version)
            performer = users[step.by]
            witness = users[step.witness] if step.witness else None
            record_id = step.record_id
            if record_id is None:
                n = written.get(unit.id, 0) + 1
                while f"{unit.id}#{n}" in taken:
                    n += 1
                record_id = f"{unit.id}#{n}"
            written[unit.id] = written.get(unit.id, 0) + 1
            taken.add(record_id)
            facts = StepFacts(
                unit=unit.id,
                step=step.step,
                at=step.at,
                by=performer.username,
                witness=witness.username if witness else None,
                fields=plan.fields[id(step)],
                by_role=step.by_role or performer.role,
                witness_role=(step.witness_role or witness.role) if witness else None,
                record_id=record_id,
                corrects=step.corrects,
                reason=step.reason,
                recorded_at=step.recorded_at,
            )
            prior = [
                f
                for f in effective_records(history.get(unit.id, []))
                if f.record_id != step.corrects
                and (f.corrects is None or f.corrects != step.corrects)
            ]
            # The live check (engine.check_step) judges the unit before and after the
            # record; for an original after an original, "before" is the last "after".
            index = readings([*prior, facts])
            before = last_after.get(unit.id) if step.corrects is None else None
            if before is None:
                before = evaluate(checklist, unit_facts(unit), prior, index, complete=False)
            after = evaluate(checklist, unit_facts(unit), [*prior, facts], index, complete=False)
            findings = added_findings(before, after)
            last_after[unit.id] = after if step.corrects is None else None
            recorded_at = step.recorded_at or step.at
            record_author = users[step.recorded_by] if step.recorded_by else performer
            record = write_step_record(
                session=session,
                record_id=record_id,
                unit=unit,
                checklist=checklist,
                step=step.step,
                fields=facts.fields,
                performed_at=step.at,
                recorded_at=recorded_at,
                performer=performer,
                performer_role=facts.by_role,
                witness=witness,
                witness_role=facts.witness_role,
                recorded_by=record_author,
                meaning="performed",
                corrects=step.corrects,
                reason=step.reason,
                findings=findings,
                imported_at=now,
                imported_by=imported_by,
            )
            signers = [(performer, "performed")] + ([(witness, "witnessed")] if witness else [])
            for number, (signer, meaning) in enumerate(signers, start=1):
                if signer is not None:
                    write_signature(
                        number=number,
                        session=session,
                        record=record,
                        signer=signer,
                        meaning=meaning,
                        method="imported",
                        signed_at=recorded_at,
                        imported_at=now,
                        imported_by=imported_by,
                    )
            history.setdefault(unit.id, []).append(facts)
            kinds_found[record.id] = {(f.rule, f.kind) for f in findings}
            if step.corrects:  # what the corrected record showed opened its own deviation
                had = _kinds_found(session, kinds_found, step.corrects)
                findings = [f for f in findings if (f.rule, f.kind) not in had]
            if any(f.severity in OPENS_A_DEVIATION for f in findings):
                serious.append((unit, record.id, findings, step.reason, record_author))
            if step.corrects:
                summary.corrections += 1
            else:
                summary.steps += 1
        for reading in sorted(data.readings, key=lambda r: (r.equipment, r.at)):
            storage.record_reading(
                session=session,
                actor=storage_actor,
                equipment_id=reading.equipment,
                at=reading.at,
                temperature_c=reading.temperature_c,
                source="import",
                now=now,
                imported_at=now,
            )
            summary.readings += 1
        ledger.flush_batch(session)  # the readings, which the status reads back
        # A finished or cancelled unit in the file: its status, after its steps and readings,
        # judged as `set_unit_status` would: the unit's steps (corrections applied) as written
        # above, and the readings of the devices they name, all read in one query.
        closing = [u for u in data.units if u.status in (COMPLETE, CANCELLED)]
        final_steps = {
            u.id: effective_records(history.get(u.id, [])) for u in closing if u.status == COMPLETE
        }
        all_readings = readings_of(
            session, set().union(*map(equipment_named, final_steps.values()))
        )
        for facts in closing:
            unit = units[facts.id]
            findings = []
            if facts.status == COMPLETE:
                steps = final_steps[facts.id]
                findings = evaluate(
                    registry.get(unit.checklist_id, unit.checklist_version),
                    unit_facts(unit, COMPLETE),
                    steps,
                    {e: all_readings[e] for e in equipment_named(steps)},
                    profile=unit.profile,
                )
            write_unit_status(
                session=session,
                unit=unit,
                status=facts.status,
                at=now,
                recorded_at=now,
                by=None,
                method="imported",
                reason=f"status {facts.status} given in {source}",
                findings=findings,
                imported_at=now,
                imported_by=imported_by,
                number=1,  # the unit is new in this import
            )
    # Quality hook: an imported record with a major or critical finding opens its
    # deviation as one recorded here would (by its author, with the file named), after
    # the batch, so that each deviation is numbered after the one before.
    for unit, record_id, findings, reason, author in serious:
        open_for_step(
            session=session,
            site_id=unit.site_id,
            unit_id=unit.id,
            record_id=record_id,
            findings=findings,
            reason=reason or f"imported from {source} (sha256 {digest})",
            by=author,
            now=now,
        )
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="interchange_file",
        entity_id=digest,
        action="import",
        new_value={"file": source, "summary": str(summary)},
        reason=f"records imported from {source}",
    )
    return summary


@dataclass
class _Plan:
    problems: list[tuple[int, str]] = field(default_factory=list)
    fields: dict[int, dict] = field(default_factory=dict)
    # username -> (line first seen, role hinted by the file, site) for unknown people
    missing_users: dict[str, tuple[int, str | None, str]] = field(default_factory=dict)


def _kinds_found(
    session: Session, written: dict[str, set[tuple[str, str]]], record_id: str
) -> set[tuple[str, str]]:
    """The (rule, kind) of the findings a record showed: written by this import, or stored."""
    if record_id in written:
        return written[record_id]
    stored = session.exec(select(StepRecord.findings).where(StepRecord.id == record_id)).first()
    return {(f["rule"], f["kind"]) for f in json.loads(stored or "[]")}


def _existing(session: Session, column, ids: list[str]) -> set[str]:
    """Which of these ids the table already holds, in a few queries whatever the count."""
    found: set[str] = set()
    for at in range(0, len(ids), 5000):
        found.update(session.exec(select(column).where(col(column).in_(ids[at : at + 5000]))))
    return found


def _check_against_database(
    session: Session,
    registry,
    data: Interchange,
    source: str,
    create_missing_users: bool,
    now: datetime,
    actor: accounts.Actor,
) -> _Plan:
    plan = _Plan()

    def problem(item, message: str) -> None:
        line = data.line_of(item) or 0
        plan.problems.append((line, f"{source}:{line}: {message}"))

    sites = {s.id for s in session.exec(select(Site))}
    units_in_file = {u.id: u for u in data.units}
    existing_units = _existing(session, Unit.id, list(units_in_file))
    existing_equipment = _existing(session, Equipment.id, [item.id for item in data.equipment])
    # The importer answers for the file's units: one scoped to wards (a nurse or physician)
    # brings only units of their wards, as they would record them. The records' authors are
    # not judged by the wards they hold today: the file says what they did then.
    views: dict[str, WardView] = {}
    for unit in data.units:
        ward = ward_in(unit.attributes)
        if ward is not None:
            if unit.site not in views:
                views[unit.site] = ward_view(session, actor, unit.site)
            if not views[unit.site].sees_ward(ward):
                problem(unit, off_ward_words(actor, unit.id, ward))
        if not UNIT_ID_RE.match(unit.id):
            problem(
                unit,
                _(
                    "unit id %(unit)s may use only letters, digits, '.', '_' or '-' (at most 64)",
                    unit=repr(unit.id),
                ),
            )
        if unit.id in existing_units:
            problem(unit, _("unit %(unit)s already exists in this database", unit=unit.id))
        if unit.site not in sites:
            problem(
                unit,
                _(
                    "unit %(unit)s: there is no site %(site)s in this database",
                    unit=unit.id,
                    site=unit.site,
                ),
            )
        if not PATIENT_REF_RE.match(unit.patient or ""):
            problem(
                unit,
                _(
                    "unit %(unit)s: the patient must be a pseudonymous reference such as P-0042, "
                    "never a name",
                    unit=unit.id,
                ),
            )
        try:
            normalise(dict(unit.attributes))
        except CanonicalError as exc:
            problem(unit, _("unit %(unit)s: attributes: %(problem)s", unit=unit.id, problem=exc))
    for item in data.equipment:
        if item.id in existing_equipment:
            problem(
                item,
                _("equipment %(equipment)s already exists in this database", equipment=item.id),
            )
        if item.site not in sites:
            problem(
                item,
                _(
                    "equipment %(equipment)s: there is no site %(site)s in this database",
                    equipment=item.id,
                    site=item.site,
                ),
            )
        if not storage.EQUIPMENT_ID_RE.match(item.id):
            problem(
                item,
                _(
                    "equipment id %(equipment)s may use only letters, digits, '.', '_' or '-'",
                    equipment=repr(item.id),
                ),
            )
        if not storage.EQUIPMENT_KIND_RE.match(item.kind):
            problem(
                item,
                _(
                    "equipment kind %(kind)s must be a lower-case word such as ln2_vapour",
                    kind=repr(item.kind),
                ),
            )
    record_ids = [s.record_id for s in data.steps if s.record_id]
    taken = (
        set(session.exec(select(StepRecord.id).where(col(StepRecord.id).in_(record_ids))).all())
        if record_ids
        else set()
    )
    known_users = _known_usernames(session, data)
    for step in data.steps:
        unit = units_in_file[step.unit]
        if step.record_id in taken:
            problem(
                step,
                _("record_id %(record)s already exists in this database", record=step.record_id),
            )
        if not step.by:
            problem(step, _("by is required: an imported record must say who performed it"))
        for who, role_hint in (
            (step.by, step.by_role),
            (step.witness, step.witness_role),
            (step.recorded_by, None),
        ):
            if who and who not in known_users:
                if not create_missing_users:
                    problem(
                        step,
                        _(
                            "unknown user %(username)s in this database; create the account "
                            "first or import with --create-missing-users",
                            username=repr(who),
                        ),
                    )
                elif not accounts.USERNAME_RE.match(who):
                    problem(
                        step,
                        _(
                            "%(username)s is not a valid username for a placeholder account",
                            username=repr(who),
                        ),
                    )
                else:
                    plan.missing_users.setdefault(
                        who, (data.line_of(step) or 0, role_hint, unit.site)
                    )
            if role_hint is not None and role_hint not in {r.value for r in Role}:
                problem(
                    step,
                    _(
                        "unknown role %(role)s; roles: %(roles)s",
                        role=repr(role_hint),
                        roles=_(", ").join(r.value for r in Role),
                    ),
                )
        if step.by and step.witness and step.by == step.witness:
            problem(step, _("the witness must be a different person from the performer"))
        if step.at > now + CLOCK_SKEW or (step.recorded_at and step.recorded_at > now + CLOCK_SKEW):
            problem(step, _("the record is dated in the future"))
        if step.recorded_at and step.recorded_at < step.at - CLOCK_SKEW:
            problem(step, _("recorded_at is before the step happened (at)"))
        checklist = registry.get(unit.checklist, unit.checklist_version)
        step_def = checklist.steps[step.step]
        unknown = sorted(set(step.fields) - set(step_def.fields))
        if unknown:
            problem(
                step,
                _(
                    "%(step)s has no field %(unknown)s; fields: %(fields)s",
                    step=step.step,
                    unknown=_(", ").join(unknown),
                    fields=_(", ").join(step_def.fields) or _("none"),
                ),
            )
        try:
            plan.fields[id(step)] = normalise(
                {k: v for k, v in step.fields.items() if v is not None and v != ""}
            )
        except CanonicalError as exc:
            problem(step, _("fields: %(problem)s", problem=exc))
        if step.corrects and not step.reason:
            problem(step, _("a correction needs a reason"))
    seen_readings: set[tuple[str, datetime]] = set()
    for reading in data.readings:
        key = (reading.equipment, reading.at)
        if key in seen_readings:
            problem(
                reading,
                _(
                    "a second reading of %(equipment)s at the same time",
                    equipment=reading.equipment,
                ),
            )
        seen_readings.add(key)
        if reading.at > now + CLOCK_SKEW:
            problem(reading, _("the reading is dated in the future"))
        if not storage.LOWEST_C <= reading.temperature_c <= storage.HIGHEST_C:
            problem(
                reading,
                _("%(value)s °C is not a possible reading", value=reading.temperature_c),
            )
        if session.exec(
            select(Reading.id).where(
                Reading.equipment_id == reading.equipment, Reading.at == reading.at
            )
        ).first():
            problem(
                reading,
                _(
                    "this reading of %(equipment)s is already in this database",
                    equipment=reading.equipment,
                ),
            )
    return plan


def _authors(data: Interchange) -> set[str]:
    """Every username the file's steps name: performers, witnesses, those who corrected."""
    return {name for s in data.steps for name in (s.by, s.witness, s.recorded_by) if name}


def _known_usernames(session: Session, data: Interchange) -> set[str]:
    wanted = _authors(data)
    if not wanted:
        return set()
    return set(session.exec(select(User.username).where(col(User.username).in_(wanted))).all())


def _users(
    session: Session,
    usernames: set[str],
    plan: _Plan,
    actor: accounts.Actor,
    source: str,
    digest: str,
    summary: ImportSummary,
) -> dict[str, User]:
    system = accounts.Actor.system(actor.name)
    reason = f"author of records imported from {source} (sha256 {digest}) by {actor.name}"
    for username, (_line, role_hint, site) in sorted(plan.missing_users.items()):
        user = accounts.create_user(
            session=session,
            actor=system,
            username=username,
            full_name=f"{username} (imported, identity not verified here)",
            role=role_hint or Role.NURSE.value,
            # No password (nobody signs in as a placeholder), and deactivated at once.
            password=None,
            site_ids=[site],
            reason=f"placeholder: {reason}",
        )
        accounts.set_user_active(
            session=session,
            actor=system,
            user=user,
            active=False,
            reason=f"placeholder accounts cannot sign in ({reason})",
        )
        summary.created_users.append(username)
    session.flush()
    return {
        u.username: u for u in session.exec(select(User).where(col(User.username).in_(usernames)))
    }
