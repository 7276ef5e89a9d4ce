"""The site monthly report's blocks beyond the counts: charts, CAPA status, excursions
with their acknowledgements, and who prepared it; and the approved file's XMP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from qms.accounts.models import User
from qms.accounts.service import Actor
from qms.quality import capa as cp
from qms.quality import deviations as dv
from qms.quality.audits import run_audit
from qms.records.signatures import PasswordEntry
from qms.reports import files, pdf, service
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0, late_infusion  # noqa: F401
from tests.records.conftest import log, make_unit, registry  # noqa: F401
from tests.reports.conftest import pdf_text

SIGN = dv.Signer(PasswordEntry(DEFAULT_PASSWORD))
DEV = "DEV-SH01-2026-0001"


@pytest.fixture
def with_capa(session, registry, make_user, late_infusion):  # noqa: F811
    """A late infusion in October (it opens a deviation), a CAPA for it, an audit run."""
    owner = make_user("quality_officer", username="qo.owner", full_name="Qian Owner")
    late_infusion("U-LATE", at=T0)
    at = T0 + timedelta(days=1)
    for action, kw in (
        ("assigned", {"details": {"owner": "qo.owner"}}),
        ("investigation_started", {}),
        ("capa_required", {}),
    ):
        dv.record_event(
            session=session, by=owner, deviation_id=DEV, action=action, signer=SIGN, now=at, **kw
        )
    capa = cp.open_capa(
        session=session,
        by=owner,
        site_id="SH-01",
        title="Spare infusion pump on the ward",
        description="Pump alarms delay infusions past the 30-minute window.",
        deviations=[DEV],
        owner="qo.owner",
        signer=SIGN,
        now=at,
    )
    run = run_audit(
        session=session,
        registry=registry,
        by=Actor.system("test"),
        scope=service.month_scope("SH-01", "2026-10"),
        now=T0 + timedelta(days=30),
    )
    session.flush()
    return {"owner": owner, "capa": capa, "run": run}


def _generate(session, settings, run_id, period, who, language="en"):
    row = service.generate_report(
        session=session,
        settings=settings,
        who=who,
        report_type="site-monthly",
        site_id="SH-01",
        period=period,
        language=language,
        audit_run_id=run_id,
    )
    return row, (files.reports_dir(settings) / row.file_name).read_bytes()


def test_capa_status_charts_and_who_prepared_it(with_capa, session, settings, demo_keys):
    row, content = _generate(session, settings, with_capa["run"].id, "2026-10", with_capa["owner"])
    data = json.loads(pdf.attachments(content)["report.json"])
    (deviation,) = data["data"]["deviations"]
    assert deviation["id"] == DEV and deviation["status"] == "capa_required"
    assert deviation["capas"] == [{"id": with_capa["capa"].id, "status": "open"}]
    assert data["report"]["prepared_by"] == "Qian Owner"
    (rule,) = data["data"]["rules"]
    assert rule["rule"] == "testcart.thaw_to_infusion" and rule["compliant_percent"] == 0.0
    text = pdf_text(content)
    assert with_capa["capa"].id in text
    assert "Prepared by" in text and "Qian Owner" in text
    assert "Compliance per rule" in text and "Findings by severity" in text
    zh_row, zh = _generate(
        session, settings, with_capa["run"].id, "2026-10", with_capa["owner"], "zh"
    )
    assert "编制人" in pdf_text(zh)
    assert service.verify_file(session, settings, content).ok


def test_excursions_and_their_acknowledgements(demo, settings, demo_keys):
    from qms.checklists.language import Registry
    from qms.storage import excursions
    from qms.storage import service as storage

    session = demo
    checklists = Registry.from_directory()
    pharmacist = session.exec(select(User).where(User.username == "chen.jie")).one()
    now = datetime.now(UTC)
    spike = (now - timedelta(minutes=30)).replace(microsecond=0)
    for at, temperature in ((spike, -100.0), (spike + timedelta(minutes=15), -161.0)):
        storage.record_reading(
            session=session,
            actor=Actor.of(pharmacist),
            equipment_id="LN2-01",
            at=at,
            temperature_c=temperature,
            source="logger",
            now=now,
        )
    ack = excursions.acknowledge(
        session=session,
        registry=checklists,
        by=pharmacist,
        credential=PasswordEntry("demo-pharmacist-2026"),
        freshness_minutes=5,
        equipment_id="LN2-01",
        started_at=spike,
        comment="lid left open during a transfer; closed and logged",
        now=now,
    )
    period = spike.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    run = run_audit(
        session=session,
        registry=checklists,
        by=Actor.system("test"),
        scope=service.month_scope("SH-01", period),
        now=now,
    )
    session.flush()
    _, content = _generate(session, settings, run.id, period, Actor.system("test"))
    data = json.loads(pdf.attachments(content)["report.json"])["data"]
    (shown,) = data["excursions"]["acknowledgements"]
    assert shown["id"] == ack.id and shown["by"] == "Chen Jie" and shown["warmest_c"] == -100.0
    text = pdf_text(content)
    assert "lid left open during a transfer" in text and "Chen Jie" in text
    assert "Excursions and their acknowledgements" in text


def test_the_approved_file_names_the_approved_version_in_its_xmp(
    with_capa, session, settings, demo_keys
):
    draft, draft_pdf = _generate(
        session, settings, with_capa["run"].id, "2026-10", Actor.system("test")
    )
    assert pdf.xmp_properties(draft_pdf)["reportId"] == draft.id
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=with_capa["owner"],
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
    )
    content = (files.reports_dir(settings) / approved.file_name).read_bytes()
    props = pdf.xmp_properties(content)
    assert props["reportId"] == approved.id and approved.id.endswith("/v2")
    assert props["ledgerHeadHash"] == draft.ledger_head_hash and props["period"] == "2026-10"
    assert pdf.pdfa_problems(content) == []
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()
    seal, approval = pdf.check_signatures(content, [ca])
    assert seal.intact and approval.ok and approval.covers_whole_file
    assert service.verify_file(session, settings, content).ok
