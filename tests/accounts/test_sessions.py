"""Sessions end on the server; sign-in redirects stay on the site; the lockout holds under
a crowd; an unknown username costs the same hash as a known one."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlmodel import select

from qms.accounts import passwords, service
from qms.accounts.models import LoginEvent, User
from qms.db import Database, utcnow
from tests.conftest import only_on

PASSWORD = "correct-horse-battery"


def _copy_of(app, client):
    """Another browser holding a copy of `client`'s session cookie."""
    other = app.test_client()
    other.set_cookie("qms_session", client.get_cookie("qms_session").value)
    return other


def _signed_in(client) -> bool:
    return client.get("/").status_code == 200


def test_a_cookie_copied_before_logout_stops_working(app, client, make_user, login, csrf_from):
    login(make_user("nurse"))
    copy = _copy_of(app, client)
    assert _signed_in(copy)
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not _signed_in(copy)


def test_a_password_change_ends_the_other_browsers_sessions(
    app, client, make_user, login, csrf_from
):
    login(make_user("nurse"))
    other = _copy_of(app, client)
    token = csrf_from(client.get("/account/password").get_data(as_text=True))
    new = "a-brand-new-long-password"
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": new,
            "repeat": new,
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert _signed_in(client)  # the browser that changed it stays signed in
    assert not _signed_in(other)


@pytest.mark.parametrize("event", ["reset", "deactivate", "lockout"])
def test_reset_deactivation_and_lockout_end_sessions(app, client, make_user, login, session, event):
    nurse = make_user("nurse")
    login(nurse)
    assert _signed_in(client)
    system = service.Actor.system()
    if event == "reset":
        service.reset_password(
            session=session, actor=system, user=nurse, new_password="set-by-the-admin!", reason="r"
        )
    elif event == "deactivate":
        service.set_user_active(session=session, actor=system, user=nurse, active=False, reason="r")
    else:
        for _ in range(app.extensions["qms_settings"].lockout_threshold):
            with pytest.raises(service.LoginFailed):
                service.authenticate(
                    session=session,
                    username=nurse.username,
                    password="wrong-password!",
                    threshold=5,
                    minutes=30,
                )
    session.commit()
    assert not _signed_in(client)


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0d%0a/x",
        "/%0a/evil.example",
        "/\\evil.example",
        "%5C%5Cevil.example",
        "https://evil.example/",
        "/%20/evil.example",
        "//evil.example",
    ],
)
def test_next_stays_on_the_site(client, make_user, session, csrf_from, target):
    user = make_user("nurse")
    session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        f"/login?next={target}",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "\\" not in location and "evil.example" not in location.split("?")[0].split("/")[1]


def test_next_keeps_a_same_site_path(client, make_user, session, csrf_from):
    user = make_user("nurse")
    session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=/units?page=2",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/units?page=2"


def test_choosing_a_site_does_not_redirect_elsewhere(client, make_user, login, csrf_from):
    login(make_user("nurse"))
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post(
        "/site", data={"site_id": "SH-01", "next": "/\t/evil.example", "csrf_token": token}
    )
    assert response.status_code == 302 and not response.headers["Location"].startswith("//")


class CountingHasher(PasswordHasher):
    def __init__(self):
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash, password):
        self.verified += 1
        return super().verify(hash, password)


@pytest.mark.parametrize("who", ["unknown", "no_password", "known"])
def test_an_unknown_username_costs_one_hash_like_a_known_one(session, make_user, who):
    nurse = make_user("nurse")
    placeholder = service.create_user(
        session=session,
        actor=service.Actor.system(),
        username="imported.author",
        full_name="Imported Author",
        role="nurse",
        password=None,
        site_ids=["SH-01"],
    )
    username = {"unknown": "no.such.user", "no_password": placeholder.username}.get(
        who, nurse.username
    )
    hasher = CountingHasher()
    previous = passwords.use_hasher(hasher)
    try:
        with pytest.raises(service.LoginFailed, match="Wrong username or password"):
            service.authenticate(
                session=session,
                username=username,
                password="wrong-password!",
                threshold=5,
                minutes=30,
            )
    finally:
        passwords.use_hasher(previous)
    assert hasher.verified == 1


def test_an_expired_lock_does_not_count_its_failures_again(session, make_user):
    nurse = make_user("nurse")
    start = utcnow() - timedelta(hours=2)
    for i in range(5):
        session.add(
            LoginEvent(
                username=nurse.username,
                user_id=nurse.id,
                kind="failure",
                at=start + timedelta(seconds=i),
            )
        )
    session.flush()
    # The lock ran out long ago; one wrong password now is the first of a new series.
    with pytest.raises(service.LoginFailed, match="4 attempt"):
        service.authenticate(
            session=session,
            username=nurse.username,
            password="wrong-password!",
            threshold=5,
            minutes=30,
        )
    state = service.lock_state(session=session, username=nurse.username, threshold=5, minutes=30)
    assert not state.locked and state.failures == 1


def test_forty_parallel_wrong_passwords_lock_at_exactly_five(fresh_database_url):
    database = Database(fresh_database_url)
    with database.transaction() as s:
        service.create_site(session=s, site_id="SH-01", name="Test")
        s.flush()
        service.create_user(
            session=s,
            actor=service.Actor.system(),
            username="li.na",
            full_name="Li Na",
            role="nurse",
            password=PASSWORD,
            site_ids=["SH-01"],
        )
    start = threading.Barrier(40)
    answers: list[str] = []

    def attempt() -> None:
        with database.session() as read:
            account = service.sign_in_account(session=read, username="li.na")
        check = service.check_password_of(*account, "wrong-password!")
        start.wait()
        with database.session(write=True) as s:
            try:
                service.record_sign_in(session=s, check=check, threshold=5, minutes=30)
            except service.LoginFailed as exc:
                s.commit()
                answers.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with database.session() as s:
        kinds = s.exec(select(LoginEvent.kind).where(LoginEvent.username == "li.na")).all()
        version = s.exec(select(User.session_version).where(User.username == "li.na")).one()
    database.engine.dispose()
    assert kinds.count("failure") == 5
    assert sum("now locked" in a for a in answers) == 1
    assert sum("is locked after" in a for a in answers) == 35
    assert version == 1  # the lockout ended the account's sessions once


@only_on("sqlite")  # one writer at a time: the write lock is what a hash must not hold
def test_the_password_hash_runs_outside_the_write_transaction(fresh_database_url, tmp_path):
    """While a sign-in checks its password, another writer can still commit (SQLite)."""
    import sqlite3

    from sqlalchemy import make_url

    from qms.web.app import create_app
    from tests.conftest import make_test_settings

    database = Database(fresh_database_url)
    with database.transaction() as s:
        service.create_site(session=s, site_id="SH-01", name="Test")
        s.flush()
        service.create_user(
            session=s,
            actor=service.Actor.system(),
            username="li.na",
            full_name="Li Na",
            role="nurse",
            password=PASSWORD,
            site_ids=["SH-01"],
        )
    app = create_app(make_test_settings(tmp_path, fresh_database_url))
    app.config["WTF_CSRF_ENABLED"] = False
    path = make_url(fresh_database_url).database
    others: list[str] = []

    class WriterDuringHash(PasswordHasher):
        def verify(self, hash, password):
            other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                others.append("wrote")
            except sqlite3.OperationalError as exc:
                others.append(str(exc))
            finally:
                other.close()
            return super().verify(hash, password)

    previous = passwords.use_hasher(WriterDuringHash(time_cost=1, memory_cost=1024, parallelism=1))
    try:
        response = app.test_client().post(
            "/login", data={"username": "li.na", "password": PASSWORD}
        )
    finally:
        passwords.use_hasher(previous)
        database.engine.dispose()
    assert response.status_code == 302
    assert others == ["wrote"]


def test_wrong_passwords_at_signatures_that_lock_the_account_end_its_sessions(
    client, make_user, login, session
):
    nurse = make_user("nurse")
    login(nurse)
    for _ in range(4):
        service.record_signature_failure(session=session, username=nurse.username)
    session.commit()
    assert _signed_in(client)  # four wrong passwords: not locked yet
    service.record_signature_failure(session=session, username=nurse.username)
    session.commit()
    assert not _signed_in(client)
