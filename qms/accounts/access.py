"""Who may do what, where: the one authorisation path every service asks.

A service calls `require(session, who, permission, site_id, action=...)` before it
writes or reads on someone's behalf. `who` is a signed-in `User` or an `Actor` (a user,
or the system: a command or the scheduler, which holds every permission and every
site). Roles grant permission flags (`roles.ROLE_PERMISSIONS`); sites are granted by
membership (`UserSite`). A refusal is `Denied` (the 403 page), naming what was missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, select

from qms.accounts.models import User, UserSite
from qms.accounts.roles import Permission, permissions_of
from qms.core.errors import Denied

if TYPE_CHECKING:
    from qms.accounts.service import Actor


def member_site_ids(session: Session, user_id: int) -> set[str]:
    """The ids of the sites a user belongs to."""
    return set(session.exec(select(UserSite.site_id).where(UserSite.user_id == user_id)))


def is_member(session: Session, user: User, site_id: str) -> bool:
    return (
        session.exec(
            select(UserSite.site_id).where(UserSite.user_id == user.id, UserSite.site_id == site_id)
        ).first()
        is not None
    )


def require(
    session: Session,
    who: User | Actor,
    permission: Permission | None,
    site_id: str | None = None,
    *,
    action: str = "do this",
) -> None:
    """Raise `Denied` unless `who` holds `permission` (any of the flags, when several are
    given) and, when `site_id` is given, belongs to that site."""
    if isinstance(who, User):
        user, granted = who, permissions_of(who.role)
    else:
        if who.id is None:  # the system: a command run by an operator, the scheduler
            granted = who.permissions
            if permission is not None and not (granted & permission):
                raise Denied(f"{who.name} may not {action}")
            return
        user = session.get(User, who.id)
        granted = who.permissions
        if user is None:
            raise Denied(f"{who.name} is not a known user")
    if not user.active:
        raise Denied(f"{user.username} is deactivated")
    if permission is not None and not (granted & permission):
        raise Denied(f"a {user.role} may not {action}")
    if site_id is not None and not is_member(session, user, site_id):
        raise Denied(f"{user.username} does not belong to site {site_id}")
