"""Loading units to judge, in batches: a fixed number of queries whatever the number of units.

One page of a site's units (filtered, open units first), or a list of unit ids, comes
back with each unit's latest status, its step records as recorded (originals and
corrections, in ledger order), the usernames they name and the readings of the
equipment they name — and, per unit, the facts `qms.checklists.judging` takes. Which
records count (corrections applied) is the engine's to decide: the facts here are raw.

The ward of a unit: units have no ward column and no shipped step records one, so a
unit's ward is its `ward` attribute (a ward code of the site, given at registration or
in an imported file). Filtering by ward filters on that attribute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, case, cast, func, literal, or_, union_all
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from qms.accounts.models import User
from qms.checklists import engine
from qms.checklists.facts import IN_PROGRESS, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.judging import Judgement, UnitCase, judge_many
from qms.records.models import StepRecord, Unit, UnitStatus
from qms.records.wards import WARD_ATTRIBUTE
from qms.storage.models import Reading

PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class UnitFilter:
    """Which units of a site: None means any."""

    status: str | None = None  # in_progress | complete | cancelled
    checklist: str | None = None  # the product's checklist id
    ward: str | None = None  # a ward code (the unit's `ward` attribute)
    # Ward staff's scope (`accounts.access.ward_scope`): units of these wards and units on
    # no ward; None: every unit of the site.
    wards: frozenset[str] | None = None


@dataclass(slots=True)
class LoadedUnit:
    """One unit with what it takes to judge it and to show it in a list."""

    row: Unit
    status: str  # the latest status record's, else in progress
    last_activity: datetime  # the latest record entered (step or status), else registration
    records: list[StepRecord]  # originals and corrections, in ledger order
    case: UnitCase  # the facts for `judging.judge` (raw records: corrections included)

    @property
    def attributes(self) -> dict:
        return dict(self.case.unit.attributes)

    @property
    def ward(self) -> str | None:
        value = self.case.unit.attributes.get(WARD_ATTRIBUTE)
        return value if isinstance(value, str) else None


@dataclass(slots=True)
class UnitBatch:
    """Units loaded together, with the readings and usernames they share."""

    units: list[LoadedUnit]
    readings: engine.ReadingIndex
    usernames: dict[int, str] = field(default_factory=dict)
    total: int = 0  # units matching the filter (all pages)
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def judge(
        self,
        registry,
        *,
        now: datetime | None,
        status: str | None = None,
        profile=None,
        due: bool = True,
    ) -> dict[str, Judgement | None]:
        """Judge every unit of the batch (None for a unit whose checklist is not installed)."""
        installed = {}
        for loaded in self.units:
            key = (loaded.row.checklist_id, loaded.row.checklist_version)
            if key not in installed:
                try:
                    installed[key] = registry.get(*key)
                except KeyError:
                    installed[key] = None
        judgeable = [
            u.case
            for u in self.units
            if installed[(u.row.checklist_id, u.row.checklist_version)] is not None
        ]
        judged = judge_many(
            judgeable,
            lambda facts: installed[(facts.checklist, facts.checklist_version)],
            self.readings,
            now=now,
            status=status,
            profile=profile,
            due=due,
        )
        return {u.row.id: judged.get(u.row.id) for u in self.units}


# --- facts ------------------------------------------------------------------------------


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


def step_facts(records: Iterable[StepRecord], usernames: Mapping[int, str]) -> list[StepFacts]:
    """Step records as the engine reads them (originals and corrections alike)."""
    return [
        StepFacts(
            unit=r.unit_id,
            step=r.step,
            at=r.performed_at,
            by=usernames.get(r.performed_by_id),
            witness=usernames.get(r.witness_id) if r.witness_id is not None else None,
            fields=json.loads(r.fields),
            by_role=r.performed_by_role,
            witness_role=r.witness_role,
            record_id=r.id,
            corrects=r.corrects_id,
            reason=r.reason,
            recorded_at=r.recorded_at,
            recorded_by=usernames.get(r.recorded_by_id)
            if r.recorded_by_id != r.performed_by_id
            else None,
        )
        for r in records
    ]


# --- loading --------------------------------------------------------------------------------


def load_units(
    session: Session,
    *,
    site_id: str,
    filter: UnitFilter | None = None,
    page: int = 1,
    per_page: int | None = PER_PAGE,
) -> UnitBatch:
    """One page of a site's units: open units first, then the most recently active.

    A page past the end gives no units (and the total, to link back). Five queries
    whatever the number of units: the count, the page, the records, the usernames,
    the readings (only the count when the page is empty). `per_page=None` loads every
    unit that matches in one batch (an audit of a site; the records are then read by
    1,000 units a query).
    """
    filter = filter or UnitFilter()
    page = max(1, page)
    units = _UnitsQuery(site_id=site_id)
    conditions = [Unit.site_id == site_id]
    if filter.status is not None:
        conditions.append(units.status == filter.status)
    if filter.checklist is not None:
        conditions.append(Unit.checklist_id == filter.checklist)
    if filter.ward is not None:
        conditions.append(_ward_of(session) == filter.ward)
    if filter.wards is not None:
        ward = _ward_of(session)
        conditions.append(or_(ward.is_(None), ward.in_(sorted(filter.wards))))
    total = session.exec(
        units.count(with_status=filter.status is not None).where(*conditions)
    ).one()
    if per_page is None:
        page, per_page = 1, max(1, total)
    rows = []
    if (page - 1) * per_page < total:
        open_first = case((units.status == IN_PROGRESS, 0), else_=1)
        rows = session.exec(
            units.units()
            .where(*conditions)
            .order_by(open_first, units.activity.desc(), col(Unit.id))
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
    batch = _complete(session, rows)
    batch.total, batch.page, batch.per_page = total, page, per_page
    return batch


def load_units_by_id(
    session: Session,
    unit_ids: Collection[str],
    *,
    readings: bool = True,
) -> UnitBatch:
    """The named units (those that exist), in the order given: one unit's page, a live
    check, a status change, an import, an audit's list of units. Four queries (for each
    1,000 units: the databases limit the parameters of one statement).

    `readings=False` loads no readings (a caller that judges no storage rule, such as
    the live check when the new record cannot change a storage finding: one query less).
    """
    ids = list(dict.fromkeys(unit_ids))
    if not ids:
        return UnitBatch(units=[], readings=engine.ReadingIndex({}))
    found = {}
    query = _units_by_id()
    for chunk in _chunks(ids):
        found.update((row[0].id, row) for row in session.exec(query, params={"ids": chunk}).all())
    batch = _complete(session, [found[i] for i in ids if i in found], readings)
    batch.total = len(batch.units)
    batch.per_page = max(1, batch.total)
    return batch


_BY_ID: list = []


def _units_by_id():
    """The SELECT of units by id (the ids an expanding parameter, `ids`), built once: its
    subqueries take longer to build than the database takes to run it for one unit page."""
    if not _BY_ID:
        ids = bindparam("ids", expanding=True)
        _BY_ID.append(_UnitsQuery(ids).units().where(col(Unit.id).in_(ids)))
    return _BY_ID[0]


def load_readings(session: Session, steps: Iterable[StepFacts]) -> dict[str, list[ReadingFacts]]:
    """The readings of the equipment the steps name, from the reading in effect at the
    earliest step that names each (what storage rules read), in time order."""
    since: dict[str, datetime] = {}
    for step in steps:
        equipment = step.fields.get("equipment")
        if isinstance(equipment, str):
            since[equipment] = min(since.get(equipment, step.at), step.at)
    out: dict[str, list[ReadingFacts]] = {e: [] for e in since}
    if not since:
        return out
    clauses = []
    for equipment, start in since.items():
        # The reading in effect at `start` is the last one at or before it.
        in_effect = (
            select(func.max(Reading.at))
            .where(Reading.equipment_id == equipment, Reading.at <= start)
            .scalar_subquery()
        )
        clauses.append(
            and_(Reading.equipment_id == equipment, Reading.at >= func.coalesce(in_effect, start))
        )
    rows = session.exec(
        select(Reading.equipment_id, Reading.at, Reading.temperature_c)
        .where(or_(*clauses))
        .order_by(col(Reading.equipment_id), col(Reading.at))
    )
    for equipment, at, temperature in rows:
        out[equipment].append(ReadingFacts(equipment, at, temperature))
    return out


def site_checklists(session: Session, site_id: str) -> list[str]:
    """The checklist ids (products) of the units registered at a site."""
    return list(
        session.exec(
            select(Unit.checklist_id)
            .where(Unit.site_id == site_id)
            .distinct()
            .order_by(col(Unit.checklist_id))
        )
    )


# --- the pieces of the queries -----------------------------------------------------------------


class _UnitsQuery:
    """SELECTs of units with their status (the latest status record's, else in progress)
    and their last activity (the latest record entered, else registration).

    `ids` narrows the per-unit aggregates to those units, `site_id` the open units whose
    step records are read to the site's.
    """

    def __init__(self, ids: Collection[str] | None = None, *, site_id: str | None = None):
        # Statuses are few (one a closing): grouping every site's costs less than looking
        # each of a site's units up; the step records are narrowed to the units asked.
        self._latest = self._latest_status(ids)
        self._current = aliased(UnitStatus, name="current_status")
        self.status = func.coalesce(self._current.status, literal(IN_PROGRESS)).label("unit_status")
        # A closed unit takes no new step (its steps were all entered before the status
        # that closed it), only corrections: so a unit's latest step record is looked up
        # for the open units alone, which keeps the steps of the site's whole history
        # unread; the corrections have an index of their own.
        latest, current = self._latest_status(ids), aliased(UnitStatus, name="open_status")
        open_units = (
            select(Unit.id)
            .outerjoin(latest, latest.c.unit_id == Unit.id)
            .outerjoin(current, current.ledger_seq == latest.c.seq)
            .where(func.coalesce(current.status, literal(IN_PROGRESS)) == IN_PROGRESS)
        )
        if ids is not None:
            open_units = open_units.where(col(Unit.id).in_(ids))
        if site_id is not None:
            open_units = open_units.where(Unit.site_id == site_id)
        open_steps = select(StepRecord.unit_id, StepRecord.recorded_at.label("at")).where(
            col(StepRecord.unit_id).in_(open_units.scalar_subquery())
        )
        # Corrections grouped by the record corrected: that column's index finds them
        # (grouped by unit, the planner would read every step record in unit order).
        corrected = select(
            func.max(StepRecord.unit_id).label("unit_id"),
            func.max(StepRecord.recorded_at).label("at"),
        ).where(col(StepRecord.corrects_id).is_not(None))
        if ids is not None:
            corrected = corrected.where(col(StepRecord.unit_id).in_(ids))
        entered = union_all(open_steps, corrected.group_by(StepRecord.corrects_id)).subquery(
            "entered"
        )
        self._steps = (
            select(entered.c.unit_id, func.max(entered.c.at).label("at"))
            .group_by(entered.c.unit_id)
            .subquery("latest_step")
        )
        self.activity = _latest_of(Unit.registered_at, self._latest.c.at, self._steps.c.at).label(
            "last_activity"
        )

    @staticmethod
    def _latest_status(ids):
        latest = select(
            UnitStatus.unit_id,
            func.max(UnitStatus.ledger_seq).label("seq"),
            func.max(UnitStatus.recorded_at).label("at"),
        )
        if ids is not None:
            latest = latest.where(col(UnitStatus.unit_id).in_(ids))
        return latest.group_by(UnitStatus.unit_id).subquery("latest_status")

    def count(self, *, with_status: bool):
        """The number of units (the status joined only for a filter on it)."""
        query = select(func.count()).select_from(Unit)
        return self._with_status(query) if with_status else query

    def units(self):
        """Rows of (unit, status, last activity)."""
        query = self._with_status(select(Unit, self.status, self.activity).select_from(Unit))
        return query.outerjoin(self._steps, self._steps.c.unit_id == Unit.id)

    def _with_status(self, query):
        return query.outerjoin(self._latest, self._latest.c.unit_id == Unit.id).outerjoin(
            self._current, self._current.ledger_seq == self._latest.c.seq
        )


def _chunks(ids: list[str], size: int = 1000) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _latest_of(first, *others):
    """The latest of several times in SQL (None ones ignored; `first` is never None)."""
    latest = first
    for other in others:
        later = func.coalesce(other, latest)
        latest = case((later > latest, later), else_=latest)
    return latest


def _ward_of(session: Session):
    """The unit's `ward` attribute in SQL (the attributes are canonical JSON text)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Unit.attributes, JSONB)[WARD_ATTRIBUTE].astext
    return func.json_extract(Unit.attributes, f"$.{WARD_ATTRIBUTE}")


def _complete(session: Session, rows, readings: bool = True) -> UnitBatch:
    """The page's units with their records, usernames and readings (three queries)."""
    if not rows:
        return UnitBatch(units=[], readings=engine.ReadingIndex({}))
    ids = [unit.id for unit, _, _ in rows]
    records_of: dict[str, list[StepRecord]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        for record in session.exec(
            select(StepRecord)
            .where(col(StepRecord.unit_id).in_(chunk))
            .order_by(col(StepRecord.ledger_seq))
        ):
            records_of[record.unit_id].append(record)
    wanted = {unit.registered_by_id for unit, _, _ in rows}
    for records in records_of.values():
        for r in records:
            wanted.update((r.performed_by_id, r.witness_id, r.recorded_by_id))
    wanted.discard(None)
    usernames = (
        dict(session.exec(select(User.id, User.username).where(col(User.id).in_(wanted))).all())
        if wanted
        else {}
    )
    units = []
    all_steps: list[StepFacts] = []
    for unit, status, activity in rows:
        steps = tuple(step_facts(records_of[unit.id], usernames))
        all_steps.extend(steps)
        units.append(
            LoadedUnit(
                row=unit,
                status=status,
                last_activity=activity,
                records=records_of[unit.id],
                case=UnitCase(unit=unit_facts(unit, status), steps=steps),
            )
        )
    index = engine.ReadingIndex(load_readings(session, all_steps) if readings else {})
    return UnitBatch(units=units, readings=index, usernames=usernames)


__all__ = [
    "PER_PAGE",
    "LoadedUnit",
    "UnitBatch",
    "UnitFilter",
    "load_readings",
    "load_units",
    "load_units_by_id",
    "site_checklists",
    "step_facts",
    "unit_facts",
]
