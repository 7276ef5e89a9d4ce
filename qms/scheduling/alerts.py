"""Alerts for quality officers: a failed backup, verify or delivery, kept as a log.

An alert is a code and parameters (rendered in the reader's language where shown); it
is appended, never changed. `alert_text` gives its words.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import Session, or_, select

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


def raise_alert(
    session: Session, code: str, *, site_id: str | None = None, at: datetime | None = None, **params
) -> Alert:
    row = Alert(at=at or utcnow(), site_id=site_id, code=code, params=json.dumps(params))
    session.add(row)
    session.flush()
    return row


def recent_alerts(session: Session, site_ids: set[str] | None, limit: int = 50) -> list[Alert]:
    """The newest alerts for these sites (and those for every site)."""
    query = select(Alert).order_by(Alert.at.desc(), Alert.id.desc()).limit(limit)
    if site_ids is not None:
        query = query.where(or_(Alert.site_id.is_(None), Alert.site_id.in_(sorted(site_ids))))
    return list(session.exec(query).all())


def alert_text(alert: Alert) -> str:
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
        from datetime import datetime

        from qms.core.i18n import format_datetime

        return _(
            "Deviation %(deviation)s is past its due date (%(due)s)",
            deviation=params.get("deviation", ""),
            due=format_datetime(datetime.fromisoformat(params["due"])) if params.get("due") else "",
        )
    return alert.code
