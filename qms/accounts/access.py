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
from qms.accounts.roles import Permission, Role, permissions_of
from qms.core.errors import Denied
from qms.core.i18n import _, _l

if TYPE_CHECKING:
    from qms.accounts.service import Actor

# A role as it is named inside a sentence ("a nurse may not ..."), in the reader's language;
# the role labels (roles.ROLE_LABELS) are the capitalised names of lists and forms.
ROLE_NAMES = {
    Role.NURSE: _l("nurse"),
    Role.PHYSICIAN: _l("physician"),
    Role.PHARMACIST: _l("pharmacist"),
    Role.QUALITY_OFFICER: _l("quality officer"),
    Role.REGULATOR: _l("regulator"),
    Role.ADMIN: _l("system administrator"),
}


def role_name(role: Role | str) -> str:
    """The role as a sentence names it, in the reader's language (the code if unknown)."""
    try:
        return str(ROLE_NAMES[Role(role)])
    except ValueError:
        return str(role)


def role_names(roles) -> str:
    """Several roles named in a sentence, joined as the reader's language lists them."""
    return _(", ").join(role_name(r) for r in roles)


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
    action: str | None = None,
) -> None:
    """Raise `Denied` unless `who` holds `permission` (any of the flags, when several are
    given) and, when `site_id` is given, belongs to that site.

    `action` says what was asked, in the reader's language (`_l("record steps")`: lazy, so
    that it is translated only when refused), for the message "a nurse may not record steps"."""
    action = action or _("do this")
    if isinstance(who, User):
        user, granted = who, permissions_of(who.role)
    else:
        if who.id is None:  # the system: a command run by an operator, the scheduler
            granted = who.permissions
            if permission is not None and not (granted & permission):
                raise Denied(_("%(name)s may not %(action)s", name=who.name, action=action))
            return
        user = session.get(User, who.id)
        granted = who.permissions
        if user is None:
            raise Denied(_("%(name)s is not a known user", name=who.name))
    if not user.active:
        raise Denied(_("%(username)s is deactivated", username=user.username))
    if permission is not None and not (granted & permission):
        raise Denied(_("a %(role)s may not %(action)s", role=role_name(user.role), action=action))
    if site_id is not None and not is_member(session, user, site_id):
        raise Denied(
            _(
                "%(username)s does not belong to site %(site)s",
                username=user.username,
                site=site_id,
            )
        )
