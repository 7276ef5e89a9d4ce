"""Numbers a person can say on the phone: DEV-SH01-2026-0007, allocated without a race.

A number is the count of its kind's records of that site and year, plus one, taken under
the ledger's lock (records are never deleted, so there are no gaps); the primary key
refuses a duplicate even if a writer forgot the lock.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, SQLModel, col, func, select

from qms.core import ledger
from qms.core.clock import zone_of


def site_code(site_id: str) -> str:
    """SH-01 -> SH01: the site's id with letters and digits only."""
    return re.sub(r"[^A-Za-z0-9]", "", site_id).upper() or "SITE"


def allocate(
    session: Session, model: type[SQLModel], prefix: str, site_id: str, at: datetime, zone: str
) -> str:
    """The next id `PREFIX-SITE-YEAR-NNNN` of `model` (call inside the writing transaction)."""
    ledger.lock(session)
    year = at.astimezone(zone_of(zone)).year
    stem = f"{prefix}-{site_code(site_id)}-{year}-"
    count = session.exec(
        select(func.count()).select_from(model).where(col(model.id).startswith(stem))
    ).one()
    return f"{stem}{count + 1:04d}"
