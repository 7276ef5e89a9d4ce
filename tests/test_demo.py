"""The demonstration data is real data: recorded through the services, chained, checked."""

from __future__ import annotations

from sqlmodel import select

from qms.db import utcnow
from qms.demo import load_demo
from qms.records import ledger, service
from qms.records.models import StepRecord, Unit
from qms.web.registry import get_registry


def test_demo_records_are_chained_signed_and_pass_their_checklists(app, session):
    load_demo(session=session)
    session.flush()
    report = ledger.verify(session.connection())
    assert report.ok, report.problems
    assert report.records > 40
    units = {u.id: u for u in session.exec(select(Unit))}
    assert set(units) == {"K-2026-001", "Y-2026-002"}
    correction = session.exec(select(StepRecord).where(StepRecord.corrects_id.is_not(None))).one()
    assert "typing error" in correction.reason
    with app.app_context():
        registry = get_registry()
    finished = service.assess_unit(session, registry, units["K-2026-001"], now=utcnow())
    assert finished.findings == []
    in_freezer = service.assess_unit(session, registry, units["Y-2026-002"], now=utcnow())
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
    assert "Released from storage to the ward (storage_out) is due next." in listing
    page = client.get("/units/K-2026-001").get_data(as_text=True)
    assert "Checks now" in page and "no findings" in page
    # The original stays visible beside its correction, with who, when and why.
    assert "150" in page and "typing error: the pump ran at 15 mL/min" in page
    assert "corrects K-2026-001#9" in page


def test_regulator_cannot_open_unit_records(client, session, make_user, login):
    load_demo(session=session)
    login(make_user("regulator"))
    assert client.get("/units").status_code == 403
    assert client.get("/units/K-2026-001").status_code == 403
