"""What every page's layout needs: the user, their site, navigation by role, time display."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import flask_babel
from flask import session
from flask_login import current_user

from qms.accounts.passwords import MIN_PASSWORD_LENGTH
from qms.accounts.roles import ROLE_LABELS, Permission, Role, permissions_of
from qms.checklists.engine.messages import render
from qms.core.i18n import _l, checklist_text_key, format_datetime

# (permission, endpoint, label): the navigation a role sees is what its permissions allow.
NAVIGATION: list[tuple[Permission, str, str]] = [
    (Permission.VIEW_RECORDS, "records.units", _l("Units")),
    (Permission.AUDIT, "quality.runs", _l("Quality")),
    (Permission.VIEW_REPORTS, "quality.oversight", _l("Deviations and CAPA")),
    (Permission.VIEW_REPORTS, "reports.index", _l("Reports")),
    (Permission.MANAGE_STORAGE, "storage.equipment_list", _l("Storage")),
    (Permission.MANAGE_USERS, "accounts.users", _l("Users")),
    (Permission.MANAGE_USERS, "accounts.login_events", _l("Sign-in log")),
    (Permission.MANAGE_CHECKLISTS, "scheduling.schedules", _l("Schedules")),
    (Permission.VIEW_REPORTS, "delivery.portal", _l("Delivered to me")),
]


def navigation_for(role: str) -> list[tuple[str, str]]:
    granted = permissions_of(role)
    return [
        (endpoint, label) for permission, endpoint, label in NAVIGATION if permission in granted
    ]


def local_time(value: datetime | None, zone: str | None = None, *, seconds: bool = False) -> str:
    """A stored (UTC) time in the site's zone (or `zone`), in the reader's locale, with the offset."""
    return format_datetime(value, zone=zone, seconds=seconds)


def finding_text(finding: Any, checklist: Any = None) -> str:
    """A finding's words in the reader's language, made from its code and parameters.

    `finding` is a `Finding` or a finding as chained with a record: since canonical form
    2 that is its code and parameters; a record chained before carries its English words,
    which are shown as they were recorded.
    """
    code = getattr(finding, "code", None) or (
        finding.get("code") if isinstance(finding, dict) else None
    )
    if not code:
        return finding.get("message", "") if isinstance(finding, dict) else finding.message
    params = finding.params if hasattr(finding, "params") else finding.get("params", {})
    return render(
        code,
        params,
        checklist=checklist,
        lang=checklist_text_key(),
        gettext=flask_babel.gettext,
        refs=False,  # people read the checklist's titles and labels, never its ids
    )


def init_app(app) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_global(finding_text, "finding_text")
    app.add_template_filter(lambda role: ROLE_LABELS[Role(role)], "role_label")

    @app.context_processor
    def _layout():
        context = {
            "site_id": session.get("site_id"),
            "navigation": [],
            "role_label": None,
            "min_password_length": MIN_PASSWORD_LENGTH,
        }
        if current_user.is_authenticated:
            context["navigation"] = navigation_for(current_user.role)
            context["role_label"] = ROLE_LABELS[Role(current_user.role)]
        return context
