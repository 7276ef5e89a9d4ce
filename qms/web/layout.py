"""What every page's layout needs: the user, their site, navigation by role, time display."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, session
from flask_login import current_user

from qms.accounts.roles import ROLE_LABELS, Permission, Role, permissions_of

# (permission, endpoint, label): the navigation a role sees is what its permissions allow.
NAVIGATION: list[tuple[Permission, str, str]] = [
    (Permission.VIEW_RECORDS, "records.units", "Units"),
    (Permission.MANAGE_USERS, "accounts.users", "Users"),
    (Permission.MANAGE_USERS, "accounts.login_events", "Sign-in log"),
]


def navigation_for(role: str) -> list[tuple[str, str]]:
    granted = permissions_of(role)
    return [
        (endpoint, label) for permission, endpoint, label in NAVIGATION if permission in granted
    ]


def site_zone() -> ZoneInfo:
    return current_app.extensions["qms_settings"].zone


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Show a stored (UTC) time in the site's zone, with the zone's offset."""
    if value is None:
        return "—"
    local = value.astimezone(site_zone())
    return f"{local.strftime(fmt)} {local.strftime('%z')[:3]}:{local.strftime('%z')[3:]}"


def init_app(app) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(lambda role: ROLE_LABELS[Role(role)], "role_label")

    @app.context_processor
    def _layout():
        context = {"site_id": session.get("site_id"), "navigation": [], "role_label": None}
        if current_user.is_authenticated:
            context["navigation"] = navigation_for(current_user.role)
            context["role_label"] = ROLE_LABELS[Role(current_user.role)]
        return context
