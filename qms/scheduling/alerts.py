"""Alerts: a failed backup, verify or delivery, a reminder, a logger gap, kept as a log.

An alert is a code and parameters (rendered in the reader's language where shown); it
is appended, never changed. `alert_text` gives its words. An alert with a `key` is
raised once whatever happens (`raise_once`: under the ledger's lock, and the unique
index behind it), so a reminder or a gap is told once across restarts and instances.
Each alert is also mailed to the quality address of its site (every site's, for an
alert of the whole installation), through the notice outbox (`qms.delivery.notices`).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import Session, or_, select

from qms.core import ledger
from qms.db import utcnow
from qms.scheduling.alert_texts import (  # noqa: F401 - the codes, named here too
    ACTION_DUE_SOON,
    ACTION_OVERDUE,
    BACKUP_FAILED,
    BACKUP_UNVERIFIED,
    CHECK_DUE,
    CHECK_PREPARED,
    DELIVERY_FAILED,
    DEVIATION_DUE_SOON,
    DEVIATION_OVERDUE,
    LOGGER_GAP,
    NO_ADDRESS,
    PORTAL_NOT_DELIVERED,
    REGIONAL_AWAITING_APPROVAL,
    REPORT_AWAITING_APPROVAL,
    REPORT_NOT_GENERATED,
    VERIFY_FAILED,
    VERIFY_HEAD_MISSING,
    addressed_to,
    alert_text,
)
from qms.scheduling.models import Alert


def raise_alert(
    session: Session,
    code: str,
    *,
    site_id: str | None = None,
    at: datetime | None = None,
    key: str | None = None,
    users: list[int] | None = None,
    roles: list[str] | None = None,
    **params,
) -> Alert:
    """Append an alert and its mails to the quality addresses; the caller commits."""
    audience = {}
    if users:
        audience["users"] = sorted(set(users))
    if roles:
        audience["roles"] = sorted(set(roles))
    row = Alert(
        at=at or utcnow(),
        site_id=site_id,
        code=code,
        params=json.dumps(params),
        key=key,
        audience=json.dumps(audience),
    )
    session.add(row)
    session.flush()
    from qms.delivery.notices import mail_alert

    mail_alert(session, row)
    return row


def raise_once(session: Session, key: str, code: str, **kwargs) -> Alert | None:
    """The alert of `key` unless one was raised already (then None); the caller commits.

    Decided under the ledger's lock, so two schedulers never both raise it; the unique
    index on `key` refuses a second one even without the lock."""
    ledger.lock(session)
    if session.exec(select(Alert.id).where(Alert.key == key)).first() is not None:
        return None
    return raise_alert(session, code, key=key, **kwargs)


def raised_keys(session: Session, prefix: str) -> set[str]:
    return set(session.exec(select(Alert.key).where(Alert.key.startswith(prefix))).all())


def recent_alerts(session: Session, site_ids: set[str] | None, limit: int = 50) -> list[Alert]:
    """The newest alerts for these sites (and those for every site)."""
    query = select(Alert).order_by(Alert.at.desc(), Alert.id.desc()).limit(limit)
    if site_ids is not None:
        query = query.where(or_(Alert.site_id.is_(None), Alert.site_id.in_(sorted(site_ids))))
    return list(session.exec(query).all())


def alerts_for(session: Session, user, site_ids: set[str], limit: int = 20) -> list[Alert]:
    """The newest alerts for one person at their sites."""
    found = []
    for alert in recent_alerts(session, site_ids, limit=500):
        if addressed_to(alert, user.id, user.role):
            found.append(alert)
            if len(found) >= limit:
                break
    return found
