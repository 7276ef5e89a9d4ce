"""Site settings the quality officer keeps: the site's quality address, the logger gap,
how many days before a due date the first reminder comes.

Each change is a chained `SiteSetting` with a reason; the latest per (site, name) counts
and a name never set has its default. `qms.storage.loggers.gap_limit` reads the logger
gap from here, `qms.scheduling.reminders` the reminder lead; alerts are mailed to the
quality address (`qms.scheduling.alerts`).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, col, func, select

from qms.accounts.access import require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission
from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _, _l
from qms.scheduling.models import SiteSetting

QUALITY_ADDRESS = "quality_address"
LOGGER_GAP_MINUTES = "logger_gap_minutes"
REMINDER_LEAD_DAYS = "reminder_lead_days"
# name -> default (None: not set)
DEFAULTS: dict[str, str | None] = {
    QUALITY_ADDRESS: None,
    LOGGER_GAP_MINUTES: "30",
    REMINDER_LEAD_DAYS: "3",
}
LABELS = {
    QUALITY_ADDRESS: _l("Quality address (alerts are mailed there)"),
    LOGGER_GAP_MINUTES: _l("Longest silence of a data logger, in minutes"),
    REMINDER_LEAD_DAYS: _l("Days before a due date the first reminder comes"),
}
GAP_RANGE = (5, 24 * 60)
LEAD_RANGE = (1, 60)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def site_settings(session: Session, site_id: str) -> dict[str, str | None]:
    """Every setting of a site as in force now (one query)."""
    values = dict(DEFAULTS)
    latest = (
        select(SiteSetting.name, func.max(SiteSetting.ledger_seq).label("seq"))
        .where(SiteSetting.site_id == site_id)
        .group_by(SiteSetting.name)
        .subquery()
    )
    rows = session.exec(
        select(SiteSetting.name, SiteSetting.value).join(
            latest, col(SiteSetting.ledger_seq) == latest.c.seq
        )
    )
    for name, value in rows:
        if name in values:
            values[name] = value or None
    return values


def quality_addresses(session: Session, site_ids: list[str]) -> dict[str, str]:
    """Each site's quality address, for the sites that have one."""
    found = {}
    for site_id in site_ids:
        address = site_settings(session, site_id)[QUALITY_ADDRESS]
        if address:
            found[site_id] = address
    return found


def logger_gap_minutes(session: Session, site_id: str) -> int:
    return int(site_settings(session, site_id)[LOGGER_GAP_MINUTES] or DEFAULTS[LOGGER_GAP_MINUTES])


def reminder_lead_days(session: Session, site_id: str) -> int:
    return int(site_settings(session, site_id)[REMINDER_LEAD_DAYS] or DEFAULTS[REMINDER_LEAD_DAYS])


def _checked(name: str, value: str) -> str:
    value = (value or "").strip()
    if name == QUALITY_ADDRESS:
        if value and not _EMAIL.match(value):
            raise Invalid(_("%(address)s is not an email address", address=value))
        return value
    if name == LOGGER_GAP_MINUTES:
        low, high = GAP_RANGE
        if not value.isdigit() or not low <= int(value) <= high:
            raise Invalid(
                _(
                    "the longest silence of a logger is a whole number of minutes "
                    "between %(low)s and %(high)s",
                    low=low,
                    high=high,
                )
            )
        return str(int(value))
    if name == REMINDER_LEAD_DAYS:
        low, high = LEAD_RANGE
        if not value.isdigit() or not low <= int(value) <= high:
            raise Invalid(
                _(
                    "the reminder lead is a whole number of days between %(low)s and %(high)s",
                    low=low,
                    high=high,
                )
            )
        return str(int(value))
    raise Invalid(
        _(
            "there is no site setting %(name)s; settings: %(names)s",
            name=repr(name),
            names=", ".join(DEFAULTS),
        )
    )


def set_site_setting(
    *,
    session: Session,
    actor: Actor | User,
    site_id: str,
    name: str,
    value: str,
    reason: str,
    now: datetime,
) -> SiteSetting | None:
    """Record a new value (None when it is the value in force already); the caller commits."""
    if session.get(Site, site_id) is None:
        raise NotFound(_("no site %(site)s", site=site_id))
    require(session, actor, Permission.AUDIT, site_id, action=_l("keep site settings"))
    value = _checked(name, value)
    if not (reason or "").strip():
        raise Invalid(_("a change of a site setting needs a reason"))
    ledger.lock(session)
    if (site_settings(session, site_id)[name] or "") == value:
        return None
    count = session.exec(
        select(func.count())
        .select_from(SiteSetting)
        .where(SiteSetting.site_id == site_id, SiteSetting.name == name)
    ).one()
    by = actor.name if isinstance(actor, Actor) else f"{actor.full_name} ({actor.username})"
    row = SiteSetting(
        id=f"{site_id}:{name}/{count + 1}",
        site_id=site_id,
        name=name,
        value=value,
        at=now,
        by_id=actor.id,
        by=by,
        reason=reason.strip(),
    )
    return ledger.write(session, row)


def setting_history(session: Session, site_id: str) -> list[SiteSetting]:
    return list(
        session.exec(
            select(SiteSetting)
            .where(SiteSetting.site_id == site_id)
            .order_by(col(SiteSetting.ledger_seq).desc())
        ).all()
    )
