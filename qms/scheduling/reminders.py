"""What else falls due, raised by the scheduler once each: due dates and logger gaps.

- Deviations and CAPA actions: a reminder when the due date comes near (the site's
  reminder lead before, 3 days unless set) and another once it has passed, to the owner
  and the site's quality officers.
- CAPA effectiveness checks: when one falls due, the check's audit run is prepared
  (`qms.quality.capa.prepare_due`, when the scheduler has checklists) and the CAPA's
  owner and the quality officers are told.
- Logger gaps: a silence in a data logger's readings longer than the site's setting
  (`qms.storage.loggers.gap_limit`) is told to the site's pharmacists and quality
  officers, once per gap (a logger silent until now is one gap, from its last reading).

Each reminder is an alert with a key naming the item, its due date and the stage
(`alerts.raise_once`): once whatever restarts or instances, and an extension that moves
a due date is reminded again. In-app they show on the home page of the people they
name; each is mailed to the site's quality address and to each person it is for who has
an address (`qms.delivery.notices`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlmodel import col, func, select

from qms.db import Database
from qms.scheduling import alerts

# How long before a due date the first reminder comes, unless the site's setting
# (`settings.REMINDER_LEAD_DAYS`) says otherwise.
LEAD = timedelta(days=3)
# How far back the gap check reads each logger (plus the reading just before).
GAP_LOOKBACK = timedelta(days=7)
SOON, OVERDUE, DUE = "soon", "overdue", "due"


def stage_of(due_at: datetime, now: datetime, lead: timedelta = LEAD) -> str | None:
    """Which reminder a due date calls for at `now`, the first `lead` before it (pure)."""
    if now > due_at:
        return OVERDUE
    if now >= due_at - lead:
        return SOON
    return None


def remind_due_items(database: Database, now: datetime, *, registry=None) -> list[str]:
    """Raise every reminder due at `now` that was not raised; one line per reminder."""
    from qms.accounts.service import Actor
    from qms.core import ledger
    from qms.quality import capa as capas
    from qms.quality.deviations import CLOSED
    from qms.quality.deviations import states_of as deviation_states
    from qms.quality.models import Capa, Deviation
    from qms.scheduling.settings import reminder_lead_days

    lines: list[str] = []
    with database.transaction() as session:
        # Read without the ledger's lock (web users write meanwhile); `raise_once` takes it
        # and looks again, only when something is new.
        raised = alerts.raised_keys(session, "remind:")
        leads: dict[str, timedelta] = {}

        def lead(site_id: str) -> timedelta:
            if site_id not in leads:
                leads[site_id] = timedelta(days=reminder_lead_days(session, site_id))
            return leads[site_id]

        wanted: list[tuple[str, str, dict]] = []
        open_deviations = [
            s
            for s in deviation_states(session, list(session.exec(select(Deviation)).all()))
            if s.status != CLOSED and s.due_at is not None
        ]
        for state in open_deviations:
            stage = stage_of(state.due_at, now, lead(state.site_id))
            if stage is None:
                continue
            code = alerts.DEVIATION_OVERDUE if stage == OVERDUE else alerts.DEVIATION_DUE_SOON
            wanted.append(
                (
                    f"remind:deviation:{state.id}:{state.due_at.isoformat()}:{stage}",
                    code,
                    {
                        "site_id": state.site_id,
                        "users": [state.owner_id] if state.owner_id else [],
                        "deviation": state.id,
                        "due": state.due_at.isoformat(),
                    },
                )
            )
        capa_states = capas.states_of(
            session, list(session.exec(select(Capa).order_by(col(Capa.ledger_seq))).all())
        )
        for state in capa_states:
            if state.status == capas.OPEN:
                for action in state.actions.values():
                    if action.done_at is not None:
                        continue
                    stage = stage_of(action.due_at, now, lead(state.capa.site_id))
                    if stage is None:
                        continue
                    code = alerts.ACTION_OVERDUE if stage == OVERDUE else alerts.ACTION_DUE_SOON
                    wanted.append(
                        (
                            f"remind:action:{state.id}:{action.number}:"
                            f"{action.due_at.isoformat()}:{stage}",
                            code,
                            {
                                "site_id": state.capa.site_id,
                                "users": [action.owner_id, state.capa.owner_id],
                                "capa": state.id,
                                "action": action.number,
                                "title": action.title,
                                "owner": action.owner,
                                "due": action.due_at.isoformat(),
                            },
                        )
                    )
            if state.check_due(now):
                wanted.append(
                    (
                        f"remind:check:{state.id}:{state.effectiveness_due.isoformat()}:{DUE}",
                        alerts.CHECK_DUE,
                        {
                            "site_id": state.capa.site_id,
                            "users": [state.capa.owner_id],
                            "capa": state.id,
                            "due": state.effectiveness_due.isoformat(),
                        },
                    )
                )
        for key, code, params in wanted:
            if key in raised:
                continue
            site_id, users = params.pop("site_id"), params.pop("users")
            made = alerts.raise_once(
                session, key, code, site_id=site_id, at=now, users=users, **params
            )
            if made is not None:  # else another scheduler raised it meanwhile
                lines.append(f"reminder {key}")
        unprepared = [
            state
            for state in capa_states
            if state.check_due(now) and not capas.effectiveness_runs(session, state)
        ]
        if registry is not None and unprepared:
            ledger.lock(session)  # prepare_due looks again under the lock
            for run in capas.prepare_due(
                session=session, registry=registry, by=Actor.system("system (scheduler)"), now=now
            ):
                capa_id = json.loads(run.scope).get("capa")
                owner = session.get(Capa, capa_id)
                alerts.raise_once(
                    session,
                    f"remind:prepared:{run.id}",
                    alerts.CHECK_PREPARED,
                    site_id=run.site_id,
                    at=now,
                    users=[owner.owner_id] if owner else [],
                    capa=capa_id,
                    run=run.id,
                )
                lines.append(f"effectiveness check of {capa_id} prepared: audit run {run.id}")
    return lines


def flag_logger_gaps(database: Database, now: datetime) -> list[str]:
    """One alert per silence of a logger longer than its site's setting; one line each."""
    from qms.storage.loggers import gap_limit
    from qms.storage.models import Equipment, Reading

    lines: list[str] = []
    since = now - GAP_LOOKBACK
    with database.transaction() as session:
        raised = alerts.raised_keys(session, "gap:")  # `raise_once` locks and looks again
        limits: dict[str, timedelta] = {}
        devices = session.exec(
            select(Equipment).where(Equipment.active.is_(True)).order_by(Equipment.id)
        ).all()
        for device in devices:
            logger = (Reading.equipment_id == device.id) & (Reading.source == "logger")
            before = session.exec(
                select(Reading.at)
                .where(logger, col(Reading.at) < since)
                .order_by(col(Reading.at).desc())
                .limit(1)
            ).first()
            last = session.exec(select(func.max(Reading.at)).where(logger)).one()
            if last is None:
                continue  # no logger sends for this device
            if device.site_id not in limits:
                limits[device.site_id] = gap_limit(session, device.site_id)
            limit = limits[device.site_id]
            # The database finds the silences (each reading against the one before), so a
            # pass reads the few gaps, not the week of readings.
            found = _silences(session, logger, before or since, limit)
            if now - last > limit:
                found.append((last, now))  # silent until now
            for start, end in found:
                key = f"gap:{device.id}:{start.isoformat()}"
                if key in raised:
                    continue
                made = alerts.raise_once(
                    session,
                    key,
                    alerts.LOGGER_GAP,
                    site_id=device.site_id,
                    at=now,
                    roles=["pharmacist", "quality_officer"],
                    equipment=device.id,
                    start=start.isoformat(),
                    end=None if end == now else end.isoformat(),
                    minutes=int(limit.total_seconds() // 60),
                )
                raised.add(key)
                if made is None:
                    continue  # another scheduler raised it meanwhile
                lines.append(
                    f"logger gap on {device.id} from {start:%Y-%m-%d %H:%M} UTC"
                    + (f" to {end:%Y-%m-%d %H:%M} UTC" if end != now else " (still silent)")
                )
    return lines


def _silences(
    session, logger, since: datetime, limit: timedelta
) -> list[tuple[datetime, datetime]]:
    """(previous reading, reading) pairs further apart than `limit`, from `since` on."""
    from qms.db import UTCDateTime
    from qms.storage.models import Reading

    previous = func.lag(Reading.at, type_=UTCDateTime()).over(order_by=Reading.at)
    previous = previous.label("previous")
    paired = (
        select(Reading.at.label("at"), previous).where(logger, col(Reading.at) >= since).subquery()
    )
    if session.connection().dialect.name == "sqlite":
        apart = (func.julianday(paired.c.at) - func.julianday(paired.c.previous)) * 86400.0
        # julianday keeps about a millisecond: readings exactly `limit` apart are no gap.
        longer = apart > limit.total_seconds() + 0.001
    else:
        longer = paired.c.at - paired.c.previous > limit
    rows = session.exec(
        select(paired.c.previous, paired.c.at).where(longer).order_by(paired.c.at)
    ).all()
    return [(start, end) for start, end in rows]
