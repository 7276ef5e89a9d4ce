"""`qms export`: write units, step records (with corrections), equipment and readings
as the interchange file (docs/interchange.md), so that export → import → export is identical.

Times are written in the site's zone with its offset. `since` selects the units with
a record entered at or after that time (each with all its records, so corrections
keep their originals) and the readings measured from then on. Import markers are
local facts of a database and are not exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from sqlmodel import Session, col, select

from qms.accounts.models import Site, User
from qms.checklists.facts import EquipmentFacts, ReadingFacts, StepFacts
from qms.core.clock import zone_of
from qms.records.interchange import write_interchange
from qms.records.loading import unit_facts as facts_of_unit
from qms.records.models import IN_PROGRESS, StepRecord, Unit
from qms.records.queries import status_of
from qms.storage.models import Equipment, Reading


def export_interchange(
    *, session: Session, site: str | None = None, since: datetime | None = None
) -> Iterator[str]:
    """The interchange lines, in ledger order within each kind."""
    zones = {s.id: zone_of(s.timezone) for s in session.exec(select(Site))}
    names = dict(session.exec(select(User.id, User.username)).all())
    unit_query = select(Unit).order_by(col(Unit.ledger_seq))
    if site is not None:
        unit_query = unit_query.where(Unit.site_id == site)
    units = list(session.exec(unit_query))
    if since is not None:
        recent = set(
            session.exec(select(StepRecord.unit_id).where(StepRecord.recorded_at >= since)).all()
        )
        units = [u for u in units if u.id in recent or u.registered_at >= since]
    unit_ids = [u.id for u in units]
    records = (
        list(
            session.exec(
                select(StepRecord)
                .where(col(StepRecord.unit_id).in_(unit_ids))
                .order_by(col(StepRecord.ledger_seq))
            )
        )
        if unit_ids
        else []
    )
    site_of_unit = {u.id: u.site_id for u in units}
    equipment_query = select(Equipment).order_by(Equipment.id)
    if site is not None:
        equipment_query = equipment_query.where(Equipment.site_id == site)
    equipment = list(session.exec(equipment_query))
    reading_query = (
        select(Reading)
        .where(col(Reading.equipment_id).in_([e.id for e in equipment]))
        .order_by(col(Reading.ledger_seq))
    )
    if since is not None:
        reading_query = reading_query.where(Reading.at >= since)
    readings = list(session.exec(reading_query)) if equipment else []
    if since is not None:
        used = {r.equipment_id for r in readings}
        equipment = [e for e in equipment if e.id in used]
    site_of_equipment = {e.id: e.site_id for e in equipment}

    def at(moment: datetime, site_id: str) -> datetime:
        return moment.astimezone(zones[site_id])

    statuses = {u.id: status_of(session, u.id) for u in units}
    # In progress is the default and is not written, so older files read the same.
    unit_facts = [
        facts_of_unit(u, statuses[u.id] if statuses[u.id] != IN_PROGRESS else None) for u in units
    ]
    step_facts = [
        StepFacts(
            unit=r.unit_id,
            step=r.step,
            at=at(r.performed_at, site_of_unit[r.unit_id]),
            by=names[r.performed_by_id],
            witness=names[r.witness_id] if r.witness_id is not None else None,
            fields=json.loads(r.fields),
            by_role=r.performed_by_role,
            witness_role=r.witness_role,
            record_id=r.id,
            corrects=r.corrects_id,
            reason=r.reason,
            recorded_at=at(r.recorded_at, site_of_unit[r.unit_id]),
            recorded_by=names[r.recorded_by_id] if r.recorded_by_id != r.performed_by_id else None,
        )
        for r in records
    ]
    equipment_facts = [EquipmentFacts(id=e.id, kind=e.kind, site=e.site_id) for e in equipment]
    reading_facts = [
        ReadingFacts(
            equipment=r.equipment_id,
            at=at(r.at, site_of_equipment[r.equipment_id]),
            temperature_c=r.temperature_c,
        )
        for r in readings
    ]
    return write_interchange(unit_facts, step_facts, equipment_facts, reading_facts)
