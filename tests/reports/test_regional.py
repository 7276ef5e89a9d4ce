"""The regional annual report: two sites with known numbers, read back from the PDF."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pikepdf
import pytest
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core.errors import Denied, Invalid, NotFound
from qms.quality.audits import run_audit, run_json
from qms.records.signatures import PasswordEntry
from qms.regions.service import create_region, place_site
from qms.reports import data as report_data
from qms.reports import files, pdf, service
from qms.reports.models import ReportSite, ReportVersion
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0, late_infusion  # noqa: F401
from tests.records.conftest import log, make_unit, registry  # noqa: F401
from tests.reports.conftest import pdf_text

SECRETS = ("P-0042", "CHG123426ABC123", "P-7781", "P-7782", "CHG123426ZZZ999")


@pytest.fixture
def region(session, registry, late_infusion, make_site, make_unit, log, make_user):  # noqa: F811
    """Region R-1: SH-01 (a late and an on-time infusion in October) and BJ-01 (a late
    infusion in March, an identity mismatch in October, and an infusion in December 2025,
    outside the year); a run of 2026 each."""
    make_site("SH-01")
    make_site("BJ-01", "Test Hospital, Beijing")
    late_infusion("U-LATE", at=T0, minutes=45)
    late_infusion("U-OK", at=T0 + timedelta(days=3), minutes=10)
    late_infusion("B-MAR", at=T0 - timedelta(days=200), minutes=50, site="BJ-01")
    late_infusion("B-2025", at=T0 - timedelta(days=300), minutes=50, site="BJ-01")
    nurse = make_user("nurse", sites=("BJ-01",))
    mismatch = make_unit(
        unit_id="B-ID",
        by=nurse,
        site="BJ-01",
        at=T0 - timedelta(hours=3),
        patient_ref="P-7781",
        coi_id="CHG123426ZZZ999",
    )
    log(
        mismatch,
        "identity_check",
        by=nurse,
        witness=make_user("physician", sites=("BJ-01",)),
        at=T0 - timedelta(hours=1),
        fields={"product_patient_id": "P-7781", "wristband_patient_id": "P-7782"},
        reason="wristband reprinted; checked again at the bedside",
        now=T0 - timedelta(hours=1),
    )
    create_region(session=session, region_id="R-1", name="East", actor_id=None, actor_name="t")
    for site in ("SH-01", "BJ-01"):
        place_site(session=session, region_id="R-1", site_id=site, actor_id=None, actor_name="t")
    runs = {
        site: run_audit(
            session=session,
            registry=registry,
            by=Actor.system("test"),
            scope=service.year_scope(site, "2026"),
            now=T0 + timedelta(days=60),
        )
        for site in ("SH-01", "BJ-01")
    }
    session.flush()
    return runs


def _officer_of_every_site(session, make_user):
    """A quality officer of the hospital group: of both sites of the region."""
    return make_user("quality_officer", sites=("SH-01", "BJ-01"))


def _generate(session, settings, runs, language="en", who=None):
    row = service.generate_report(
        session=session,
        settings=settings,
        who=who or Actor.system("test"),
        report_type="regional-annual",
        scope="R-1",
        period="2026",
        language=language,
        audit_run_ids={site: run.id for site, run in runs.items()},
    )
    return row, (files.reports_dir(settings) / row.file_name).read_bytes()


def test_known_numbers_of_two_sites(region, session, settings, demo_keys):
    row, content = _generate(session, settings, region)
    data = json.loads(pdf.attachments(content)["report.json"])["data"]
    assert [s["id"] for s in data["sites"]] == ["BJ-01", "SH-01"]
    volumes = {(v["site"], v["checklist"]): (v["units"], v["doses"]) for v in data["volumes"]}
    assert volumes == {("BJ-01", "testcart"): (2, 1), ("SH-01", "testcart"): (2, 2)}
    compliance = {c["site"]: c["compliant_percent"] for c in data["compliance"]}
    assert compliance == {"BJ-01": 0.0, "SH-01": 50.0}
    severity = {s["site"]: s for s in data["findings_by_severity"]}
    assert severity["SH-01"] == {"site": "SH-01", "critical": 0, "major": 1, "minor": 0}
    assert severity["BJ-01"]["major"] == 1 and severity["BJ-01"]["critical"] >= 1
    trends = {t["site"]: t for t in data["trends"]}
    assert trends["SH-01"]["units"][9] == 2 and sum(trends["SH-01"]["units"]) == 2
    assert trends["BJ-01"]["units"][2] == 1 and trends["BJ-01"]["units"][9] == 1
    assert sum(trends["BJ-01"]["units"]) == 2
    assert trends["SH-01"]["compliant_percent"][9] == 50.0
    assert trends["BJ-01"]["compliant_percent"][0] is None
    # Built from one run per site, named in the data and the registry's covered sites.
    assert {r["site"]: r["id"] for r in data["audit_runs"]} == {s: r.id for s, r in region.items()}
    assert service.covered_sites(session, row) == ("BJ-01", "SH-01")
    heads = [json.loads(r.covers)["seq"] for r in region.values()]
    assert row.ledger_head_seq == max(heads)
    text = pdf_text(content)
    assert "Regional annual report" in text and "East" in text
    assert "Units and doses administered per site" in text  # the charts' captions
    for site in ("SH-01", "BJ-01"):
        assert region[site].id in text


def test_attachments_are_the_audit_runs_json_masked(region, session, settings, demo_keys):
    row, content = _generate(session, settings, region)
    attached = pdf.attachments(content)
    document = json.loads(attached["report.json"])
    for site, run in region.items():
        assert run_json(run)["findings"], "each run found the late infusion"
        secrets = report_data.sensitive_values(
            session, ["B-ID", "B-MAR", "U-LATE", "U-OK"], row.ledger_head_seq
        )
        assert document["data"]["audits"][site] == report_data.scrub(run_json(run), secrets)
    lines = attached["report.csv"].decode("utf-8").splitlines()
    assert lines[0].startswith("site,audit_run,unit,rule")
    assert len(lines) - 1 == sum(len(run_json(r)["findings"]) for r in region.values())
    assert service.verify_file(session, settings, content).ok


def test_no_patient_reference_or_coi_id_in_clear(region, session, settings, demo_keys):
    raw = json.dumps([run_json(r) for r in region.values()], ensure_ascii=False)
    assert any(secret in raw for secret in SECRETS)  # the runs themselves name them
    for language in ("en", "zh"):
        _, content = _generate(session, settings, region, language)
        attached = pdf.attachments(content)
        everything = [pdf_text(content), *(b.decode("utf-8") for b in attached.values())]
        for secret in SECRETS:
            for part in everything:
                assert secret not in part, (language, secret)
        assert "••7781" in attached["report.json"].decode()  # masked to its last four


def test_pdf_a3_fonts_xmp_and_signature(region, session, settings, demo_keys):
    row, content = _generate(session, settings, region, "zh")
    assert pdf.pdfa_problems(content) == []
    with pikepdf.open(__import__("io").BytesIO(content)) as document:
        meta = document.open_metadata()
        assert meta.get("pdfaid:part") == "3"
    props = pdf.xmp_properties(content)
    assert props["reportId"] == row.id and props["reportType"] == "regional-annual"
    assert props["scope"] == "R-1" and props["period"] == "2026"
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()
    (seal,) = pdf.check_signatures(content, [ca])
    assert seal.ok and seal.covers_whole_file
    text = pdf_text(content)
    assert "区域年度报告" in text and "第 1 页" in text


def test_approved_regional_report_names_itself_in_its_xmp(
    region, session, settings, demo_keys, make_user
):
    officer = _officer_of_every_site(session, make_user)
    draft, _ = _generate(session, settings, region)
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=officer,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
    )
    content = (files.reports_dir(settings) / approved.file_name).read_bytes()
    assert pdf.xmp_properties(content)["reportId"] == approved.id != draft.id
    assert pdf.pdfa_problems(content) == []
    assert service.covered_sites(session, approved) == ("BJ-01", "SH-01")
    result = service.verify_file(session, settings, content)
    assert result.ok, [c for c in result.checks if not c.ok]


def test_only_people_of_every_site_generate_or_see_it(
    region, session, settings, demo_keys, make_user
):
    officer_one = make_user("quality_officer", sites=("SH-01",))
    with pytest.raises(Denied):
        _generate(session, settings, region, who=officer_one)
    officer = _officer_of_every_site(session, make_user)
    draft, _ = _generate(session, settings, region, who=officer)
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=officer,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
    )
    one_site = make_user("regulator", sites=("SH-01",))
    both = make_user("regulator", sites=("SH-01", "BJ-01"))
    from qms.accounts.roles import Permission

    with pytest.raises(NotFound):
        service.visible_version(session, one_site, approved.id, permission=Permission.VIEW_REPORTS)
    assert approved.id not in [r.id for r in service.list_versions(session, one_site)]
    assert approved.id in [r.id for r in service.list_versions(session, both)]
    assert service.visible_version(session, both, approved.id, permission=Permission.VIEW_REPORTS)
    with pytest.raises(NotFound):  # the draft: regulators see approved versions only
        service.visible_version(session, both, draft.id, permission=Permission.VIEW_REPORTS)


def test_a_regulator_of_one_site_gets_404_on_the_pages(
    region, session, settings, demo_keys, make_user, client, login
):
    officer = _officer_of_every_site(session, make_user)
    draft, _ = _generate(session, settings, region, who=officer)
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=officer,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
    )
    session.flush()
    one_site = make_user("regulator", sites=("SH-01",))
    login(one_site)
    assert approved.id not in client.get("/reports/").get_data(as_text=True)
    assert client.get(f"/reports/v/{approved.id}").status_code == 404
    assert client.get(f"/reports/download/{approved.id}").status_code == 404


def test_bad_requests_store_nothing(region, session, settings, demo_keys):
    runs = {site: run.id for site, run in region.items()}
    cases = [
        ({"scope": "R-404", "period": "2026", "audit_run_ids": runs}, NotFound),
        ({"scope": "R-1", "period": "2026-10", "audit_run_ids": runs}, Invalid),
        ({"scope": "R-1", "period": "2026", "audit_run_ids": {"SH-01": runs["SH-01"]}}, Invalid),
        (
            {"scope": "R-1", "period": "2026", "audit_run_ids": {**runs, "BJ-01": runs["SH-01"]}},
            NotFound,
        ),
    ]
    for request, error in cases:
        with pytest.raises(error):
            service.generate_report(
                session=session,
                settings=settings,
                who=Actor.system("test"),
                report_type="regional-annual",
                language="en",
                **request,
            )
    assert session.exec(select(ReportVersion)).all() == []
    assert session.exec(select(ReportSite)).all() == []


def test_a_run_of_another_period_is_refused(region, session, settings, registry, demo_keys):  # noqa: F811
    october = run_audit(
        session=session,
        registry=registry,
        by=Actor.system("test"),
        scope=service.month_scope("SH-01", "2026-10"),
        now=T0 + timedelta(days=60),
    )
    with pytest.raises(Invalid, match="does not cover the year"):
        service.generate_report(
            session=session,
            settings=settings,
            who=Actor.system("test"),
            report_type="regional-annual",
            scope="R-1",
            period="2026",
            audit_run_ids={"SH-01": october.id, "BJ-01": region["BJ-01"].id},
        )


@pytest.mark.parametrize("language", ["en", "zh"])
def test_page_one_picture(region, session, settings, demo_keys, language, tmp_path):
    _, content = _generate(session, settings, region, language)
    source = tmp_path / "regional.pdf"
    source.write_bytes(content)
    stem = tmp_path / f"regional-{language}"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", source, stem],
        check=True,
    )
    png = stem.with_suffix(".png")
    assert png.stat().st_size > 10_000
    keep = __import__("os").environ.get("QMS_KEEP_PICTURES")
    if keep:  # QMS_KEEP_PICTURES=/tmp/x: copy the picture to look at it
        __import__("shutil").copy(png, f"{keep}/regional-{language}.png")


def _token(client) -> str:
    import re

    page = client.get("/check-report").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _sign_in(client, login, user):
    client.post("/logout", data={"csrf_token": _token(client)})
    assert login(user).status_code == 302


def test_a_group_quality_officer_generates_approves_and_signs_it_in_the_app(
    region, session, settings, demo_keys, make_user, client, login
):
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    officer = _officer_of_every_site(session, make_user)
    one_site = make_user("quality_officer", sites=("SH-01",))
    _sign_in(client, login, officer)
    assert 'value="R-1"' in client.get("/reports/").get_data(as_text=True)
    form = {"type": "regional-annual", "region": "R-1", "period": "2026", "language": "en"}
    made = client.post("/reports/generate", data={**form, "csrf_token": _token(client)})
    assert made.status_code == 302, made.get_data(as_text=True)[:300]
    (draft,) = session.exec(select(ReportVersion)).all()
    assert service.covered_sites(session, draft) == ("BJ-01", "SH-01")

    # A quality officer of one of the two sites: not offered, not shown, refused.
    _sign_in(client, login, one_site)
    listing = client.get("/reports/").get_data(as_text=True)
    assert 'value="R-1"' not in listing and draft.id not in listing
    assert client.get(f"/reports/v/{draft.id}").status_code == 404
    refused = client.post(
        f"/reports/approve/{draft.id}",
        data={"csrf_token": _token(client), "password": DEFAULT_PASSWORD},
    )
    assert refused.status_code == 404
    again = client.post("/reports/generate", data={**form, "csrf_token": _token(client)})
    assert again.status_code == 403
    with pytest.raises(NotFound):
        service.approve_report(
            session=session,
            settings=settings,
            version_id=draft.id,
            by=one_site,
            credential=PasswordEntry(DEFAULT_PASSWORD),
            freshness_minutes=5,
        )
    assert len(session.exec(select(ReportVersion)).all()) == 1

    _sign_in(client, login, officer)
    approved = client.post(
        f"/reports/approve/{draft.id}",
        data={"csrf_token": _token(client), "password": DEFAULT_PASSWORD},
    )
    assert approved.status_code == 302
    row = session.exec(select(ReportVersion).where(ReportVersion.approves_id == draft.id)).one()
    assert row.approved_by_id == officer.id and row.approval_method == "password"
    assert service.covered_sites(session, row) == ("BJ-01", "SH-01")
    content = (files.reports_dir(settings) / row.file_name).read_bytes()
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()
    seal, approval = pdf.check_signatures(content, [ca])
    assert seal.ok and approval.ok and approval.covers_whole_file
    assert approval.field == "qms-approval"
    assert service.verify_file(session, settings, content).ok
    # A regulator of both sites now sees the approved version, one of one site does not.
    both = make_user("regulator", sites=("SH-01", "BJ-01"))
    _sign_in(client, login, both)
    assert row.id in client.get("/reports/").get_data(as_text=True)
    assert client.get(f"/reports/download/{row.id}").data == content
