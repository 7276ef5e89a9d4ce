"""Excursions: runs of readings outside the limits of the units stored, who was inside, and the
signed acknowledgement a pharmacist or quality officer records for each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from qms.accounts.access import require
from qms.accounts.models import User
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout
from qms.checklists.engine import effective_records
from qms.checklists.language import StorageSpec
from qms.core import ledger
from qms.core.canonical import canonical_time
from qms.core.errors import Conflict, Invalid, NotFound
from qms.core.i18n import _, _l
from qms.db import utcnow
from qms.records import loading
from qms.records.signatures import Credential, authenticate_signer
from qms.storage.models import Equipment, ExcursionAck, Reading


@dataclass(frozen=True)
class Stay:
    """A unit in a device from `start` until `end` (None: still inside)."""

    unit: object  # the Unit row
    start: datetime
    end: datetime | None
    limits: tuple[StorageSpec, ...]


@dataclass(frozen=True)
class Excursion:
    started_at: datetime
    ended_at: datetime
    warmest_c: float
    coldest_c: float
    readings: int

    @property
    def id_of(self) -> str:
        return canonical_time(self.started_at)


def stays(session: Session, site_id: str, registry) -> dict[str, list[Stay]]:
    """Every unit's stays in the site's devices, from its effective storage records."""
    batch = loading.load_units(session, site_id=site_id, per_page=None)
    out: dict[str, list[Stay]] = {}
    for loaded in batch.units:
        try:
            checklist = registry.get(loaded.row.checklist_id, loaded.row.checklist_version)
            specs = tuple(r.spec for r in checklist.rules if isinstance(r.spec, StorageSpec))
        except KeyError:
            specs = ()
        where, since = None, None
        for step in sorted(effective_records(list(loaded.case.steps)), key=lambda x: x.at):
            if step.step == "storage_in" and isinstance(step.fields.get("equipment"), str):
                where, since = step.fields["equipment"], step.at
            elif step.step == "storage_out" and where is not None:
                out.setdefault(where, []).append(Stay(loaded.row, since, step.at, specs))
                where = None
        if where is not None:
            out.setdefault(where, []).append(Stay(loaded.row, since, None, specs))
    return out


def inside_between(stays_: Sequence[Stay], start: datetime, end: datetime) -> list[Stay]:
    return [s for s in stays_ if s.start <= end and (s.end is None or s.end >= start)]


def band(stays_: Sequence[Stay]) -> tuple[float | None, float | None]:
    """The strictest limits of these units' products: the highest minimum, the lowest maximum."""
    highs = [x.max for s in stays_ for x in s.limits if x.max is not None]
    lows = [x.min for s in stays_ for x in s.limits if x.min is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def find_excursions(
    readings: Sequence[Reading], stays_: Sequence[Stay]
) -> list[tuple[Excursion, list[Stay]]]:
    """Runs of consecutive readings outside the limits of the units inside at the time."""
    runs: list[tuple[Excursion, list[Stay]]] = []
    current: list[Reading] = []
    inside: dict[int, Stay] = {}

    def close():
        if current:
            temps = [r.temperature_c for r in current]
            runs.append(
                (
                    Excursion(current[0].at, current[-1].at, max(temps), min(temps), len(temps)),
                    list(inside.values()),
                )
            )
            current.clear()
            inside.clear()

    for reading in readings:
        here = inside_between(stays_, reading.at, reading.at)
        low, high = band(here)
        out = (high is not None and reading.temperature_c > high) or (
            low is not None and reading.temperature_c < low
        )
        if out:
            current.append(reading)
            for stay in here:
                inside[id(stay)] = stay
        else:
            close()
    close()
    return runs


def acknowledgements(session: Session, equipment_id: str) -> dict[str, ExcursionAck]:
    rows = session.exec(
        select(ExcursionAck)
        .where(ExcursionAck.equipment_id == equipment_id)
        .order_by(col(ExcursionAck.ledger_seq))
    )
    return {canonical_time(r.started_at): r for r in rows}


def acknowledge(
    *,
    session: Session,
    registry,
    by: User,
    credential: Credential,
    freshness_minutes: int,
    equipment_id: str,
    started_at: datetime,
    comment: str,
    now: datetime | None = None,
    lockout: Lockout | None = None,
) -> ExcursionAck:
    """Sign the acknowledgement of the excursion that starts at `started_at`; the caller commits."""
    now = now or utcnow()
    equipment = session.get(Equipment, equipment_id)
    if equipment is None:
        raise NotFound(_("there is no equipment %(equipment)s", equipment=equipment_id))
    permission = (
        Permission.AUDIT
        if Permission.AUDIT in permissions_of(by.role)
        else Permission.MANAGE_STORAGE
    )
    require(session, by, permission, equipment.site_id, action=_l("acknowledge excursions"))
    comment = (comment or "").strip()
    if not comment:
        raise Invalid(_("An acknowledgement needs a comment: what was found and what was done."))
    readings = list(
        session.exec(
            select(Reading)
            .where(Reading.equipment_id == equipment_id, col(Reading.at) >= started_at)
            .order_by(col(Reading.at))
        )
    )
    all_stays = stays(session, equipment.site_id, registry).get(equipment_id, [])
    found = [
        (e, inside)
        for e, inside in find_excursions(readings, all_stays)
        if e.started_at == started_at
    ]
    if not found:
        raise NotFound(_("No excursion of %(equipment)s starts then.", equipment=equipment_id))
    excursion, inside = found[0]
    method = authenticate_signer(
        session=session,
        user=by,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    ledger.lock(session)
    ack_id = f"{equipment_id}@{canonical_time(started_at)}"
    if session.get(ExcursionAck, ack_id) is not None:
        raise Conflict(_("This excursion is already acknowledged."))
    row = ExcursionAck(
        id=ack_id,
        equipment_id=equipment_id,
        started_at=excursion.started_at,
        ended_at=excursion.ended_at,
        warmest_c=excursion.warmest_c,
        comment=comment,
        units=json.dumps(sorted({s.unit.id for s in inside}), separators=(",", ":")),
        by_id=by.id,
        by_role=by.role,
        printed_name=by.full_name,
        method=method,
        at=now,
    )
    return ledger.write(session, row)
