"""Sign-in, sign-out, the idle timeout and the administrator's user pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import refresh
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlmodel import col, select

from qms.accounts import service
from qms.accounts.access import WARD_ROLES, member_site_ids, sees_user
from qms.accounts.forms import (
    AUTOMATIC,
    EmailForm,
    LanguageForm,
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
    ReasonForm,
    UserCreateForm,
    WardForm,
)
from qms.accounts.models import LoginEvent, Site, User, UserSite, Ward
from qms.accounts.permissions import permission_required, public, signed_in_required
from qms.accounts.roles import Permission
from qms.core.i18n import N_, _
from qms.db import utcnow
from qms.web.database import db_session, get_database

bp = Blueprint("accounts", __name__)
login_manager = LoginManager()


class SessionUser:
    """The Flask-Login face of a User row (kept apart so the table stays plain)."""

    def __init__(self, user: User):
        self.row = user
        self.id = user.id
        self.username = user.username
        self.full_name = user.full_name
        self.role = user.role
        self.language = user.language
        self.is_active = user.active
        self.is_authenticated = True
        self.is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


def init_login(app) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = N_("Please sign in to continue.")
    login_manager.localize_callback = _  # flashed as a plain string, in the reader's language
    login_manager.session_protection = "strong"
    app.before_request(_enforce_idle_timeout)


@login_manager.user_loader
def _load_user(user_id: str):
    try:
        user = db_session().get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not user.active:
        return None
    # A session ended on the server (logout, password change or reset, deactivation,
    # lockout) stays ended, whatever cookie is shown.
    if session.get("session_version") != user.session_version:
        return None
    return SessionUser(user)


def _settings():
    return current_app.extensions["qms_settings"]


def _enforce_idle_timeout():
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    now = datetime.now(UTC).timestamp()
    last_seen = session.get("last_seen")
    limit = _settings().idle_timeout_minutes * 60
    if last_seen is not None and now - last_seen > limit:
        user = current_user.row
        # Said in the user's language: worded before the sign-out forgets who they were.
        message = _(
            "You were signed out after %(minutes)s minutes without activity.",
            minutes=_settings().idle_timeout_minutes,
        )
        logout_user()
        session.clear()
        s = db_session()
        service.record_logout(session=s, user=user, kind="timeout")
        s.commit()
        flash(message, "warning")
        return redirect(
            url_for("accounts.login", next=request.full_path if request.method == "GET" else None)
        )
    session["last_seen"] = now
    return None


# Browsers drop tabs and line breaks from an address and read a backslash as a slash:
# the target is judged as a browser would read it.
_IGNORED_IN_URLS = re.compile(r"[\x00-\x1f\x7f]")


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a nurse to another host."""
    if target:
        cleaned = _IGNORED_IN_URLS.sub("", target).replace("\\", "/")
        parts = urlsplit(cleaned)
        if (
            cleaned.startswith("/")
            and not cleaned.startswith("//")
            and not parts.scheme
            and not parts.netloc
        ):
            return cleaned
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        settings = _settings()
        # Read the account in a read session and hash with no transaction open: the slow
        # hash never holds the database's write lock (SQLite: one writer at a time).
        with get_database().session() as read:
            account = service.sign_in_account(session=read, username=form.username.data)
        check = service.check_password_of(*account, form.password.data)
        s = db_session()
        try:
            user = service.record_sign_in(
                session=s,
                check=check,
                threshold=settings.lockout_threshold,
                minutes=settings.lockout_minutes,
                remote_addr=request.remote_addr,
            )
        except service.LoginFailed as exc:
            s.commit()  # the failed attempt is recorded: it counts towards the lockout
            flash(str(exc), "error")
            status = 401
        else:
            sites = service.sites_of(session=s, user=user)
            s.commit()
            session.clear()
            login_user(SessionUser(user))
            session.permanent = True
            now = datetime.now(UTC).timestamp()
            session["last_seen"] = now
            session["password_at"] = (
                now  # e-signatures within the freshness window need no password
            )
            session["site_id"] = sites[0].id if sites else None
            session["session_version"] = user.session_version
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 400
    return render_template("accounts/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@signed_in_required
def logout():
    user = current_user.row
    message = _("You have signed out.")  # in the user's language, before it is forgotten
    logout_user()
    session.clear()
    s = db_session()
    service.record_logout(session=s, user=user)
    s.commit()
    flash(message, "info")
    return redirect(url_for("accounts.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in_required
def password():
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        s = db_session()
        user = s.get(User, current_user.id)
        try:
            service.change_password(
                session=s,
                user=user,
                current_password=form.current_password.data,
                new_password=form.new_password.data,
            )
        except service.AccountError as exc:
            s.rollback()
            flash(str(exc), "error")
            status = 422
        else:
            s.commit()
            session["password_at"] = datetime.now(UTC).timestamp()
            session["session_version"] = user.session_version  # this browser stays signed in
            flash(_("Your password was changed."), "success")
            return redirect(url_for("web.home"))
    elif request.method == "POST":
        status = 422
    return render_template("accounts/password.html", form=form), status


@bp.route("/account", methods=["GET", "POST"])
@signed_in_required
def account():
    """The user's own account: who they are, where they work, and the language of their pages."""
    s = db_session()
    user = s.get(User, current_user.id)
    form = LanguageForm()
    status = 200
    if form.validate_on_submit():
        try:
            service.set_language(session=s, user=user, language=form.language.data)
        except service.AccountError as exc:
            s.rollback()
            flash(str(exc), "error")
            status = 422
        else:
            s.commit()
            current_user.language = user.language
            refresh()  # the message below is in the language just chosen
            flash(_("Your language setting was saved."), "success")
            return redirect(url_for("accounts.account"))
    elif request.method == "POST":
        status = 422
    else:
        form.language.data = user.language or AUTOMATIC
    return render_template(
        "accounts/account.html",
        form=form,
        user=user,
        sites=service.sites_of(session=s, user=user),
    ), status


@bp.route("/admin/users/<int:user_id>/password", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_USERS)
def user_password(user_id: int):
    s = db_session()
    user = _user_or_404(s, user_id)
    form = PasswordResetForm()
    return _account_change(
        s,
        user,
        form,
        lambda actor: service.reset_password(
            session=s,
            actor=actor,
            user=user,
            new_password=form.new_password.data,
            reason=form.reason.data,
        ),
        done=_("New password set for %(username)s; ask them to change it.", username=user.username),
        template="accounts/password_reset.html",
    )


@bp.route("/admin/users/<int:user_id>/email", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_USERS)
def user_email(user_id: int):
    """An account's mail address: given, changed or taken away, with a reason (the trail)."""
    s = db_session()
    user = _user_or_404(s, user_id)
    form = EmailForm()
    if request.method == "GET":
        form.email.data = user.email or ""
    return _account_change(
        s,
        user,
        form,
        lambda actor: service.set_email(
            session=s, actor=actor, user=user, email=form.email.data, reason=form.reason.data
        ),
        done=_("Email address of %(username)s saved.", username=user.username),
        template="accounts/user_email.html",
    )


def _account_change(s, user: User, form, change, *, done: str, template: str):
    """An administrator's form on one account: on a valid submission the change (committed,
    then the list with `done`), else the form again, a refusal said once (422)."""
    status = 200
    if form.validate_on_submit():
        try:
            change(service.Actor.of(current_user.row))
        except service.AccountError as exc:
            s.rollback()
            flash(str(exc), "error")
            status = 422
        else:
            s.commit()
            flash(done, "success")
            return redirect(url_for("accounts.users"))
    elif request.method == "POST":
        status = 422
    return render_template(template, form=form, user=user), status


@bp.route("/site", methods=["POST"])
@signed_in_required
def choose_site():
    site_id = request.form.get("site_id", "")
    allowed = {site.id for site in service.sites_of(session=db_session(), user=current_user.row)}
    if site_id not in allowed:
        abort(403, description=_("You do not belong to that site."))
    session["site_id"] = site_id
    return redirect(_safe_next(request.form.get("next")))


# --- administration ---------------------------------------------------------------


@bp.route("/admin/users")
@permission_required(Permission.MANAGE_USERS)
def users():
    s = db_session()
    rows = s.exec(
        select(User)
        .where(col(User.id).in_(_administered_user_ids(s)))
        .order_by(col(User.active).desc(), User.username)
    ).all()
    memberships = {
        user.id: [site.id for site in service.sites_of(session=s, user=user)] for user in rows
    }
    wards = {
        user.id: [f"{w.site_id} {w.code}" for w in service.wards_of(session=s, user=user)]
        for user in rows
    }
    settings = _settings()
    locks = {
        user.id: service.lock_state(
            session=s,
            username=user.username,
            threshold=settings.lockout_threshold,
            minutes=settings.lockout_minutes,
        )
        for user in rows
    }
    return render_template(
        "accounts/users.html",
        users=rows,
        memberships=memberships,
        wards=wards,
        ward_roles=WARD_ROLES,
        locks=locks,
        reason_form=ReasonForm(),
    )


@bp.route("/admin/users/new", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_USERS)
def user_new():
    s = db_session()
    form = UserCreateForm()
    own = member_site_ids(s, current_user.id)
    form.sites.choices = [
        (site.id, f"{site.id} — {site.name}")
        for site in s.exec(select(Site).where(col(Site.id).in_(own)).order_by(Site.id))
    ]
    status = 200
    if form.validate_on_submit():
        try:
            user = service.create_user(
                session=s,
                actor=service.Actor.of(current_user.row),
                username=form.username.data,
                full_name=form.full_name.data,
                role=form.role.data,
                password=form.password.data,
                site_ids=form.sites.data,
                reason=form.reason.data,
                email=form.email.data,
            )
        except service.AccountError as exc:
            s.rollback()
            flash(str(exc), "error")
            status = 422
        else:
            s.commit()
            flash(_("User %(username)s created.", username=user.username), "success")
            return redirect(url_for("accounts.users"))
    elif request.method == "POST":
        status = 422
    return render_template("accounts/user_new.html", form=form), status


def _administered_user_ids(s):
    """The ids of the users who belong to at least one of the administrator's sites."""
    return select(UserSite.user_id).where(
        col(UserSite.site_id).in_(member_site_ids(s, current_user.id))
    )


def _user_or_404(s, user_id: int) -> User:
    # Another site's account answers exactly like a missing one.
    user = s.get(User, user_id)
    if user is None or not sees_user(s, current_user.row, user):
        abort(404, description=_("No such user."))
    return user


@bp.route("/admin/users/<int:user_id>/<any(deactivate, activate, unlock):action>", methods=["POST"])
@permission_required(Permission.MANAGE_USERS)
def user_action(user_id: int, action: str):
    s = db_session()
    user = _user_or_404(s, user_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("Give a reason: it is kept in the audit trail."), "error")
        return redirect(url_for("accounts.users"))
    actor = service.Actor.of(current_user.row)
    try:
        if action == "unlock":
            service.unlock_user(session=s, actor=actor, user=user, reason=form.reason.data)
        else:
            service.set_user_active(
                session=s,
                actor=actor,
                user=user,
                active=action == "activate",
                reason=form.reason.data,
            )
    except service.AccountError as exc:
        s.rollback()
        flash(str(exc), "error")
    else:
        s.commit()
        done = {
            "activate": _("%(username)s: activate done.", username=user.username),
            "deactivate": _("%(username)s: deactivate done.", username=user.username),
            "unlock": _("%(username)s: unlock done.", username=user.username),
        }
        flash(done[action], "success")
    return redirect(url_for("accounts.users"))


@bp.route("/admin/users/<int:user_id>/wards")
@permission_required(Permission.MANAGE_USERS)
def user_wards(user_id: int):
    """The wards a nurse or physician is on, the grants and revocations so far, and the
    forms to put them on a ward of their sites or take them off one."""
    s = db_session()
    user = _user_or_404(s, user_id)
    return _ward_page(s, user)


def _ward_page(s, user: User, *, status: int = 200, failed: WardForm | None = None):
    held = service.wards_of(session=s, user=user)
    held_ids = {w.id for w in held}
    own = member_site_ids(s, current_user.id)
    theirs = member_site_ids(s, user.id)
    grantable = [
        w
        for w in s.exec(
            select(Ward)
            .where(col(Ward.site_id).in_(own & theirs))
            .order_by(col(Ward.site_id), col(Ward.code))
        )
        if w.id not in held_ids
    ]
    grant_form = failed or WardForm()
    grant_form.ward.choices = [(w.id, f"{w.site_id} {w.code} — {w.name}") for w in grantable]
    users_by_id = {}
    history = service.ward_history(session=s, user=user)
    if history:
        ids = {event.by_id for event, _ward in history} - {None}
        users_by_id = {u.id: u for u in s.exec(select(User).where(col(User.id).in_(ids)))}
    return render_template(
        "accounts/user_wards.html",
        user=user,
        held=held,
        history=history,
        people=users_by_id,
        grant_form=grant_form,
        revoke_form=WardForm(),
        ward_role=user.role in WARD_ROLES,
    ), status


@bp.route("/admin/users/<int:user_id>/wards/<any(grant, revoke):change>", methods=["POST"])
@permission_required(Permission.MANAGE_USERS)
def user_ward_action(user_id: int, change: str):
    s = db_session()
    user = _user_or_404(s, user_id)
    form = WardForm()
    if not form.validate_on_submit() or form.ward.data is None:
        s.rollback()
        flash(_("Choose a ward and give a reason: it is kept in the audit trail."), "error")
        return _ward_page(s, user, status=422)
    write = service.grant_ward if change == "grant" else service.revoke_ward
    try:
        event = write(
            session=s,
            actor=service.Actor.of(current_user.row),
            user=user,
            ward_id=form.ward.data,
            reason=form.reason.data,
        )
    except service.AccountError as exc:
        s.rollback()
        flash(str(exc), "error")
        return _ward_page(s, user, status=422)
    ward = s.get(Ward, event.ward_id)
    s.commit()
    done = (
        _("%(username)s is now on ward %(ward)s.", username=user.username, ward=ward.code)
        if change == "grant"
        else _(
            "%(username)s is no longer on ward %(ward)s.", username=user.username, ward=ward.code
        )
    )
    flash(done, "success")
    return redirect(url_for("accounts.user_wards", user_id=user.id))


@bp.route("/admin/logins")
@permission_required(Permission.MANAGE_USERS)
def login_events():
    since = utcnow() - timedelta(days=30)
    rows = (
        db_session()
        .exec(
            select(LoginEvent)
            .where(
                LoginEvent.at >= since,
                col(LoginEvent.user_id).in_(_administered_user_ids(db_session())),
            )
            .order_by(col(LoginEvent.at).desc())
            .limit(500)
        )
        .all()
    )
    return render_template("accounts/logins.html", events=rows)
