"""The words of each alert code, rendered in the reader's language when shown or mailed,
and who an alert is for (`addressed_to`).

Apart from `qms.scheduling.alerts` (which raises alerts and mails them) so that the mail
composer in `qms.delivery.notices` can render an alert without importing the module that
calls it.
"""

from __future__ import annotations

import json
from datetime import datetime

from qms.core.i18n import _
from qms.scheduling.models import Alert

BACKUP_FAILED = "backup.failed"
BACKUP_UNVERIFIED = "backup.unverified"
VERIFY_FAILED = "verify.failed"
VERIFY_HEAD_MISSING = "verify.head_missing"
DELIVERY_FAILED = "delivery.failed"
REPORT_NOT_GENERATED = "report.not_generated"
REPORT_AWAITING_APPROVAL = "report.awaiting_approval"
REGIONAL_AWAITING_APPROVAL = "report.regional_awaiting_approval"
PORTAL_NOT_DELIVERED = "delivery.portal_refused"
NO_ADDRESS = "delivery.no_address"
DEVIATION_OVERDUE = "deviation.overdue"
DEVIATION_DUE_SOON = "deviation.due_soon"
ACTION_DUE_SOON = "capa_action.due_soon"
ACTION_OVERDUE = "capa_action.overdue"
CHECK_DUE = "capa.check_due"
CHECK_PREPARED = "capa.check_prepared"
LOGGER_GAP = "logger.gap"


def addressed_to(alert: Alert, user_id: int, role: str) -> bool:
    """Whether an alert of one of the user's sites is for this user (in the app, and by
    mail when they have an address): quality officers get every alert; others those
    naming them or their role."""
    if role == "quality_officer":
        return True
    audience = json.loads(alert.audience or "{}")
    return user_id in audience.get("users", []) or role in audience.get("roles", [])


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
    if alert.code == REGIONAL_AWAITING_APPROVAL:
        return _(
            "Regional report %(report)s (region %(region)s: %(sites)s) was generated on "
            "schedule and waits for approval by a quality officer of every site it covers",
            report=params.get("report", ""),
            region=params.get("region", ""),
            sites=", ".join(params.get("sites", [])),
        )
    if alert.code == PORTAL_NOT_DELIVERED:
        return _(
            "Report %(report)s was not put in the portal of %(username)s, who does not belong "
            "to every site it covers (%(sites)s)",
            report=params.get("report", ""),
            username=params.get("username", ""),
            sites=", ".join(params.get("sites", [])),
        )
    if alert.code == NO_ADDRESS:
        return _(
            "Report %(report)s was not mailed to %(username)s: the account has no email "
            "address, or is no longer an active regulator of every site the report covers",
            report=params.get("report", ""),
            username=params.get("username", ""),
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
