"""Signing in and out: lockout, deactivation, idle timeout, CSRF, rehash."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from sqlmodel import select

from qms.accounts import passwords, service
from qms.accounts.models import LoginEvent, User
from qms.db import utcnow


def _post_login(client, csrf_from, username, password):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def test_login_page_and_successful_sign_in(client, make_user, login):
    user = make_user("pharmacist", full_name="Chen Jie")
    page = client.get("/login")
    assert page.status_code == 200 and "Sign in" in page.get_data(as_text=True)
    response = login(user)
    assert response.status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "Chen Jie" in home and "Pharmacist" in home and "SH-01" in home


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_password_counts_down_then_locks(client, make_user, session, app, csrf_from):
    user = make_user("nurse")
    session.commit()
    threshold = app.extensions["qms_settings"].lockout_threshold
    for attempt in range(1, threshold + 1):
        response = _post_login(client, csrf_from, user.username, "wrong-password!")
        assert response.status_code == 401
        text = response.get_data(as_text=True)
        if attempt < threshold:
            assert f"{threshold - attempt} attempt(s) left" in text
        else:
            assert "now locked" in text
    # The right password no longer opens the account, and the page says why.
    response = _post_login(client, csrf_from, user.username, "correct-horse-battery")
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    kinds = session.exec(select(LoginEvent.kind).where(LoginEvent.username == user.username)).all()
    assert kinds.count("failure") == threshold and "success" not in kinds


def test_lock_expires_and_unlock_resets(session, make_user):
    user = make_user("nurse")
    start = utcnow() - timedelta(hours=2)
    for i in range(5):
        session.add(
            LoginEvent(
                username=user.username,
                user_id=user.id,
                kind="failure",
                at=start + timedelta(seconds=i),
            )
        )
    session.flush()
    state = service.lock_state(
        session=session,
        username=user.username,
        threshold=5,
        minutes=30,
        now=start + timedelta(minutes=10),
    )
    assert state.locked
    later = service.lock_state(
        session=session,
        username=user.username,
        threshold=5,
        minutes=30,
        now=start + timedelta(minutes=40),
    )
    assert not later.locked
    service.unlock_user(
        session=session, actor=service.Actor.system(), user=user, reason="called the ward"
    )
    session.flush()
    state = service.lock_state(
        session=session,
        username=user.username,
        threshold=5,
        minutes=30,
        now=start + timedelta(minutes=10),
    )
    assert state.locked is False  # the unlock event ends the series (its time is now, after them)


def test_deactivated_user_cannot_sign_in(client, make_user, session, csrf_from):
    user = make_user("nurse")
    service.set_user_active(
        session=session,
        actor=service.Actor.system(),
        user=user,
        active=False,
        reason="left the hospital",
    )
    session.commit()
    response = _post_login(client, csrf_from, user.username, "correct-horse-battery")
    assert response.status_code == 401
    assert "deactivated" in response.get_data(as_text=True)


def test_form_without_csrf_token_is_refused(client, make_user, session):
    user = make_user("nurse")
    session.commit()
    response = client.post(
        "/login", data={"username": user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_idle_timeout_signs_out(client, make_user, login, session):
    user = make_user("nurse")
    login(user)
    assert client.get("/").status_code == 200
    with client.session_transaction() as browser_session:
        browser_session["last_seen"] -= 16 * 60
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert (
        "timeout"
        in session.exec(select(LoginEvent.kind).where(LoginEvent.username == user.username)).all()
    )


def test_logout_records_event(client, make_user, login, csrf_from, session):
    user = make_user("physician")
    login(user)
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    assert (
        "logout"
        in session.exec(select(LoginEvent.kind).where(LoginEvent.username == user.username)).all()
    )


def test_open_redirect_is_refused(client, make_user, session, csrf_from):
    user = make_user("nurse")
    session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": user.username, "password": "correct-horse-battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_hash_with_old_parameters_is_upgraded_at_sign_in(session, make_user):
    user = make_user("nurse")
    previous = passwords.use_hasher(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    try:
        old_hash = user.password_hash
        service.authenticate(
            session=session,
            username=user.username,
            password="correct-horse-battery",
            threshold=5,
            minutes=30,
        )
        session.flush()
        refreshed = session.get(User, user.id)
        assert refreshed.password_hash != old_hash
        assert "m=2048" in refreshed.password_hash
    finally:
        passwords.use_hasher(previous)


def test_user_changes_own_password(client, make_user, login, session, csrf_from):
    from qms.core.trail import AuditTrailEntry

    user = make_user("nurse")
    login(user)
    token = csrf_from(client.get("/account/password").get_data(as_text=True))
    wrong = client.post(
        "/account/password",
        data={
            "current_password": "not-it",
            "new_password": "a-new-long-password",
            "repeat": "a-new-long-password",
            "csrf_token": token,
        },
    )
    assert wrong.status_code == 422 and "current password is wrong" in wrong.get_data(as_text=True)
    mismatch = client.post(
        "/account/password",
        data={
            "current_password": "correct-horse-battery",
            "new_password": "a-new-long-password",
            "repeat": "another-long-password",
            "csrf_token": token,
        },
    )
    assert mismatch.status_code == 422 and "differ" in mismatch.get_data(as_text=True)
    done = client.post(
        "/account/password",
        data={
            "current_password": "correct-horse-battery",
            "new_password": "a-new-long-password",
            "repeat": "a-new-long-password",
            "csrf_token": token,
        },
    )
    assert done.status_code == 302
    session.expire_all()
    assert service.authenticate(
        session=session,
        username=user.username,
        password="a-new-long-password",
        threshold=5,
        minutes=30,
    )
    trail = session.exec(select(AuditTrailEntry).where(AuditTrailEntry.action == "password")).one()
    assert trail.entity_id == user.username and trail.old_value is None and trail.new_value is None


def test_admin_resets_a_forgotten_password(client, make_user, login, session, csrf_from):
    admin = make_user("admin")
    nurse = make_user("nurse")
    login(admin)
    page = client.get(f"/admin/users/{nurse.id}/password")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        f"/admin/users/{nurse.id}/password",
        data={
            "new_password": "temporary-pass-123",
            "reason": "forgot it; identity checked in person",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    session.expire_all()
    assert service.authenticate(
        session=session,
        username=nurse.username,
        password="temporary-pass-123",
        threshold=5,
        minutes=30,
    )


def test_nurse_cannot_reset_someone_elses_password(client, make_user, login):
    other = make_user("nurse")
    login(make_user("nurse"))
    assert client.get(f"/admin/users/{other.id}/password").status_code == 403
