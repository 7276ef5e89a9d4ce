"""Account operations: the only code that writes users, sites, wards and login events.

Every function takes a keyword-only `session`; the caller commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, text
from sqlmodel import Session, col, select

from qms.accounts.access import (
    WARD_ROLES,
    held_wards,
    member_site_ids,
    require,
    require_administers,
    require_sites,
    role_name,
)
from qms.accounts.models import LoginEvent, Site, User, UserSite, Ward, WardGrant
from qms.accounts.passwords import (
    NO_PASSWORD,
    hash_password,
    is_password_hash,
    needs_rehash,
    password_problem,
    verify_dummy,
    verify_password,
)
from qms.accounts.roles import Permission, Role, permissions_of
from qms.core.errors import Invalid
from qms.core.i18n import LANGUAGES, _, _l, format_datetime
from qms.core.trail import record_change
from qms.db import utcnow

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
# A mail address as people write one: something@domain.tld, no spaces, at most 254 long.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The roles whose work spans hospitals: a hospital group's quality officer audits, confirms
# and signs at each of its sites (and alone can approve a report covering several), a
# regulator oversees a district, an administrator runs the installation. Ward and pharmacy
# staff work at one hospital.
MULTI_SITE_ROLES = frozenset({Role.QUALITY_OFFICER, Role.REGULATOR, Role.ADMIN})


class AccountError(Invalid):
    """A request about accounts that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or the system (CLI, scheduler)."""

    id: int | None
    name: str
    permissions: Permission

    @classmethod
    def system(cls, name: str = "system (command line)") -> Actor:
        return cls(id=None, name=name, permissions=~Permission(0))

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(
            id=user.id,
            name=f"{user.full_name} ({user.username})",
            permissions=permissions_of(user.role),
        )


# --- sites and wards -------------------------------------------------------------


def create_site(
    *,
    session: Session,
    site_id: str,
    name: str,
    timezone: str = "Asia/Shanghai",
    language: str = "en",
) -> Site:
    if session.get(Site, site_id) is not None:
        raise AccountError(_("site %(site)s already exists", site=site_id))
    if language not in LANGUAGES:
        raise AccountError(
            _(
                "unknown language %(language)r; choose one of: %(choices)s",
                language=language,
                choices=", ".join(LANGUAGES),
            )
        )
    site = Site(id=site_id, name=name, timezone=timezone, language=language)
    session.add(site)
    return site


def create_ward(*, session: Session, site_id: str, code: str, name: str) -> Ward:
    if session.get(Site, site_id) is None:
        raise AccountError(_("site %(site)s does not exist", site=site_id))
    ward = Ward(site_id=site_id, code=code, name=name)
    session.add(ward)
    return ward


# --- users -----------------------------------------------------------------------


def get_user_by_username(*, session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def sites_of(*, session: Session, user: User) -> list[Site]:
    statement = (
        select(Site)
        .join(UserSite, col(UserSite.site_id) == col(Site.id))
        .where(UserSite.user_id == user.id)
        .order_by(Site.id)
    )
    return list(session.exec(statement))


def create_user(
    *,
    session: Session,
    actor: Actor,
    username: str,
    full_name: str,
    role: str,
    password: str | None,
    site_ids: list[str],
    reason: str = "new account",
    email: str | None = None,
) -> User:
    """Create a user; `password=None` makes an account nobody can sign in to (a placeholder)."""
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    username = username.strip().lower()
    full_name = full_name.strip()
    if not USERNAME_RE.match(username):
        raise AccountError(
            _(
                "the username must start with a letter and use only lowercase letters, digits, '.', '_' or '-' (2–64 characters)"
            )
        )
    if not full_name:
        raise AccountError(_("the full name is required: it is printed on every signature"))
    try:
        role = Role(role).value
    except ValueError:
        raise AccountError(
            _(
                "unknown role %(role)r; choose one of: %(choices)s",
                role=role,
                choices=", ".join(r.value for r in Role),
            )
        ) from None
    problem = password_problem(password, username=username) if password is not None else None
    if problem:
        raise AccountError(problem)
    if not site_ids:
        raise AccountError(_("a user must belong to at least one site"))
    if len(set(site_ids)) > 1 and role not in MULTI_SITE_ROLES:
        raise AccountError(
            _("only quality officers, regulators and administrators may belong to several sites")
        )
    for site_id in site_ids:
        if session.get(Site, site_id) is None:
            raise AccountError(_("site %(site)s does not exist", site=site_id))
    require_sites(session, actor, site_ids)
    email = checked_email(email)
    if get_user_by_username(session=session, username=username) is not None:
        raise AccountError(
            _("the username %(username)s is taken (usernames are never reused)", username=username)
        )
    user = User(
        username=username,
        full_name=full_name,
        role=role,
        password_hash=hash_password(password) if password is not None else NO_PASSWORD,
        email=email,
        created_by_id=actor.id,
    )
    session.add(user)
    session.flush()
    for site_id in sorted(set(site_ids)):
        session.add(UserSite(user_id=user.id, site_id=site_id))
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=username,
        action="create",
        new_value={
            "full_name": full_name,
            "role": role,
            "sites": sorted(set(site_ids)),
            **({"email": email} if email else {}),
        },
        reason=reason,
    )
    return user


def checked_email(email: str | None) -> str | None:
    """A mail address as it will be stored (trimmed), None for none; AccountError if it
    cannot be one."""
    email = (email or "").strip()
    if not email:
        return None
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise AccountError(_("%(address)s is not an email address", address=email))
    return email


def set_email(
    *, session: Session, actor: Actor, user: User, email: str | None, reason: str
) -> User:
    """Give an account a mail address, change it or take it away (None), on the audit trail
    with the old and new value and the reason, as every change of an account."""
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    require_administers(session, actor, user)
    if not reason or not reason.strip():
        raise AccountError(_("give a reason: it is kept in the audit trail"))
    email = checked_email(email)
    if user.email == email:
        raise AccountError(
            _("%(username)s has this address already", username=user.username)
            if email
            else _("%(username)s has no address already", username=user.username)
        )
    old = user.email
    user.email = email
    session.add(user)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="change",
        field_name="email",
        old_value=old,
        new_value=email,
        reason=reason.strip(),
    )
    return user


def set_user_active(
    *, session: Session, actor: Actor, user: User, active: bool, reason: str
) -> User:
    """Deactivate or reactivate a user. Users are never deleted: records point at them."""
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    require_administers(session, actor, user)
    if not reason or not reason.strip():
        raise AccountError(_("give a reason: it is kept in the audit trail"))
    if actor.id is not None and actor.id == user.id and not active:
        raise AccountError(_("you cannot deactivate your own account"))
    if user.active == active:
        raise AccountError(
            _("%(username)s is already active", username=user.username)
            if active
            else _("%(username)s is already inactive", username=user.username)
        )
    old = user.active
    user.active = active
    session.add(user)
    if not active:
        end_sessions(session=session, user=user)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="activate" if active else "deactivate",
        field_name="active",
        old_value=old,
        new_value=active,
        reason=reason,
    )
    return user


def change_password(
    *, session: Session, user: User, current_password: str, new_password: str
) -> None:
    """A user changes their own password, proving the current one."""
    if not verify_password(user.password_hash, current_password or ""):
        raise AccountError(_("the current password is wrong; the password was not changed"))
    _set_password(
        session=session,
        user=user,
        password=new_password,
        actor=Actor.of(user),
        reason="changed by the user",
    )


def reset_password(
    *, session: Session, actor: Actor, user: User, new_password: str, reason: str
) -> None:
    """An administrator sets a new password (a forgotten one); the user should change it."""
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    require_administers(session, actor, user)
    if not reason or not reason.strip():
        raise AccountError(_("give a reason: it is kept in the audit trail"))
    _set_password(session=session, user=user, password=new_password, actor=actor, reason=reason)


def _set_password(
    *, session: Session, user: User, password: str, actor: Actor, reason: str
) -> None:
    problem = password_problem(password, username=user.username)
    if problem:
        raise AccountError(problem)
    if verify_password(user.password_hash, password):
        raise AccountError(_("the new password must differ from the current one"))
    user.password_hash = hash_password(password)
    end_sessions(session=session, user=user)  # every other browser signs in again
    # The trail says that the password changed, never what it was or became.
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="password",
        reason=reason,
    )


def unlock_user(*, session: Session, actor: Actor, user: User, reason: str) -> None:
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    require_administers(session, actor, user)
    if not reason or not reason.strip():
        raise AccountError(_("give a reason: it is kept in the audit trail"))
    session.add(
        LoginEvent(username=user.username, user_id=user.id, kind="unlock", actor_id=actor.id)
    )
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="unlock",
        reason=reason,
    )


def set_language(*, session: Session, user: User, language: str | None) -> User:
    """A user chooses the language of their pages; None follows the browser, then the site."""
    language = language or None
    if language is not None and language not in LANGUAGES:
        raise AccountError(
            _(
                "unknown language %(language)r; choose one of: %(choices)s",
                language=language,
                choices=", ".join(LANGUAGES),
            )
        )
    if user.language == language:
        return user
    old = user.language
    user.language = language
    session.add(user)
    actor = Actor.of(user)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="change",
        field_name="language",
        old_value=old,
        new_value=language,
        reason="changed by the user",
    )
    return user


# --- wards ------------------------------------------------------------------------


def wards_of(*, session: Session, user: User, site_id: str | None = None) -> list[Ward]:
    """The wards `user` holds now (of `site_id` when given)."""
    return held_wards(session, user.id, site_id)


def ward_history(*, session: Session, user: User) -> list[tuple[WardGrant, Ward]]:
    """Every grant and revocation of a ward to `user`, oldest first."""
    return list(
        session.exec(
            select(WardGrant, Ward)
            .join(Ward, col(Ward.id) == col(WardGrant.ward_id))
            .where(WardGrant.user_id == user.id)
            .order_by(col(WardGrant.at), col(WardGrant.id))
        )
    )


def grant_ward(
    *, session: Session, actor: Actor, user: User, ward_id: int, reason: str, now=None
) -> WardGrant:
    """Put a nurse or physician on a ward of one of their sites (appends a grant event)."""
    return _ward_event(
        session=session, actor=actor, user=user, ward_id=ward_id, granted=True, reason=reason,
        now=now,
    )  # fmt: skip


def revoke_ward(
    *, session: Session, actor: Actor, user: User, ward_id: int, reason: str, now=None
) -> WardGrant:
    """Take a user off a ward (appends a revocation; the grant stays in the history)."""
    return _ward_event(
        session=session, actor=actor, user=user, ward_id=ward_id, granted=False, reason=reason,
        now=now,
    )  # fmt: skip


def _ward_event(
    *, session: Session, actor: Actor, user: User, ward_id: int, granted: bool, reason: str, now
) -> WardGrant:
    require(session, actor, Permission.MANAGE_USERS, action=_l("manage user accounts"))
    require_administers(session, actor, user)
    reason = (reason or "").strip()
    if not reason:
        raise AccountError(_("give a reason: it is kept in the audit trail"))
    ward = session.get(Ward, ward_id)
    if ward is None or ward.site_id not in member_site_ids(session, user.id):
        raise AccountError(
            _("%(username)s has no such ward at their sites", username=user.username)
        )
    require_sites(session, actor, [ward.site_id])
    if granted and user.role not in WARD_ROLES:
        raise AccountError(
            _(
                "only nurses and physicians are put on wards: a %(role)s sees every unit of "
                "the site",
                role=role_name(user.role),
            )
        )
    events = session.exec(
        select(WardGrant.n, WardGrant.granted)
        .where(WardGrant.user_id == user.id, WardGrant.ward_id == ward.id)
        .order_by(col(WardGrant.n).desc())
        .limit(1)
    ).first()
    held = bool(events and events[1])
    if granted and held:
        raise AccountError(
            _("%(username)s is already on ward %(ward)s", username=user.username, ward=ward.code)
        )
    if not granted and not held:
        raise AccountError(
            _("%(username)s is not on ward %(ward)s", username=user.username, ward=ward.code)
        )
    event = WardGrant(
        user_id=user.id,
        ward_id=ward.id,
        n=(events[0] if events else 0) + 1,
        granted=granted,
        at=now or utcnow(),
        by_id=actor.id,
        reason=reason,
    )
    session.add(event)
    record_change(
        session=session,
        actor_id=actor.id,
        actor_name=actor.name,
        entity="user",
        entity_id=user.username,
        action="grant_ward" if granted else "revoke_ward",
        field_name="wards",
        new_value={"site": ward.site_id, "ward": ward.code},
        reason=reason,
    )
    session.flush()
    return event


# --- signing in ------------------------------------------------------------------


@dataclass(frozen=True)
class Lockout:
    """How many failed password entries in a row lock an account, and for how long."""

    threshold: int = 5
    minutes: int = 30

    @classmethod
    def of(cls, settings) -> Lockout:
        return cls(settings.lockout_threshold, settings.lockout_minutes)


# A wrong password at a sign-in or at an e-signature: both count towards the lockout.
FAILURE_KINDS = ("failure", "sign_failure")
# A sign-in that succeeded, or an administrator's unlock: a fresh series of failures.
RESET_KINDS = ("success", "unlock")


@dataclass(frozen=True)
class LockState:
    locked: bool
    failures: int
    until: datetime | None


def lock_state(
    *, session: Session, username: str, threshold: int, minutes: int, now: datetime | None = None
) -> LockState:
    """The failures since the last success or unlock, in series: `threshold` of them lock
    the account for `minutes` after the last; failures while locked do not count, and
    when a lock runs out a fresh series starts (old failures never count again)."""
    now = now or utcnow()
    # One query: the failures and resets from the last reset on (every event when there
    # was none), in order; each reset starts the count again.
    last_reset = (
        select(func.max(LoginEvent.at))
        .where(LoginEvent.username == username, col(LoginEvent.kind).in_(RESET_KINDS))
        .scalar_subquery()
    )
    events = session.exec(
        select(LoginEvent.at, LoginEvent.kind)
        .where(
            LoginEvent.username == username,
            col(LoginEvent.kind).in_(RESET_KINDS + FAILURE_KINDS),
            or_(last_reset.is_(None), col(LoginEvent.at) >= last_reset),
        )
        .order_by(col(LoginEvent.at), col(LoginEvent.id))
    )
    failures, until = 0, None
    for at, kind in events:
        if kind in RESET_KINDS:
            failures, until = 0, None
            continue
        if until is not None:
            if at < until:
                continue  # while locked: neither counted nor extending the lock
            failures, until = 0, None  # the lock ran out: a fresh series
        failures += 1
        if failures >= threshold:
            until = at + timedelta(minutes=minutes)
    if until is not None:
        return LockState(True, failures, until) if until > now else LockState(False, 0, None)
    return LockState(False, failures, None)


class LoginFailed(AccountError):
    pass


def end_sessions(*, session: Session, user: User) -> None:
    """End every signed-in session of `user` (each is checked against the version on
    every request): at logout, a password change or reset, deactivation and lockout."""
    user.session_version = (user.session_version or 0) + 1
    session.add(user)


def lock_sign_ins(session: Session, username: str) -> None:
    """Serialise the sign-in decisions about one username until the transaction ends:
    a PostgreSQL advisory lock on the name (SQLite: the write transaction already does)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:name))"),
            {"space": SIGN_IN_LOCK_SPACE, "name": username},
        )


# The first key of the two-key advisory locks on usernames (the ledger's one-key lock is
# in another key space).
SIGN_IN_LOCK_SPACE = 0x716D73


@dataclass(frozen=True)
class SignInCheck:
    """What a sign-in attempt found, before anything is written: read and hashed outside
    the write transaction, so that the slow hash never holds the database's write lock."""

    username: str
    user_id: int | None
    password_hash: str | None
    right: bool  # the password matches an account that has one
    new_hash: str | None = None  # the password rehashed with today's parameters


def sign_in_account(*, session: Session, username: str) -> tuple[str, int | None, str | None]:
    """The normalised username, and the id and stored hash of its account (None, None if
    there is none); writes nothing, so a read session will do."""
    username = (username or "").strip().lower()
    user = get_user_by_username(session=session, username=username) if username else None
    return (username, user.id, user.password_hash) if user else (username, None, None)


def check_password_of(
    username: str, user_id: int | None, stored: str | None, password: str
) -> SignInCheck:
    """The hash, as long for an unknown user as for a known one (a dummy hash is checked)."""
    if stored is None or not is_password_hash(stored):
        verify_dummy(password or "")
        return SignInCheck(username, user_id, stored, False)
    right = verify_password(stored, password or "")
    new_hash = hash_password(password) if right and needs_rehash(stored) else None
    return SignInCheck(username, user_id, stored, right, new_hash)


def record_sign_in(
    *,
    session: Session,
    check: SignInCheck,
    threshold: int,
    minutes: int,
    remote_addr: str | None = None,
    now: datetime | None = None,
) -> User:
    """Decide the attempt under the username's lock and record it; return the user.

    Raises LoginFailed with a message fit to show; it never says whether the username
    exists, except that a locked account is told it is locked."""
    now = now or utcnow()
    username = check.username
    lock_sign_ins(session, username)
    state = lock_state(
        session=session, username=username, threshold=threshold, minutes=minutes, now=now
    )
    if state.locked:
        raise LoginFailed(
            _(
                "This account is locked after %(threshold)s failed sign-ins. Try again after "
                "%(until)s or ask an administrator to unlock it.",
                threshold=threshold,
                until=format_datetime(state.until),
            )
        )
    user = session.get(User, check.user_id) if check.user_id is not None else None
    # The password is right for the account as it is now (not changed meanwhile).
    right = check.right and user is not None and user.password_hash == check.password_hash
    ok = right and user.active
    session.add(
        LoginEvent(
            username=username[:64],
            user_id=user.id if user else None,
            kind="success" if ok else "failure",
            at=now,
            remote_addr=remote_addr,
        )
    )
    if not ok:
        if right and not user.active:
            raise LoginFailed(_("This account has been deactivated. Ask an administrator."))
        remaining = threshold - (state.failures + 1)
        if remaining <= 0:
            if user is not None:
                end_sessions(session=session, user=user)
            raise LoginFailed(
                _(
                    "Wrong username or password. The account is now locked for %(minutes)s minutes.",
                    minutes=minutes,
                )
            )
        raise LoginFailed(
            _(
                "Wrong username or password. %(remaining)s attempt(s) left before the account is locked.",
                remaining=remaining,
            )
        )
    if check.new_hash is not None:
        user.password_hash = check.new_hash
        session.add(user)
    return user


def authenticate(
    *,
    session: Session,
    username: str,
    password: str,
    threshold: int,
    minutes: int,
    remote_addr: str | None = None,
    now: datetime | None = None,
) -> User:
    """Check a username and password, record the attempt, and return the user, in one
    session (commands, tests). The web sign-in checks in a read session first."""
    check = check_password_of(*sign_in_account(session=session, username=username), password)
    return record_sign_in(
        session=session,
        check=check,
        threshold=threshold,
        minutes=minutes,
        remote_addr=remote_addr,
        now=now,
    )


def record_signature_failure(
    *,
    session: Session,
    username: str,
    remote_addr: str | None = None,
    lockout: Lockout | None = None,
) -> None:
    """A wrong password given to sign a record (the caller commits, after its rollback).
    When it locks the account, the account's sessions end."""
    lockout = lockout or Lockout()
    username = (username or "").strip().lower()[:64]
    lock_sign_ins(session, username)
    user = get_user_by_username(session=session, username=username) if username else None
    before = lock_state(
        session=session, username=username, threshold=lockout.threshold, minutes=lockout.minutes
    )
    session.add(
        LoginEvent(
            username=username,
            user_id=user.id if user else None,
            kind="sign_failure",
            remote_addr=remote_addr,
        )
    )
    if user is not None and not before.locked and before.failures + 1 >= lockout.threshold:
        end_sessions(session=session, user=user)


def record_logout(*, session: Session, user: User, kind: str = "logout") -> None:
    """A sign-out; one the user asked for ends their sessions everywhere (a copied cookie
    stops working). An idle timeout ends the browser's session alone."""
    session.add(LoginEvent(username=user.username, user_id=user.id, kind=kind))
    if kind == "logout":
        end_sessions(session=session, user=user)
