"""Who may do what, where: the one authorisation path every service asks.

A service calls `require(session, who, permission, site_id, action=...)` before it
writes or reads on someone's behalf. `who` is a signed-in `User` or an `Actor` (a user,
or the system: a command or the scheduler, which holds every permission and every
site). Roles grant permission flags (`roles.ROLE_PERMISSIONS`); sites are granted by
membership (`UserSite`). A refusal is `Denied` (the 403 page), naming what was missing.

Wards narrow what ward staff see inside a site (`ward_scope`): a nurse or physician sees
the units of the wards they are granted (`WardGrant`) and units not yet on any ward;
pharmacists, quality officers and administrators see every unit of their sites.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from qms.accounts.models import User, UserSite, Ward, WardGrant
from qms.accounts.roles import Permission, Role, permissions_of
from qms.core.errors import Denied, NotFound
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


def belongs_to_every(session: Session, user_id: int, site_ids) -> bool:
    """Whether the user belongs to every one of `site_ids`: the rule for what covers several
    sites (a regional report is read, and reaches a regulator's portal, only so)."""
    return set(site_ids) <= member_site_ids(session, user_id)


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


# --- administrators act on the accounts of their own sites ------------------------------


def site_ids_of(session: Session, who: User | Actor) -> set[str] | None:
    """The sites `who` acts at; None for the system, which acts at every site."""
    user_id = who.id
    if user_id is None:
        return None
    return member_site_ids(session, user_id)


def require_sites(session: Session, who: User | Actor, site_ids) -> None:
    """Raise `Denied` unless `who` belongs to every one of `site_ids` (granting a site one
    does not hold is refused: an administrator of one site cannot make accounts elsewhere)."""
    own = site_ids_of(session, who)
    if own is None:
        return
    for site_id in sorted(set(site_ids)):
        if site_id not in own:
            raise Denied(
                _(
                    "you do not administer site %(site)s: only its own administrators grant it",
                    site=site_id,
                )
            )


def sees_user(session: Session, who: User | Actor, user: User) -> bool:
    """Whether `who` may see `user`'s account at all: they share a site (or `who` is the system)."""
    own = site_ids_of(session, who)
    return own is None or bool(own & member_site_ids(session, user.id))


def require_administers(session: Session, who: User | Actor, user: User) -> None:
    """Raise unless every site of `user` is one of `who`'s: acting on an account (a new
    password, an unlock) is acting at each of its sites. An account of other sites alone
    answers as a missing one (`NotFound`), so that ids cannot be enumerated."""
    own = site_ids_of(session, who)
    if own is None:
        return
    theirs = member_site_ids(session, user.id)
    if not own & theirs:
        raise NotFound(_("No such user."))
    outside = sorted(theirs - own)
    if outside:
        raise Denied(
            _(
                "%(username)s also belongs to %(sites)s, which you do not administer",
                username=user.username,
                sites=", ".join(outside),
            )
        )


def require_visible(session: Session, who: User | Actor, site_id: str, missing: str) -> None:
    """Raise `NotFound(missing)` unless `who` belongs to `site_id`: another site's object
    answers exactly as a missing one does, so that its ids cannot be enumerated."""
    own = site_ids_of(session, who)
    if own is not None and site_id not in own:
        raise NotFound(missing)


# --- wards: ward staff see the units of their wards -----------------------------------

# The roles whose bedside work, worklist and unit pages are scoped to the wards they hold.
# Pharmacy, quality and administration work for the whole site.
WARD_ROLES = frozenset({Role.NURSE, Role.PHYSICIAN})


def held_wards(session: Session, user_id: int, site_id: str | None = None) -> list[Ward]:
    """The wards a user holds now (their latest grant event for each ward is a grant), in
    one query; only those of `site_id` when it is given."""
    statement = _held_wards_statement(site_id is not None)
    params = {"user_id": user_id} if site_id is None else {"user_id": user_id, "site_id": site_id}
    return list(session.exec(statement, params=params))


_HELD_WARDS: dict[bool, object] = {}


def _held_wards_statement(of_site: bool):
    """`held_wards`'s SELECT (parameters `user_id`, `site_id`), built once: every unit page
    and capture request asks it, and building its subquery costs more than running it."""
    known = _HELD_WARDS.get(of_site)
    if known is None:
        user_id = bindparam("user_id")
        latest = (
            select(WardGrant.ward_id, func.max(WardGrant.n).label("n"))
            .where(WardGrant.user_id == user_id)
            .group_by(col(WardGrant.ward_id))
            .subquery()
        )
        known = (
            select(Ward)
            .join(WardGrant, col(WardGrant.ward_id) == col(Ward.id))
            .join(latest, (latest.c.ward_id == WardGrant.ward_id) & (latest.c.n == WardGrant.n))
            .where(WardGrant.user_id == user_id, col(WardGrant.granted))
            .order_by(col(Ward.site_id), col(Ward.code))
        )
        if of_site:
            known = known.where(Ward.site_id == bindparam("site_id"))
        _HELD_WARDS[of_site] = known
    return known


def ward_scope(session: Session, who: User | Actor, site_id: str) -> frozenset[str] | None:
    """The ward codes of `site_id` whose units `who` sees; None: every unit of the site.

    Ward staff (nurses, physicians) are scoped to the wards they hold there, and one who
    holds none sees no ward's units (only units not yet on a ward): forgetting a grant
    shows too little, never another ward's patients. Everyone else, and the system, sees
    the whole site."""
    if who.id is None:
        return None
    role = who.role if isinstance(who, User) else getattr(session.get(User, who.id), "role", None)
    if role not in WARD_ROLES:
        return None
    return frozenset(w.code for w in held_wards(session, who.id, site_id))


def in_ward_scope(scope: frozenset[str] | None, ward: str | None) -> bool:
    """Whether a unit on `ward` (None: on no ward yet) is within a `ward_scope`."""
    return scope is None or ward is None or ward in scope
