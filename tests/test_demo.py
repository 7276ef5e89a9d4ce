"""The demonstration data is real data: recorded through the services, chained, checked."""

from __future__ import annotations

import pytest
from sqlmodel import select

from qms.core.verify import verify
from qms.db import utcnow
from qms.demo import load_demo
from qms.records import queries
from qms.records.models import StepRecord, Unit
from qms.web.registry import get_registry


@pytest.fixture(autouse=True)
def _english_browser(client):
    # The demonstration site's pages are in Chinese by default; these tests read them as a
    # browser set to English does (tests/test_i18n.py covers the Chinese pages).
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"


def test_demo_records_are_chained_signed_and_pass_their_checklists(app, session):
    load_demo(session=session)
    session.flush()
    report = verify(session.connection())
    assert report.ok, report.problems
    assert report.records > 40
    units = {u.id: u for u in session.exec(select(Unit))}
    assert set(units) == {"K-2026-001", "Y-2026-002"}
    correction = session.exec(select(StepRecord).where(StepRecord.corrects_id.is_not(None))).one()
    assert "typing error" in correction.reason
    with app.app_context():
        registry = get_registry()
    finished = queries.assess_unit(session, registry, units["K-2026-001"], now=utcnow())
    assert finished.findings == []
    in_freezer = queries.assess_unit(session, registry, units["Y-2026-002"], now=utcnow())
    assert in_freezer.findings == []
    assert in_freezer.due[0].step == "storage_out"


def test_nurse_sees_units_and_the_corrected_record(app, client, session, csrf_from):
    load_demo(session=session)
    session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post(
        "/login", data={"username": "li.na", "password": "demo-nurse-2026", "csrf_token": token}
    )
    listing = client.get("/units").get_data(as_text=True)
    assert "K-2026-001" in listing and "Y-2026-002" in listing
    assert "Released from storage to the ward is due next." in listing
    page = client.get("/units/K-2026-001").get_data(as_text=True)
    assert "Checks now" in page and "no findings" in page
    # The original stays visible beside its correction, with who, when and why.
    assert "150" in page and "typing error: the pump ran at 15 mL/min" in page
    assert "corrects K-2026-001#10" in page


def test_regulator_cannot_open_unit_records(client, session, make_user, login):
    load_demo(session=session)
    login(make_user("regulator"))
    assert client.get("/units").status_code == 403
    assert client.get("/units/K-2026-001").status_code == 403


def _sign_in(client, csrf_from, username, password):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def test_quality_officer_closes_an_unfinished_unit_with_a_signed_reason(client, session, csrf_from):
    from qms.records.status import status_of

    load_demo(session=session)
    session.commit()
    _sign_in(client, csrf_from, "liu.yang", "demo-quality-2026")
    page = client.get("/units/Y-2026-002").get_data(as_text=True)
    assert 'data-testid="status-form"' in page
    token = csrf_from(page)
    form = {"status": "complete", "password": "demo-quality-2026", "csrf_token": token}
    refused = client.post("/units/Y-2026-002/status", data=form, follow_redirects=True)
    assert "breaks" in refused.get_data(as_text=True) and "give a reason" in refused.get_data(
        as_text=True
    )
    session.expire_all()
    assert status_of(session, "Y-2026-002") == "in_progress"
    form["reason"] = "product returned to the manufacturer; patient not infused"
    done = client.post("/units/Y-2026-002/status", data=form, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "Unit Y-2026-002 is now complete." in text
    assert "Liu Yang" in text and "product returned to the manufacturer" in text
    session.expire_all()
    assert status_of(session, "Y-2026-002") == "complete"
    # The missing steps are now findings of the finished unit.
    assert "yescarta.storage_out.done" in text and "yescarta.infusion_end.done" in text


def test_wrong_signing_passwords_on_the_page_lock_the_account(client, session, csrf_from, app):
    from sqlmodel import select as sql_select

    from qms.accounts.models import LoginEvent

    load_demo(session=session)
    session.commit()
    _sign_in(client, csrf_from, "liu.yang", "demo-quality-2026")
    token = csrf_from(client.get("/units/Y-2026-002").get_data(as_text=True))
    threshold = app.extensions["qms_settings"].lockout_threshold
    for _ in range(threshold):
        response = client.post(
            "/units/Y-2026-002/status",
            data={
                "status": "cancelled",
                "reason": "test",
                "password": "guess",
                "csrf_token": token,
            },
            follow_redirects=True,
        )
        assert "wrong password" in response.get_data(as_text=True)
    kinds = session.exec(sql_select(LoginEvent.kind).where(LoginEvent.username == "liu.yang")).all()
    assert kinds.count("sign_failure") == threshold
    locked = client.post(
        "/units/Y-2026-002/status",
        data={
            "status": "cancelled",
            "reason": "test",
            "password": "demo-quality-2026",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert "locked" in locked.get_data(as_text=True)
