"""A site monthly report from an audit run: what a regulator receives, with no identifier."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from qms.accounts.service import Actor
from qms.quality.audits import run_audit, run_json
from qms.reports import data as report_data
from qms.reports import files, pdf, service
from tests.quality.conftest import T0, late_infusion  # noqa: F401
from tests.records.conftest import log, make_unit, registry  # noqa: F401
from tests.reports.conftest import pdf_text

SECRETS = ("P-0042", "CHG123426ABC123", "P-7781", "P-7782", "CHG123426ZZZ999")


@pytest.fixture
def october(session, registry, late_infusion, make_unit, log, make_user):  # noqa: F811
    """Two units in October 2026: a late infusion and an identity mismatch; an audit run."""
    late_infusion("U-LATE", at=T0)
    nurse = make_user("nurse")
    witness = make_user("physician")
    mismatch = make_unit(
        unit_id="U-ID",
        by=nurse,
        at=T0 - timedelta(hours=3),
        patient_ref="P-7781",
        coi_id="CHG123426ZZZ999",
    )
    log(
        mismatch,
        "identity_check",
        by=nurse,
        witness=witness,
        at=T0 - timedelta(hours=1),
        fields={"product_patient_id": "P-7781", "wristband_patient_id": "P-7782"},
        reason="wristband reprinted; checked again at the bedside",
        now=T0 - timedelta(hours=1),
    )
    run = run_audit(
        session=session,
        registry=registry,
        by=Actor.system("test"),
        scope=service.month_scope("SH-01", "2026-10"),
        now=T0 + timedelta(days=30),
    )
    session.flush()
    return run


def _generate(session, settings, run, language="en"):
    row = service.generate_report(
        session=session,
        settings=settings,
        who=Actor.system("test"),
        report_type="site-monthly",
        site_id="SH-01",
        period="2026-10",
        language=language,
        audit_run_id=run.id,
    )
    return row, (files.reports_dir(settings) / row.file_name).read_bytes()


def test_no_patient_reference_or_coi_id_in_clear_anywhere(october, session, settings, demo_keys):
    raw = json.dumps(run_json(october), ensure_ascii=False)
    assert any(secret in raw for secret in SECRETS)  # the run itself names them
    for language in ("en", "zh"):
        row, content = _generate(session, settings, october, language)
        text = pdf_text(content)
        attached = pdf.attachments(content)
        assert set(attached) == {"report.json", "report.csv"}
        everything = [text, *(blob.decode("utf-8") for blob in attached.values())]
        for secret in SECRETS:
            for part in everything:
                assert secret not in part, (language, secret)
        assert "U-LATE" in text and "U-ID" in text  # units by their ids
        assert row.audit_run_id == october.id


def test_attachments_are_the_audit_run_json_masked(october, session, settings, demo_keys):
    row, content = _generate(session, settings, october)
    document = json.loads(pdf.attachments(content)["report.json"])
    secrets = report_data.sensitive_values(session, ["U-ID", "U-LATE"], row.ledger_head_seq)
    assert document["data"]["audit"] == report_data.scrub(run_json(october), secrets)
    assert document["data"]["audit"]["findings"], "the run found something"
    assert document["report"]["audit_run"] == october.id
    covers = json.loads(october.covers)
    assert (row.ledger_head_seq, row.ledger_head_hash) == (covers["seq"], covers["hash"])
    assert service.verify_file(session, settings, content).ok


def test_chinese_site_report_reads_back_in_chinese(october, session, settings, demo_keys):
    _, content = _generate(session, settings, october, "zh")
    text = pdf_text(content)
    assert "院区月度报告" in text and "第 1 页" in text
