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
from qms.core.i18n import _
from qms.db import utcnow
from qms.scheduling.models import Alert

BACKUP_FAILED = "backup.failed"
BACKUP_UNVERIFIED = "backup.unverified"
VERIFY_FAILED = "verify.failed"
VERIFY_HEAD_MISSING = "verify.head_missing"
DELIVERY_FAILED = "delivery.failed"
REPORT_NOT_GENERATED = "report.not_generated"
REPORT_AWAITING_APPROVAL = "report.awaiting_approval"
DEVIATION_OVERDUE = "deviation.overdue"
DEVIATION_DUE_SOON = "deviation.due_soon"
ACTION_DUE_SOON = "capa_action.due_soon"
ACTION_OVERDUE = "capa_action.overdue"
CHECK_DUE = "capa.check_due"
CHECK_PREPARED = "capa.check_prepared"
LOGGER_GAP = "logger.gap"


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


def addressed_to(alert: Alert, user_id: int, role: str) -> bool:
    """Whether an alert of one of the user's sites is for this user in the app: quality
    officers see every alert; others those naming them or their role."""
    if role == "quality_officer":
        return True
    audience = json.loads(alert.audience or "{}")
    return user_id in audience.get("users", []) or role in audience.get("roles", [])


def alerts_for(session: Session, user, site_ids: set[str], limit: int = 20) -> list[Alert]:
    """The newest alerts for one person at their sites."""
    found = []
    for alert in recent_alerts(session, site_ids, limit=500):
        if addressed_to(alert, user.id, user.role):
            found.append(alert)
            if len(found) >= limit:
                break
    return found


def _when(value: str | None, zone=None) -> str:
    from qms.core.i18n import format_datetime

    return format_datetime(datetime.fromisoformat(value), zone=zone) if value else ""


def alert_text(alert: Alert, zone=None) -> str:
    """The alert's words in the current language; times in `zone` (default: the page's)."""
    params = json.loads(alert.params)
    if alert.code == BACKUP_FAILED:
        return _("The nightly backup failed: %(error)s", error=params.get("error", ""))
    if alert.code == BACKUP_UNVERIFIED:
        return _(
            "The backup %(file)s did not restore and verify: %(error)s",
            file=params.get("file", ""),
            error=params.get("error", ""),
        )
    if alert.code == VERIFY_FAILED:
        return _("The nightly ledger check failed: %(problem)s", problem=params.get("problem", ""))
    if alert.code == VERIFY_HEAD_MISSING:
        return _(
            "The head recorded by the last nightly check (%(hash)s) is no longer in the ledger",
            hash=params.get("hash", ""),
        )
    if alert.code == DELIVERY_FAILED:
        return _(
            "Report %(report)s could not be delivered to %(recipient)s: %(error)s",
            report=params.get("report", ""),
            recipient=params.get("recipient", ""),
            error=params.get("error", ""),
        )
    if alert.code == REPORT_NOT_GENERATED:
        return _(
            "The %(period)s report of schedule %(schedule)s could not be generated: %(error)s",
            period=params.get("period", ""),
            schedule=params.get("schedule", ""),
            error=params.get("error", ""),
        )
    if alert.code == REPORT_AWAITING_APPROVAL:
        return _(
            "Report %(report)s was generated on schedule and waits for your approval",
            report=params.get("report", ""),
        )
    if alert.code == DEVIATION_OVERDUE:
        return _(
            "Deviation %(deviation)s is past its due date (%(due)s)",
            deviation=params.get("deviation", ""),
            due=_when(params.get("due"), zone),
        )
    if alert.code == DEVIATION_DUE_SOON:
        return _(
            "Deviation %(deviation)s falls due on %(due)s",
            deviation=params.get("deviation", ""),
            due=_when(params.get("due"), zone),
        )
    if alert.code == ACTION_DUE_SOON:
        return _(
            "Action %(action)s of %(capa)s (%(title)s, owner %(owner)s) falls due on %(due)s",
            action=params.get("action", ""),
            capa=params.get("capa", ""),
            title=params.get("title", ""),
            owner=params.get("owner", ""),
            due=_when(params.get("due"), zone),
        )
    if alert.code == ACTION_OVERDUE:
        return _(
            "Action %(action)s of %(capa)s (%(title)s, owner %(owner)s) is past its due date "
            "(%(due)s)",
            action=params.get("action", ""),
            capa=params.get("capa", ""),
            title=params.get("title", ""),
            owner=params.get("owner", ""),
            due=_when(params.get("due"), zone),
        )
    if alert.code == CHECK_DUE:
        return _(
            "The effectiveness check of %(capa)s fell due on %(due)s",
            capa=params.get("capa", ""),
            due=_when(params.get("due"), zone),
        )
    if alert.code == CHECK_PREPARED:
        return _(
            "The effectiveness check of %(capa)s is prepared: audit run %(run)s waits for "
            "your verdict",
            capa=params.get("capa", ""),
            run=params.get("run", ""),
        )
    if alert.code == LOGGER_GAP:
        return _(
            "The logger of %(equipment)s sent nothing from %(start)s to %(end)s "
            "(longer than %(minutes)s minutes)",
            equipment=params.get("equipment", ""),
            start=_when(params.get("start"), zone),
            end=_when(params.get("end"), zone) if params.get("end") else _("now"),
            minutes=params.get("minutes", ""),
        )
    return alert.code
