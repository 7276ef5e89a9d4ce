"""Reminders the scheduler raises each night: deviations past their due date.

One alert per deviation and due date (an approved extension moves the date, and a new
overdue date is reminded again), for the deviation's site. CAPA due dates and
effectiveness checks are not reminded here yet: the CAPA records are not in this tree.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import select

from qms.db import Database
from qms.scheduling import alerts
from qms.scheduling.models import Alert


def remind_overdue_deviations(database: Database, now: datetime) -> list[str]:
    """Alert quality officers of each deviation past its due date, once per due date."""
    from qms.quality.deviations import states_of
    from qms.quality.models import Deviation

    with database.transaction(write=False) as session:
        states = states_of(session, list(session.exec(select(Deviation)).all()))
        reminded = {
            (params.get("deviation"), params.get("due"))
            for params in (
                json.loads(p)
                for p in session.exec(
                    select(Alert.params).where(Alert.code == alerts.DEVIATION_OVERDUE)
                ).all()
            )
        }
    due = [s for s in states if s.overdue(now) and (s.id, s.due_at.isoformat()) not in reminded]
    if not due:
        return []
    with database.transaction() as session:
        for state in due:
            alerts.raise_alert(
                session,
                alerts.DEVIATION_OVERDUE,
                site_id=state.site_id,
                at=now,
                deviation=state.id,
                due=state.due_at.isoformat(),
            )
    return [f"deviation {s.id} is past its due date {s.due_at:%Y-%m-%d}" for s in due]
