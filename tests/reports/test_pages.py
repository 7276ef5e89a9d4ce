"""The report pages as a quality officer, a regulator and an anonymous holder use them."""

from __future__ import annotations

import io

import pytest
from sqlmodel import select

from qms.accounts.models import Site, User
from qms.reports import files
from qms.reports.models import ReportVersion

OFFICER, REGULATOR = ("liu.yang", "demo-quality-2026"), ("zhao.lei", "demo-regulator-2026")


@pytest.fixture
def signed_in(demo, client, login, demo_keys):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # the demonstration site reads Chinese

    def as_(who):
        user = demo.exec(select(User).where(User.username == who[0])).one()
        client.post("/logout", data={"csrf_token": _token(client)})
        response = login(user, who[1])
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        return user

    return as_


def _token(client) -> str:
    import re

    page = client.get("/check-report").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _generate(client, **form):
    data = {"csrf_token": _token(client), "language": "en", "site": "SH-01", **form}
    return client.post("/reports/generate", data=data)


def _versions(session):
    return session.exec(select(ReportVersion).order_by(ReportVersion.version)).all()


def test_officer_generates_previews_and_approves_with_password(signed_in, client, demo):
    signed_in(OFFICER)
    response = _generate(client, type="unit-dossier", unit="K-2026-001")
    assert response.status_code == 302
    (draft,) = _versions(demo)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert draft.id in page and "draft" in page
    png = client.get(f"/reports/preview/{draft.id}")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    wrong = client.post(
        f"/reports/approve/{draft.id}", data={"csrf_token": _token(client), "password": "nope"}
    )
    assert wrong.status_code == 302 and len(_versions(demo)) == 1
    right = client.post(
        f"/reports/approve/{draft.id}",
        data={"csrf_token": _token(client), "password": OFFICER[1]},
    )
    assert right.status_code == 302
    draft_row, approved = _versions(demo)
    assert approved.approves_id == draft.id and approved.approved_at is not None
    listing = client.get("/reports/").get_data(as_text=True)
    assert "superseded by version 2" in listing


def test_regulator_sees_only_approved_reports_of_their_sites(signed_in, client, demo, settings):
    signed_in(OFFICER)
    _generate(client, type="unit-dossier", unit="K-2026-001")
    (draft,) = _versions(demo)
    client.post(
        f"/reports/approve/{draft.id}",
        data={"csrf_token": _token(client), "password": OFFICER[1]},
    )
    _generate(client, type="unit-dossier", unit="Y-2026-002")
    approved = next(r for r in _versions(demo) if r.approved_at is not None)
    unapproved = next(r for r in _versions(demo) if r.scope == "Y-2026-002")
    signed_in(REGULATOR)
    listing = client.get("/reports/").get_data(as_text=True)
    assert approved.id in listing and unapproved.id not in listing and draft.id not in listing
    assert client.get(f"/reports/v/{unapproved.id}").status_code == 404
    download = client.get(f"/reports/download/{approved.id}")
    assert download.status_code == 200 and download.data.startswith(b"%PDF-")
    assert client.get(f"/reports/preview/{approved.id}").status_code == 403
    checked = client.post(
        "/reports/check",
        data={"csrf_token": _token(client), "file": (io.BytesIO(download.data), "r.pdf")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "genuine" in checked and approved.id in checked
    # Another site's approved report answers like a missing one.
    demo.add(Site(id="BJ-01", name="Beijing"))
    demo.flush()
    demo.connection().exec_driver_sql("SELECT 1")
    other = demo.exec(select(User).where(User.username == REGULATOR[0])).one()
    from qms.accounts.models import UserSite

    membership = demo.exec(select(UserSite).where(UserSite.user_id == other.id)).one()
    demo.delete(membership)
    demo.add(UserSite(user_id=other.id, site_id="BJ-01"))
    demo.commit()
    assert client.get(f"/reports/v/{approved.id}").status_code == 404
    assert client.get(f"/reports/download/{approved.id}").status_code == 404


def test_public_check_says_only_registered_which_and_superseded(signed_in, client, demo, settings):
    signed_in(OFFICER)
    _generate(client, type="unit-dossier", unit="K-2026-001")
    (draft,) = _versions(demo)
    client.post(
        f"/reports/approve/{draft.id}",
        data={"csrf_token": _token(client), "password": OFFICER[1]},
    )
    client.post("/logout", data={"csrf_token": _token(client)})
    content = (files.reports_dir(settings) / draft.file_name).read_bytes()

    def check(blob: bytes) -> str:
        return client.post(
            "/check-report",
            data={"csrf_token": _token(client), "file": (io.BytesIO(blob), "r.pdf")},
            content_type="multipart/form-data",
        ).get_data(as_text=True)

    page = check(content)
    assert draft.id in page and "Superseded by" in page
    assert "P-0042" not in page
    assert "not registered" in check(content[:-10] + b"0000000000")


def test_officer_generates_a_site_monthly_report_from_a_new_audit_run(signed_in, client, demo):
    from zoneinfo import ZoneInfo

    from qms.quality.models import AuditRun
    from qms.records.models import Unit

    signed_in(OFFICER)
    unit = demo.get(Unit, "K-2026-001")
    period = unit.registered_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    response = _generate(client, type="site-monthly", period=period, language="zh")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    (row,) = _versions(demo)
    (run,) = demo.exec(select(AuditRun)).all()
    assert row.type == "site-monthly" and row.audit_run_id == run.id and row.period == period
    bad = _generate(client, type="site-monthly", period="2026-13")
    assert bad.status_code == 302 and len(_versions(demo)) == 1


def test_officer_generates_the_regional_report_of_the_demo_region(signed_in, client, demo):
    from zoneinfo import ZoneInfo

    from qms.quality.models import AuditRun
    from qms.records.models import Unit
    from qms.reports.models import ReportSite

    signed_in(OFFICER)
    page = client.get("/reports/").get_data(as_text=True)
    assert 'value="SH-XH"' in page  # the demonstration region is offered
    year = demo.get(Unit, "K-2026-001").registered_at.astimezone(ZoneInfo("Asia/Shanghai")).year
    response = _generate(client, type="regional-annual", region="SH-XH", period=str(year))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    (row,) = _versions(demo)
    (run,) = demo.exec(select(AuditRun)).all()
    assert row.type == "regional-annual" and row.scope == "SH-XH" and row.period == str(year)
    assert json_scope(run) == (f"{year}-01-01", f"{year}-12-31")
    assert [r.site_id for r in demo.exec(select(ReportSite)).all()] == ["SH-01"]
    for bad in ({"region": "SH-XH", "period": "2026-10"}, {"region": "NOPE", "period": "2026"}):
        answer = _generate(client, type="regional-annual", **bad)
        assert answer.status_code == 302 and len(_versions(demo)) == 1


def json_scope(run) -> tuple[str, str]:
    import json

    scope = json.loads(run.scope)
    return scope["from"], scope["to"]
