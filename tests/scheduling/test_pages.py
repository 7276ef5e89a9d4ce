"""The schedules page and the regulators' portal, as their users see them."""

from __future__ import annotations

from datetime import UTC, datetime

from qms.accounts.service import Actor
from qms.delivery.service import ensure_deliveries


def _sign_out(client) -> None:
    """Drop the session cookie: the next sign-in is another person's."""
    for cookie in list(client._cookies):
        client.delete_cookie(cookie[2], domain=cookie[0], path=cookie[1])


def test_a_quality_officer_sees_and_adds_schedules_and_a_nurse_may_not(
    client, login, make_user, make_schedule, csrf_from
):
    make_schedule()
    officer = make_user("quality_officer")
    login(officer)
    page = client.get("/schedules?lang=en", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "SCH-SH-01-1" in html and "monthly, day 1 at 08:00" in html
    token = csrf_from(html)
    form = {
        "csrf_token": token,
        "report_type": "site-monthly",
        "site_id": "SH-01",
        "cadence": "quarterly",
        "day": "5",
        "at": "09:00",
        "language": "en",
        "recipients": "bureau@example.org",
        "regulators": "",
        "first_period": "2026-Q3",
    }
    added = client.post("/schedules", data=form, headers={"Accept-Language": "en"})
    assert added.status_code == 302
    html = client.get("/schedules", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "SCH-SH-01-2" in html and "quarterly, day 5 at 09:00" in html
    refused = client.post(
        "/schedules", data={**form, "recipients": "nobody"}, headers={"Accept-Language": "en"}
    )
    assert refused.status_code == 400 and "nobody is not an email address" in refused.get_data(
        as_text=True
    )
    _sign_out(client)
    nurse = make_user("nurse")
    login(nurse)
    assert client.get("/schedules").status_code == 403


def test_a_regulator_finds_a_released_report_in_the_portal_with_the_date_first_opened(
    client, login, session, settings, make_user
):
    from qms.demo import load_demo
    from qms.reports.keys import make_demo_keys
    from qms.reports.service import generate_report

    load_demo(session=session)
    make_demo_keys(settings, site_name="Demo")
    report = generate_report(
        session=session,
        settings=settings,
        who=Actor.system("test"),
        report_type="unit-dossier",
        scope="K-2026-001",
        language="en",
    )
    (delivery,) = ensure_deliveries(
        session=session,
        report=report,
        recipients=[],
        regulators=["zhao.lei"],
        language="en",
        schedule_run_id=None,
        now=datetime(2026, 11, 1, tzinfo=UTC),
    )
    session.commit()
    from sqlmodel import select

    from qms.accounts.models import User

    regulator = session.exec(select(User).where(User.username == "zhao.lei")).one()
    login(regulator, "demo-regulator-2026")
    portal = client.get("/portal", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert report.id in portal and "not opened yet" in portal
    opened = client.get(f"/portal/{delivery.id}")
    assert opened.status_code == 200 and opened.mimetype == "application/pdf"
    import hashlib

    assert hashlib.sha256(opened.data).hexdigest() == report.sha256
    portal = client.get("/portal", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "not opened yet" not in portal
    _sign_out(client)
    other = make_user("regulator")
    login(other)
    assert client.get(f"/portal/{delivery.id}").status_code == 404
    assert report.id not in client.get("/portal").get_data(as_text=True)
