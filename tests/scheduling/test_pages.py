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
    # No generator makes a quarterly site report yet: refused with one message.
    quarterly = client.post("/schedules", data=form, headers={"Accept-Language": "en"})
    assert quarterly.status_code == 400
    assert "no generator makes site-monthly reports for quarterly periods yet" in (
        quarterly.get_data(as_text=True)
    )
    form = {**form, "cadence": "monthly", "first_period": "2026-09"}
    added = client.post("/schedules", data=form, headers={"Accept-Language": "en"})
    assert added.status_code == 302
    html = client.get("/schedules", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "SCH-SH-01-2" in html and "monthly, day 5 at 09:00" in html
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


def test_a_quality_officer_edits_and_retires_a_schedule_and_sees_its_history(
    client, login, make_user, make_schedule, csrf_from
):
    make_schedule()
    login(make_user("quality_officer"))
    en = {"Accept-Language": "en"}
    page = client.get("/schedules?edit=SCH-SH-01-1", headers=en).get_data(as_text=True)
    assert "Change schedule SCH-SH-01-1" in page
    token = csrf_from(page)
    form = {
        "csrf_token": token,
        "schedule_id": "SCH-SH-01-1",
        "report_type": "site-monthly",
        "site_id": "SH-01",
        "cadence": "monthly",
        "day": "7",
        "at": "08:00",
        "language": "en",
        "recipients": "bureau@example.org",
        "regulators": "",
        "first_period": "2026-08",
    }
    no_reason = client.post("/schedules/edit", data=form, headers=en)
    assert no_reason.status_code == 400
    assert "a change of a schedule needs a reason" in no_reason.get_data(as_text=True)
    edited = client.post("/schedules/edit", data={**form, "reason": "bureau asks"}, headers=en)
    assert edited.status_code == 302
    retire = {"csrf_token": token, "schedule_id": "SCH-SH-01-1", "reason": "site closes"}
    assert client.post("/schedules/retire", data=retire, headers=en).status_code == 302
    html = client.get("/schedules", headers=en).get_data(as_text=True)
    assert "monthly, day 7 at 08:00" in html
    assert "edited" in html and "bureau asks" in html and "site closes" in html
    assert 'data-status="retired"' in html
    again = client.post("/schedules/retire", data=retire, headers=en)
    assert again.status_code == 400 and "is retired" in again.get_data(as_text=True)
    settings = {"csrf_token": token, "site_id": "SH-01", "logger_gap_minutes": "45",
                "quality_address": "quality@hospital.example", "reason": "set up"}  # fmt: skip
    assert client.post("/schedules/settings", data=settings, headers=en).status_code == 302
    html = client.get("/schedules", headers=en).get_data(as_text=True)
    assert "quality@hospital.example" in html and ">45<" in html
    bad = client.post(
        "/schedules/settings", data={**settings, "logger_gap_minutes": "0"}, headers=en
    )
    assert bad.status_code == 400 and "between 5 and 1440" in bad.get_data(as_text=True)


def test_the_home_page_shows_a_failed_delivery_to_quality_officers_and_reminders_to_owners(
    client, login, session, settings, make_user, make_site
):
    from qms.delivery.mail import Answer
    from qms.delivery.service import _record
    from qms.scheduling import alerts
    from tests.reports.conftest import registered_dossier

    make_site("SH-01")
    officer = make_user("quality_officer")
    nurse = make_user("nurse")
    other_nurse = make_user("nurse")
    now = datetime(2026, 11, 2, tzinfo=UTC)
    from qms.checklists.language import Registry
    from tests.web.test_access_matrix import CHECKLISTS, _unit

    unit = _unit(session, Registry.from_directory(CHECKLISTS), nurse, "U-HOME-1", "SH-01", now=now)
    report = registered_dossier(session, settings, unit, officer, now)
    (delivery,) = ensure_deliveries(session=session, report=report, recipients=["b@example.org"],
                                    regulators=[], language="en", schedule_run_id=None, now=now)  # fmt: skip
    _record(session, delivery, 1, now, Answer("permanent", 550, "5.1.1 Mailbox unavailable"))
    alerts.raise_alert(session, alerts.ACTION_OVERDUE, site_id="SH-01", at=now,
                       users=[nurse.id], capa="CAPA-SH01-2026-0001", action="1",
                       title="Train the ward", owner=nurse.username, due=now.isoformat())  # fmt: skip
    session.commit()
    en = {"Accept-Language": "en"}
    login(officer)
    home = client.get("/", headers=en).get_data(as_text=True)
    assert 'data-testid="failed-deliveries"' in home
    assert "b@example.org" in home and "5.1.1 Mailbox unavailable" in home
    assert "Action 1 of CAPA-SH01-2026-0001 (Train the ward" in home
    _sign_out(client)
    login(nurse)
    home = client.get("/", headers=en).get_data(as_text=True)
    assert "Action 1 of CAPA-SH01-2026-0001" in home and "failed-deliveries" not in home
    _sign_out(client)
    login(other_nurse)
    home = client.get("/", headers=en).get_data(as_text=True)
    assert "CAPA-SH01-2026-0001" not in home and "scheduling-panel" not in home


def test_a_quality_officer_schedules_the_annual_report_of_a_region_of_their_sites(
    client, login, make_user, make_site, session, csrf_from
):
    from qms.regions.service import create_region, place_site

    make_site("SH-01")
    make_site("BJ-01", "Test Hospital, Beijing")
    # A site is in one region at most: the officer's SH-01 in R-OWN, BJ-01 in R-OTHER.
    for region, sites in (("R-OWN", ("SH-01",)), ("R-OTHER", ("BJ-01",))):
        create_region(session=session, region_id=region, name=region.title(), actor_id=None,
                      actor_name="t")  # fmt: skip
        for site in sites:
            place_site(session=session, region_id=region, site_id=site, actor_id=None,
                       actor_name="t")  # fmt: skip
    session.flush()
    officer = make_user("quality_officer")
    login(officer)
    html = client.get("/schedules", headers={"Accept-Language": "en"}).get_data(as_text=True)
    # Only the region whose every site is theirs is offered.
    assert 'value="R-OWN"' in html and 'value="R-OTHER"' not in html
    form = {
        "csrf_token": csrf_from(html),
        "report_type": "regional-annual",
        "site_id": "SH-01",
        "region_id": "R-OTHER",
        "cadence": "yearly",
        "day": "5",
        "at": "09:00",
        "language": "en",
        "recipients": "bureau@example.org",
        "regulators": "",
        "first_period": "2026",
    }
    refused = client.post("/schedules", data=form, headers={"Accept-Language": "en"})
    assert refused.status_code in (400, 403)
    form["region_id"] = "R-OWN"
    assert (
        client.post("/schedules", data=form, headers={"Accept-Language": "en"}).status_code == 302
    )
    html = client.get("/schedules", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "SCH-R-OWN-1" in html and "region R-OWN" in html and "yearly, day 5 at 09:00" in html
    zh = client.get("/schedules", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "区域 R-OWN" in zh
