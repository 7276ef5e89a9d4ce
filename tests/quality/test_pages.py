"""The quality pages as each role sees them: audits, review, deviations, CAPA, dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from qms.quality.models import AuditRun, Deviation, FindingReview
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0


@pytest.fixture
def site_data(session, make_user, late_infusion):
    late_infusion("U-1", minutes=45)
    late_infusion("U-2", minutes=50, at=T0 + timedelta(days=1))
    officer = make_user("quality_officer", username="qo.liu", full_name="Liu Yang")
    return officer


def _choose_site(client, csrf_from, site="SH-01"):
    token = csrf_from(client.get("/").get_data(as_text=True))
    client.post("/account/site", data={"site_id": site, "csrf_token": token})


def test_an_officer_runs_an_audit_reviews_and_follows_a_deviation(
    client, login, session, site_data, csrf_from
):
    login(site_data)
    page = client.get("/quality/runs")
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    token = csrf_from(page.get_data(as_text=True))
    made = client.post(
        "/quality/runs",
        data={"from": "2026-10-01", "to": "2026-10-31", "kind": "routine", "csrf_token": token},
    )
    assert made.status_code == 302
    run = session.exec(select(AuditRun)).one()
    html = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "2 units, 6 records, 2 findings" in html
    assert html.count('name="decision"') == 4  # two findings, two choices each
    assert "DEV-SH01-2026-0001" in html  # offered for linking
    review = client.post(
        f"/quality/runs/{run.id}/findings/1",
        data={
            "decision": "dismissed",
            "rationale": "the end time was mistyped",
            "password": DEFAULT_PASSWORD,
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert "Finding 2 reviewed." in review.get_data(as_text=True)
    assert "the end time was mistyped" in review.get_data(as_text=True)
    refused = client.post(
        f"/quality/runs/{run.id}/findings/0",
        data={"decision": "dismissed", "password": DEFAULT_PASSWORD, "csrf_token": token},
        follow_redirects=True,
    )
    assert "dismissing a finding needs a written rationale" in refused.get_data(as_text=True)
    assert len(session.exec(select(FindingReview)).all()) == 1
    deviation = client.get("/quality/deviations/DEV-SH01-2026-0001").get_data(as_text=True)
    assert "pump alarm delayed the start" in deviation and "Recurrence" in deviation
    # Opened by a finding, it is titled by what its rule says, never by the rule's id.
    listed = client.get("/quality/deviations").get_data(as_text=True)
    for html in (deviation, listed):
        assert "Infuse within 30 minutes of the end of the thaw." in html
        assert "testcart.thaw_to_infusion" not in html
    second = client.get("/quality/deviations/DEV-SH01-2026-0002").get_data(as_text=True)
    assert "DEV-SH01-2026-0001" in second.split("Recurrence")[1]
    dashboard = client.get("/quality/dashboard").get_data(as_text=True)
    assert dashboard.count("<svg") == 5 and dashboard.count("<figure") == 5
    assert "testcart: testcart.thaw_to_infusion (minutes)" in dashboard
    assert "style=" not in dashboard and "<script" not in dashboard
    home = client.get("/").get_data(as_text=True)
    assert 'data-testid="quality-panel"' in home


def test_what_other_roles_see(client, login, session, site_data, make_user, csrf_from):
    nurse = make_user("nurse", username="nurse.zhao")
    login(nurse)
    assert client.get("/quality/runs").status_code == 403
    listed = client.get("/quality/deviations")
    assert listed.status_code == 200 and "DEV-SH01-2026-0001" in listed.get_data(as_text=True)
    assert client.get("/quality/deviations/DEV-SH01-2026-0001").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    admin = make_user("admin", username="admin.sun")
    login(admin)
    # Admins see the site's unit records, so its deviations too (read only).
    assert client.get("/quality/deviations").status_code == 200
    assert client.get("/quality/deviations/DEV-SH01-2026-0001").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    regulator = make_user("regulator", username="reg.xu")
    login(regulator)
    page = client.get("/quality/oversight").get_data(as_text=True)
    assert "DEV-SH01-2026-0001" not in page  # opened by a step, not yet confirmed
    assert "P-0042" not in page
    assert client.get("/quality/deviations").status_code == 403


def test_another_sites_objects_answer_as_missing(
    client, login, session, registry, site_data, make_user
):
    from qms.quality import audits

    audits.run_audit(
        session=session,
        registry=registry,
        by=site_data,
        scope=audits.AuditScope(site_id="SH-01"),
        now=T0 + timedelta(days=3),
    )
    stranger = make_user("quality_officer", username="qo.bj", sites=("BJ-02",))
    login(stranger)
    assert client.get("/quality/deviations/DEV-SH01-2026-0001").status_code == 404
    assert client.get("/quality/runs/AUD-SH01-2026-0001").status_code == 404
    assert client.get("/quality/capa/CAPA-SH01-2026-0001").status_code == 404
    assert re.search("DEV-SH01", client.get("/quality/deviations").get_data(as_text=True)) is None
    assert session.exec(select(Deviation)).all()


def test_an_officer_sets_the_sites_due_days(client, login, session, site_data, csrf_from):
    from qms.quality.parameters import site_parameters

    login(site_data)
    token = csrf_from(client.get("/quality/dashboard").get_data(as_text=True))
    done = client.post(
        "/quality/parameters",
        data={"name": "deviation_due_days", "value": "45", "reason": "", "csrf_token": token},
        follow_redirects=True,
    )
    assert "needs a reason" in done.get_data(as_text=True)
    done = client.post(
        "/quality/parameters",
        data={
            "name": "deviation_due_days",
            "value": "45",
            "reason": "external deviations",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert "Quality parameter set." in done.get_data(as_text=True)
    assert site_parameters(session, "SH-01")["deviation_due_days"] == 45
    forged = client.post(
        "/quality/deviations/DEV-SH01-2026-0001/events",
        data={"action": "linked", "password": DEFAULT_PASSWORD, "csrf_token": token},
        follow_redirects=True,
    )
    assert forged.status_code == 200
    assert "linked from its audit run" in forged.get_data(as_text=True)


def test_a_wrong_password_opening_a_deviation_counts_under_the_sites_lockout(
    app, client, login, session, site_data, csrf_from
):
    """Every signing form counts a refused signature towards the lockout, with the
    configured threshold (here 2), not the default of 5."""
    from qms.accounts.models import LoginEvent
    from qms.accounts.service import lock_state

    app.extensions["qms_settings"] = app.extensions["qms_settings"].with_(lockout_threshold=2)
    login(site_data)
    token = csrf_from(client.get("/quality/deviations").get_data(as_text=True))
    form = {
        "title": "Bag left at room temperature",
        "description": "found on the bench",
        "classification": "major",
        "units": "U-1",
        "password": "not-my-password",
        "csrf_token": token,
    }
    for _attempt in range(2):
        refused = client.post("/quality/deviations", data=form, follow_redirects=True)
        assert refused.status_code == 200
    assert session.exec(select(Deviation).where(Deviation.title == form["title"])).all() == []
    kinds = session.exec(
        select(LoginEvent.kind).where(LoginEvent.username == site_data.username)
    ).all()
    assert kinds.count("sign_failure") == 2
    assert lock_state(session=session, username=site_data.username, threshold=2, minutes=30).locked


def test_an_officer_opens_a_capa_from_the_form_and_a_typo_is_a_message(
    client, login, session, site_data, csrf_from
):
    from qms.quality.models import Capa

    login(site_data)
    token = csrf_from(client.get("/quality/capa").get_data(as_text=True))
    form = {
        "title": "Pump training",
        "description": "retrain ward 5 on the infusion pump",
        "owner": site_data.username,
        "password": DEFAULT_PASSWORD,
        "csrf_token": token,
    }
    typo = client.post(
        "/quality/capa", data={**form, "deviations": "DEV-SH01-2026-9999"}, follow_redirects=True
    )
    assert typo.status_code == 200
    assert "there is no deviation DEV-SH01-2026-9999" in typo.get_data(as_text=True)
    assert session.exec(select(Capa)).all() == []
    made = client.post("/quality/capa", data={**form, "deviations": "DEV-SH01-2026-0001"})
    assert made.status_code == 302
    (opened,) = session.exec(select(Capa)).all()
    assert made.headers["Location"].endswith(f"/quality/capa/{opened.id}")
    page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert f"Opened {opened.id}." in page and "Pump training" in page
