"""Storage operations: the only code that writes equipment and temperature readings.

Equipment is master data: created and (de)activated with a reason in the audit trail.
A reading is a regulated record: chained in the ledger, never changed. Every function
takes a keyword-only `session`; the caller commits.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from sqlmodel import Session, select

from qms.accounts.access import require
from qms.accounts.models import Site
from qms.accounts.roles import Permission
from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.clock import CLOCK_SKEW
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _, _l, format_datetime
from qms.core.trail import record_change
from qms.db import utcnow
from qms.storage.models import Equipment, Reading

EQUIPMENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EQUIPMENT_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
READING_SOURCES = ("manual", "logger", "import")
# Physically possible readings: below absolute zero or above boiling is a sensor fault.
LOWEST_C, HIGHEST_C = -273.15, 100.0


def _require(session: Session, actor: Actor, site_id: str) -> None:
    require(
        session,
        actor,
        Permission.MANAGE_STORAGE,
        site_id,
        action=_l("manage storage equipment or readings"),
    )


def register_equipment(
    *,
    session: Session,
    actor: Actor,
    equipment_id: str,
    kind: str,
    site_id: str,
    description: str = "",
    reason: str = "new equipment",
    imported_at: datetime | None = None,
) -> Equipment:
    equipment_id = (equipment_id or "").strip()
    if not EQUIPMENT_ID_RE.match(equipment_id):
        raise Invalid(
            _(
                "equipment id %(equipment)s must use only letters, digits, '.', '_' or '-' "
                "(at most 64)",
                equipment=repr(equipment_id),
            )
        )
    if not EQUIPMENT_KIND_RE.match(kind or ""):
        raise Invalid(
            _(
                "equipment kind %(kind)s must be a lower-case word such as ln2_vapour",
                kind=repr(kind),
            )
        )
    if session.get(Site, site_id) is None:
        raise NotFound(_("there is no site %(site)s", site=site_id))
    _require(session, actor, site_id)
    if session.get(Equipment, equipment_id) is not None:
        raise Invalid(_("equipment %(equipment)s already exists", equipment=equipment_id))
    equipment = ledger.new_row(
        session,
        Equipment,
        id=equipment_id,
        site_id=site_id,
        kind=kind,
        description=description.strip(),
        created_by=actor.name,
        imported_at=imported_at,
        imported_by=actor.name if imported_at else None,
        created_at=utcnow(),
        active=True,
    )
    ledger.write(session, equipment)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="equipment",
        entity_id=equipment_id,
        action="import" if imported_at else "create",
        new_value={"kind": kind, "site": site_id, "description": equipment.description},
        reason=reason,
    )
    session.flush()
    return equipment


def set_equipment_active(
    *, session: Session, actor: Actor, equipment_id: str, active: bool, reason: str
) -> Equipment:
    equipment = session.get(Equipment, equipment_id)
    if equipment is None:
        raise NotFound(_("there is no equipment %(equipment)s", equipment=equipment_id))
    _require(session, actor, equipment.site_id)
    if not (reason or "").strip():
        raise Invalid(_("give a reason: it is kept in the audit trail"))
    if equipment.active == active:
        raise Invalid(
            _("%(equipment)s is already in use", equipment=equipment_id)
            if active
            else _("%(equipment)s is already out of use", equipment=equipment_id)
        )
    old, equipment.active = equipment.active, active
    session.add(equipment)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="equipment",
        entity_id=equipment_id,
        action="activate" if active else "deactivate",
        field_name="active",
        old_value=old,
        new_value=active,
        reason=reason,
    )
    return equipment


def record_reading(
    *,
    session: Session,
    actor: Actor,
    equipment_id: str,
    at: datetime,
    temperature_c: float,
    source: str = "manual",
    now: datetime | None = None,
    imported_at: datetime | None = None,
) -> Reading:
    """Store and chain one temperature reading (never changed afterwards)."""
    now = now or utcnow()
    equipment = session.get(Equipment, equipment_id)
    if equipment is None:
        raise NotFound(_("there is no equipment %(equipment)s", equipment=equipment_id))
    _require(session, actor, equipment.site_id)
    if source not in READING_SOURCES:
        raise Invalid(
            _(
                "unknown reading source %(source)s; one of: %(sources)s",
                source=repr(source),
                sources=_(", ").join(READING_SOURCES),
            )
        )
    if not equipment.active and imported_at is None:
        raise Invalid(
            _(
                "%(equipment)s is out of use: readings are no longer taken from it",
                equipment=equipment_id,
            )
        )
    if isinstance(temperature_c, bool) or not isinstance(temperature_c, int | float):
        raise Invalid(
            _("the temperature must be a number, not %(value)s", value=repr(temperature_c))
        )
    temperature = float(temperature_c)
    if not math.isfinite(temperature) or not LOWEST_C <= temperature <= HIGHEST_C:
        raise Invalid(
            _(
                "%(value)s °C is not a possible reading (check the sensor or the number typed)",
                value=temperature_c,
            )
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise Invalid(_("the time of the reading must carry a UTC offset"))
    site = session.get(Site, equipment.site_id)

    def when(moment: datetime) -> str:
        return format_datetime(moment, zone=site.timezone or "UTC", seconds=True)

    if at > now + CLOCK_SKEW:
        raise Invalid(
            _(
                "the reading is dated %(time)s, in the future (it is now %(now)s)",
                time=when(at),
                now=when(now),
            )
        )
    ledger.lock(session)  # "already recorded" is decided under the lock
    if session.exec(
        select(Reading.id).where(Reading.equipment_id == equipment_id, Reading.at == at)
    ).first():
        raise Invalid(
            _(
                "a reading of %(equipment)s at %(time)s is already recorded",
                equipment=equipment_id,
                time=when(at),
            )
        )
    reading = Reading(
        equipment_id=equipment_id,
        at=at,
        temperature_c=temperature,
        recorded_at=now,
        recorded_by=actor.name,
        source=source,
        imported_at=imported_at,
        imported_by=actor.name if imported_at else None,
    )
    return ledger.write(session, reading)
