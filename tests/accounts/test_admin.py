"""The administrator's user pages, and who may reach them."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from qms.accounts import service
from qms.accounts.models import User
from qms.core.errors import Denied
from qms.core.trail import AuditTrailEntry


@pytest.mark.parametrize(
    "role", ["nurse", "physician", "pharmacist", "quality_officer", "regulator"]
)
def test_non_admin_gets_403_on_admin_pages(client, make_user, login, role):
    login(make_user(role))
    for url in ("/admin/users", "/admin/users/new", "/admin/logins"):
        response = client.get(url)
        assert response.status_code == 403
        text = response.get_data(as_text=True)
        assert "You may not do this" in text and "Traceback" not in text


def test_admin_creates_user_with_audit_trail(client, make_user, login, session, csrf_from):
    admin = make_user("admin", username="sun.hao")
    login(admin)
    page = client.get("/admin/users/new")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/admin/users/new",
        data={
            "username": "Li.Na",
            "full_name": "Li Na",
            "role": "nurse",
            "sites": ["SH-01"],
            "password": "a-long-enough-password",
            "reason": "new ward nurse",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    user = service.get_user_by_username(session=session, username="li.na")
    assert user is not None and user.role == "nurse"
    entry = session.exec(select(AuditTrailEntry).where(AuditTrailEntry.entity_id == "li.na")).one()
    assert (
        entry.action == "create" and entry.actor_id == admin.id and entry.reason == "new ward nurse"
    )
    assert "li.na" in client.get("/admin/users").get_data(as_text=True)


def test_bad_user_form_explains_and_stores_nothing(client, make_user, login, session, csrf_from):
    login(make_user("admin"))
    token = csrf_from(client.get("/admin/users/new").get_data(as_text=True))
    before = len(session.exec(select(User)).all())
    response = client.post(
        "/admin/users/new",
        data={
            "username": "x.y",
            "full_name": "X Y",
            "role": "nurse",
            "sites": ["SH-01"],
            "password": "short",
            "reason": "r",
            "csrf_token": token,
        },
    )
    assert response.status_code == 422
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert len(session.exec(select(User)).all()) == before


def test_deactivate_needs_reason_and_never_deletes(client, make_user, login, session, csrf_from):
    admin = make_user("admin")
    nurse = make_user("nurse")
    login(admin)
    html = client.get("/admin/users").get_data(as_text=True)
    token = csrf_from(html)
    response = client.post(
        f"/admin/users/{nurse.id}/deactivate", data={"reason": "", "csrf_token": token}
    )
    assert response.status_code == 302
    session.expire_all()
    assert session.get(User, nurse.id).active is True
    client.post(
        f"/admin/users/{nurse.id}/deactivate",
        data={"reason": "moved to another hospital", "csrf_token": token},
    )
    session.expire_all()
    row = session.get(User, nurse.id)
    assert row is not None and row.active is False
    entry = session.exec(
        select(AuditTrailEntry).where(AuditTrailEntry.action == "deactivate")
    ).one()
    assert (
        entry.old_value == "true"
        and entry.new_value == "false"
        and "another hospital" in entry.reason
    )
    assert re.search(
        rf'data-username="{nurse.username}".*?inactive',
        client.get("/admin/users").get_data(as_text=True),
        re.S,
    )


@pytest.mark.parametrize(
    "role, several",
    [
        ("nurse", False),
        ("physician", False),
        ("pharmacist", False),
        ("quality_officer", True),  # a hospital group's: it approves reports covering several
        ("regulator", True),
        ("admin", True),
    ],
)
def test_who_may_belong_to_several_sites(session, make_site, make_user, role, several):
    for site_id in ("SH-01", "SH-02"):
        make_site(site_id)
    request = dict(
        username=f"two.{role.replace('_', '')}",
        full_name="Two Sites",
        role=role,
        password="long-enough-pass",
        site_ids=["SH-01", "SH-02"],
    )
    if not several:
        with pytest.raises(service.AccountError, match="several sites"):
            service.create_user(session=session, actor=service.Actor.system(), **request)
        return
    user = service.create_user(session=session, actor=service.Actor.system(), **request)
    assert [s.id for s in service.sites_of(session=session, user=user)] == ["SH-01", "SH-02"]
    # An administrator of one of the sites cannot grant the other.
    admin = service.Actor.of(make_user("admin", username="admin.one", sites=("SH-01",)))
    with pytest.raises(Denied, match="SH-02"):
        service.create_user(
            session=session, actor=admin, **{**request, "username": f"{request['username']}.b"}
        )


def test_service_rejects_bad_accounts(session, make_site):
    make_site()
    actor = service.Actor.system()
    cases = [
        (dict(username="1abc", role="nurse"), "username"),
        (dict(username="ok.name", role="surgeon"), "unknown role"),
        (dict(username="ok.name", role="nurse", site_ids=["NOPE"]), "does not exist"),
        (dict(username="ok.name", role="nurse", site_ids=["SH-01", "SH-02"]), "several sites"),
    ]
    for overrides, message in cases:
        args = (
            dict(
                username="ok.name",
                full_name="Ok Name",
                role="nurse",
                password="long-enough-pass",
                site_ids=["SH-01"],
            )
            | overrides
        )
        with pytest.raises(service.AccountError, match=message):
            service.create_user(session=session, actor=actor, **args)
    nurse_actor = service.Actor(
        id=None, name="a nurse", permissions=service.permissions_of("nurse")
    )
    with pytest.raises(Denied):
        service.create_user(
            session=session,
            actor=nurse_actor,
            username="x.y",
            full_name="X",
            role="nurse",
            password="long-enough-pass",
            site_ids=["SH-01"],
        )


def test_regulator_may_belong_to_several_sites(session, make_site, make_user):
    make_site("SH-02", "Second hospital")
    regulator = make_user("regulator", sites=("SH-01", "SH-02"))
    assert [s.id for s in service.sites_of(session=session, user=regulator)] == ["SH-01", "SH-02"]


def test_accounts_and_checklists_know_the_same_roles():
    from qms.accounts.roles import ROLE_LABELS, ROLE_PERMISSIONS, Role
    from qms.checklists.language import ROLES
    from qms.core.roles import ROLE_NAMES

    assert tuple(Role) == ROLE_NAMES == ROLES
    assert set(ROLE_LABELS) == set(ROLE_PERMISSIONS) == set(Role)


# --- an administrator manages the accounts of their own sites only ----------------------


@pytest.fixture
def two_sites(make_user, session):
    """An administrator of BJ-02, and SH-01's nurse, who has signed in once."""
    admin = make_user("admin", username="bj.admin", sites=("BJ-02",))
    nurse = make_user("nurse", username="sh.nurse", sites=("SH-01",))
    own = make_user("nurse", username="bj.nurse", sites=("BJ-02",))
    session.add(service.LoginEvent(username="sh.nurse", user_id=nurse.id, kind="success"))
    session.add(service.LoginEvent(username="bj.nurse", user_id=own.id, kind="success"))
    session.commit()
    return admin, nurse, own


def test_admin_lists_only_their_sites_users_and_sign_ins(client, login, two_sites):
    admin, nurse, own = two_sites
    login(admin)
    users = client.get("/admin/users").get_data(as_text=True)
    assert 'data-username="bj.nurse"' in users and 'data-username="sh.nurse"' not in users
    logins = client.get("/admin/logins").get_data(as_text=True)
    assert "bj.nurse" in logins and "sh.nurse" not in logins


def test_admin_cannot_act_on_another_sites_account(client, login, two_sites, csrf_from, session):
    admin, nurse, own = two_sites
    login(admin)
    token = csrf_from(client.get("/admin/users/new").get_data(as_text=True))
    for url in (f"/admin/users/{nurse.id}/unlock", f"/admin/users/{nurse.id}/deactivate"):
        assert client.post(url, data={"reason": "r", "csrf_token": token}).status_code == 404
    assert client.get(f"/admin/users/{nurse.id}/password").status_code == 404
    response = client.post(
        f"/admin/users/{nurse.id}/password",
        data={"new_password": "an-attackers-new-password", "reason": "r", "csrf_token": token},
    )
    assert response.status_code == 404
    session.expire_all()
    assert session.get(User, nurse.id).active
    assert not service.verify_password(
        session.get(User, nurse.id).password_hash, "an-attackers-new-password"
    )
    # Their own site's account: allowed.
    response = client.post(
        f"/admin/users/{own.id}/unlock", data={"reason": "asked", "csrf_token": token}
    )
    assert response.status_code == 302


def test_admin_cannot_grant_a_site_they_do_not_hold(client, login, two_sites, csrf_from, session):
    admin, _, _ = two_sites
    login(admin)
    page = client.get("/admin/users/new").get_data(as_text=True)
    assert 'value="BJ-02"' in page and 'value="SH-01"' not in page
    before = len(session.exec(select(User)).all())
    with pytest.raises(Denied, match="you do not administer site SH-01"):
        service.create_user(
            session=session,
            actor=service.Actor.of(admin),
            username="sh.quality",
            full_name="Spy",
            role="quality_officer",
            password="a-long-enough-password",
            site_ids=["SH-01"],
        )
    session.rollback()
    assert len(session.exec(select(User)).all()) == before


def test_an_account_shared_with_another_site_is_refused(make_user, session, two_sites):
    admin, _, _ = two_sites
    regulator = make_user("regulator", sites=("SH-01", "BJ-02"))
    with pytest.raises(Denied, match="also belongs to SH-01, which you do not administer"):
        service.reset_password(
            session=session,
            actor=service.Actor.of(admin),
            user=regulator,
            new_password="another-long-password",
            reason="forgotten",
        )


def test_an_accounts_email_address_is_given_changed_and_removed_on_the_audit_trail(
    client, make_user, login, session, csrf_from
):
    admin = make_user("admin")
    nurse = make_user("nurse")
    login(admin)
    url = f"/admin/users/{nurse.id}/email"
    token = csrf_from(client.get(url).get_data(as_text=True))
    bad = client.post(url, data={"email": "li at hospital", "reason": "r", "csrf_token": token})
    assert bad.status_code == 422 and "is not an email address" in bad.get_data(as_text=True)
    no_reason = client.post(url, data={"email": "li@h.example", "csrf_token": token})
    assert no_reason.status_code == 422
    session.expire_all()
    assert session.get(User, nurse.id).email is None
    for address, reason in (("li@h.example", "her ward mail"), ("", "she left the ward list")):
        done = client.post(url, data={"email": address, "reason": reason, "csrf_token": token})
        assert done.status_code == 302
    assert "li@h.example" not in client.get("/admin/users").get_data(as_text=True)
    session.expire_all()
    assert session.get(User, nurse.id).email is None
    changes = session.exec(
        select(AuditTrailEntry)
        .where(AuditTrailEntry.entity_id == nurse.username, AuditTrailEntry.field_name == "email")
        .order_by(AuditTrailEntry.id)
    ).all()
    assert [(c.old_value, c.new_value, c.reason, c.actor_id) for c in changes] == [
        (None, "li@h.example", "her ward mail", admin.id),
        ("li@h.example", None, "she left the ward list", admin.id),
    ]


def test_the_command_line_gives_and_takes_an_address(tmp_path, fresh_database_url):
    from click.testing import CliRunner

    from qms.cli import cli
    from qms.db import Database
    from qms.runtime import Runtime
    from tests.conftest import make_test_settings

    database = Database(fresh_database_url)
    runtime = Runtime(make_test_settings(tmp_path, fresh_database_url), database=database)
    runner = CliRunner()

    def qms(*args, ok=True):
        result = runner.invoke(cli, list(args), obj=runtime)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    try:
        qms("user", "create", "--username", "li.na", "--full-name", "Li Na", "--role", "nurse",
            "--site", "SH-01", "--site-name", "Test Hospital", "--email", "li@h.example",
            "--password", "a-long-enough-password")  # fmt: skip
        assert "is not an email address" in qms("user", "email", "li.na", "x@y", "--reason", "r",
                                                ok=False)  # fmt: skip
        assert "--none" in qms("user", "email", "li.na", "a@b.example", "--none", "--reason", "r",
                               ok=False)  # fmt: skip
        assert qms("user", "email", "li.na", "na.li@h.example", "--reason", "new mailbox") == (
            "li.na: email na.li@h.example\n"
        )
        assert (
            qms("user", "email", "li.na", "--none", "--reason", "left") == "li.na: email (none)\n"
        )
        with database.transaction(write=False) as session:
            trail = session.exec(
                select(AuditTrailEntry.action, AuditTrailEntry.field_name, AuditTrailEntry.reason)
                .where(AuditTrailEntry.entity_id == "li.na")
                .order_by(AuditTrailEntry.id)
            ).all()
        assert [tuple(t) for t in trail] == [
            ("create", None, "created from the command line"),
            ("change", "email", "new mailbox"),
            ("change", "email", "left"),
        ]
    finally:
        database.dispose()
