"""Ward membership: an administrator puts nurses and physicians on wards of their sites and
takes them off, each change an appended event with its reason; the page that does it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from qms.accounts import service
from qms.accounts.access import ward_scope
from qms.accounts.models import WardGrant
from qms.core.errors import Denied
from qms.core.trail import AuditTrailEntry


@pytest.fixture
def wards(session, make_site):
    make_site("SH-01")
    make_site("BJ-02", name="Test Hospital, Beijing")
    made = {
        "HEM": service.create_ward(session=session, site_id="SH-01", code="HEM", name="Haematology"),
        "CTU": service.create_ward(session=session, site_id="SH-01", code="CTU", name="Cell therapy"),
        "BJ": service.create_ward(session=session, site_id="BJ-02", code="ONC", name="Oncology"),
    }  # fmt: skip
    session.flush()
    return made


SYSTEM = service.Actor.system("test")


def test_grants_and_revocations_are_appended_and_the_wards_derived(session, make_user, wards):
    nurse = make_user("nurse")
    assert ward_scope(session, nurse, "SH-01") == frozenset()  # on no ward: no ward's units
    service.grant_ward(session=session, actor=SYSTEM, user=nurse, ward_id=wards["HEM"].id,
                       reason="works on haematology")  # fmt: skip
    service.grant_ward(session=session, actor=SYSTEM, user=nurse, ward_id=wards["CTU"].id,
                       reason="covers the cell therapy unit")  # fmt: skip
    assert ward_scope(session, nurse, "SH-01") == {"HEM", "CTU"}
    service.revoke_ward(session=session, actor=SYSTEM, user=nurse, ward_id=wards["HEM"].id,
                        reason="moved to the cell therapy unit")  # fmt: skip
    assert [w.code for w in service.wards_of(session=session, user=nurse)] == ["CTU"]
    service.grant_ward(session=session, actor=SYSTEM, user=nurse, ward_id=wards["HEM"].id,
                       reason="back on haematology")  # fmt: skip
    assert ward_scope(session, nurse, "SH-01") == {"HEM", "CTU"}
    events = session.exec(
        select(WardGrant).where(WardGrant.user_id == nurse.id).order_by(WardGrant.id)
    ).all()
    assert [(e.ward_id == wards["HEM"].id, e.n, e.granted) for e in events] == [
        (True, 1, True), (False, 1, True), (True, 2, False), (True, 3, True),
    ]  # fmt: skip
    trail = session.exec(
        select(AuditTrailEntry).where(
            AuditTrailEntry.entity_id == nurse.username, AuditTrailEntry.field_name == "wards"
        )
    ).all()
    assert [t.action for t in trail] == ["grant_ward", "grant_ward", "revoke_ward", "grant_ward"]
    assert trail[2].reason == "moved to the cell therapy unit"


def test_pharmacists_and_quality_see_the_whole_site(session, make_user, wards):
    for role in ("pharmacist", "quality_officer", "admin"):
        assert ward_scope(session, make_user(role), "SH-01") is None
    assert ward_scope(session, SYSTEM, "SH-01") is None


@pytest.mark.parametrize(
    "case, message",
    [
        ("pharmacist", "only nurses and physicians are put on wards"),
        ("no reason", "give a reason"),
        ("other site's ward", "has no such ward at their sites"),
        ("held already", "is already on ward HEM"),
        ("revoke not held", "is not on ward CTU"),
    ],
)
def test_a_wrong_grant_is_refused_and_stores_nothing(session, make_user, wards, case, message):
    user = make_user("pharmacist" if case == "pharmacist" else "nurse")
    if case == "held already":
        service.grant_ward(session=session, actor=SYSTEM, user=user, ward_id=wards["HEM"].id,
                           reason="first")  # fmt: skip
    before = len(session.exec(select(WardGrant)).all())
    ward = {"other site's ward": "BJ", "revoke not held": "CTU"}.get(case, "HEM")
    change = service.revoke_ward if case == "revoke not held" else service.grant_ward
    with pytest.raises(service.AccountError, match=message):
        change(session=session, actor=SYSTEM, user=user, ward_id=wards[ward].id,
               reason="" if case == "no reason" else "a reason")  # fmt: skip
    assert len(session.exec(select(WardGrant)).all()) == before


def test_an_administrator_of_another_site_cannot_grant(session, make_user, wards):
    nurse = make_user("nurse")
    elsewhere = service.Actor.of(make_user("admin", sites=("BJ-02",)))
    with pytest.raises(Exception) as refused:
        service.grant_ward(session=session, actor=elsewhere, user=nurse,
                           ward_id=wards["HEM"].id, reason="not mine")  # fmt: skip
    assert refused.type.__name__ in ("NotFound", "Denied")
    with pytest.raises(Denied):
        service.grant_ward(session=session, actor=service.Actor.of(make_user("nurse")),
                           user=nurse, ward_id=wards["HEM"].id, reason="a nurse")  # fmt: skip


def test_the_database_refuses_to_change_a_grant(session, make_user, wards):
    nurse = make_user("nurse")
    event = service.grant_ward(session=session, actor=SYSTEM, user=nurse,
                               ward_id=wards["HEM"].id, reason="first")  # fmt: skip
    session.commit()
    for statement in (
        "UPDATE ward_grant SET granted = false WHERE id = :id",
        "DELETE FROM ward_grant WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only|refused"):
            with session.begin_nested():
                session.execute(text(statement), {"id": event.id})
    session.rollback()
    assert ward_scope(session, nurse, "SH-01") == {"HEM"}


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def test_the_admin_puts_a_nurse_on_a_ward_and_takes_her_off(
    client, login, session, make_user, wards
):
    admin = make_user("admin", username="sun.hao")
    nurse = make_user("nurse", username="li.na")
    pharmacist = make_user("pharmacist", username="chen.jie")
    login(admin)
    users = client.get("/admin/users").get_data(as_text=True)
    assert f'href="/admin/users/{nurse.id}/wards"' in users
    assert f'href="/admin/users/{pharmacist.id}/wards"' not in users  # the whole site
    page = client.get(f"/admin/users/{nurse.id}/wards")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "On no ward" in html
    assert "HEM — Haematology" in html and "ONC" not in html  # only the nurse's sites
    url = f"/admin/users/{nurse.id}/wards"
    refused = client.post(
        url + "/grant", data={"csrf_token": _token(html), "ward": wards["HEM"].id}
    )
    assert refused.status_code == 422 and "give a reason" in refused.get_data(as_text=True).lower()
    done = client.post(url + "/grant", data={"csrf_token": _token(html), "ward": wards["HEM"].id,
                                             "reason": "haematology nurse"})  # fmt: skip
    assert done.status_code == 302
    html = client.get(url).get_data(as_text=True)
    assert "li.na is now on ward HEM." in html
    held = html.split('data-testid="held-wards"')[1].split("</section>")[0]
    assert 'data-ward="HEM"' in held
    assert "haematology nurse" in html and "put on the ward" in html
    assert "SH-01 HEM" in client.get("/admin/users").get_data(as_text=True)
    client.post(url + "/revoke", data={"csrf_token": _token(html), "ward": wards["HEM"].id,
                                       "reason": "left the ward"})  # fmt: skip
    html = client.get(url).get_data(as_text=True)
    assert "li.na is no longer on ward HEM." in html and "taken off the ward" in html
    assert 'data-ward="HEM"' not in html.split('data-testid="held-wards"')[1].split("</section>")[0]
    session.expire_all()
    assert ward_scope(session, nurse, "SH-01") == frozenset()


def test_another_sites_user_is_missing_on_the_ward_page(client, login, make_user, wards):
    login(make_user("admin"))
    stranger = make_user("nurse", sites=("BJ-02",))
    assert client.get(f"/admin/users/{stranger.id}/wards").status_code == 404
    assert client.get("/admin/users/987654/wards").status_code == 404
