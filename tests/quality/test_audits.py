"""Audit runs: a scope judged with the engine, stored chained with what it covers."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from qms.cli import cli as qms_cli
from qms.core import ledger
from qms.core.errors import Denied, Invalid, NotFound
from qms.core.models import LedgerEntry
from qms.core.verify import verify
from qms.quality import audits
from qms.quality.models import AuditRun
from qms.runtime import Runtime
from tests.quality.conftest import T0
from tests.records.conftest import CHECKLISTS


def _scope(**kw):
    return audits.AuditScope(site_id="SH-01", **kw)


def test_a_run_judges_the_units_of_its_period_and_keeps_what_it_found(
    session, registry, make_user, late_infusion
):
    officer = make_user("quality_officer")
    late_infusion("U-LATE", minutes=45)
    late_infusion("U-OK", minutes=20)
    late_infusion("U-NOV", at=T0 + timedelta(days=40), minutes=50)  # in November
    head = ledger.head(session)
    run = audits.run_audit(
        session=session,
        registry=registry,
        by=officer,
        scope=_scope(date_from=date(2026, 10, 1), date_to=date(2026, 10, 31)),
        now=T0 + timedelta(days=45),
    )
    assert run.id == "AUD-SH01-2026-0001"
    counts = json.loads(run.counts)
    assert counts["units"] == 2 and counts["records"] == 6
    assert counts["by_severity"] == {"critical": 0, "major": 1, "minor": 0}
    assert counts["by_rule"] == {"testcart.thaw_to_infusion": 1}
    (finding,) = audits.run_findings(run)
    assert finding.unit == "U-LATE" and finding.code and finding.actual == "45m"
    assert json.loads(run.covers) == {"seq": head[0], "hash": head[1]}
    (checklist,) = json.loads(run.checklists)
    assert checklist["id"] == "testcart" and checklist["version"] == "1.0"
    assert checklist["digest"] == registry.get("testcart").digest
    assert checklist["parameters"] == {"thaw_max": "30m"}
    assert json.loads(run.parameters)["deviation_due_days"] == 30
    entry = session.get(LedgerEntry, run.ledger_seq)
    assert entry.kind == "audit_run" and json.loads(entry.content)["by"] == officer.username
    assert verify(session).ok


def test_the_same_scope_again_is_a_new_run_that_shows_what_is_new_and_resolved(
    session, registry, make_user, late_infusion
):
    officer = make_user("quality_officer")
    late_infusion("U-1", minutes=45)
    scope = _scope(date_from=date(2026, 10, 1), date_to=date(2026, 10, 31))
    first = audits.run_audit(
        session=session, registry=registry, by=officer, scope=scope, now=T0 + timedelta(days=3)
    )
    late_infusion("U-2", minutes=60, at=T0 + timedelta(days=1))
    second = audits.run_audit(
        session=session, registry=registry, by=officer, scope=scope, now=T0 + timedelta(days=4)
    )
    assert second.id == "AUD-SH01-2026-0002"
    view = audits.load_run(session, officer, second.id)
    assert view.previous.id == first.id
    assert [(f.doc["unit"], f.new) for f in view.findings] == [("U-1", False), ("U-2", True)]
    assert view.resolved == []
    assert audits.load_run(session, officer, first.id).findings[0].new is None


def test_only_quality_officers_of_the_site_run_and_read_audits(
    session, registry, make_user, late_infusion
):
    late_infusion("U-1")
    nurse = make_user("nurse")
    stranger = make_user("quality_officer", sites=("BJ-02",))
    officer = make_user("quality_officer")
    with pytest.raises(Denied, match="may not run audits"):
        audits.run_audit(session=session, registry=registry, by=nurse, scope=_scope(), now=T0)
    with pytest.raises(Denied, match="does not belong to site SH-01"):
        audits.run_audit(session=session, registry=registry, by=stranger, scope=_scope(), now=T0)
    run = audits.run_audit(session=session, registry=registry, by=officer, scope=_scope(), now=T0)
    with pytest.raises(NotFound):
        audits.load_run(session, stranger, run.id)
    with pytest.raises(Invalid, match="ends on or after"):
        audits.assess_scope(
            session=session,
            registry=registry,
            by=officer,
            scope=_scope(date_from=date(2026, 10, 2), date_to=date(2026, 10, 1)),
        )


def test_the_number_of_queries_does_not_grow_with_the_units(
    session, registry, make_user, late_infusion, connection
):
    officer = make_user("quality_officer")

    def queries_for(n: int, first: int) -> int:
        for i in range(first, first + n):
            late_infusion(f"U-{i:03d}", at=T0 + timedelta(hours=i))
        session.flush()
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(connection, "before_cursor_execute", listener)
        try:
            audits.assess_scope(
                session=session, registry=registry, by=officer, scope=_scope(units=())
            )
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        return len(seen)

    assert queries_for(2, 0) == queries_for(12, 100)


def test_audit_run_json_gives_the_findings_of_evaluate_on_an_export(
    session, settings, database, registry, make_user, late_infusion, tmp_path
):
    make_user("quality_officer", username="qo.wang")
    late_infusion("U-1", minutes=45)
    late_infusion("U-2", minutes=75, at=T0 + timedelta(days=2))
    late_infusion("U-3", minutes=10, at=T0 + timedelta(days=3))
    session.commit()
    runtime = Runtime(settings, database=database, registry=registry)
    runner = CliRunner()
    audited = runner.invoke(
        qms_cli,
        ["audit", "run", "--site", "SH-01", "--from", "2026-10-01", "--to", "2026-10-31"]
        + ["--as", "qo.wang", "--format", "json"],
        obj=runtime,
    )
    assert audited.exit_code == 0, audited.output
    doc = json.loads(audited.stdout)
    exported = runner.invoke(qms_cli, ["export", "--site", "SH-01"], obj=runtime)
    assert exported.exit_code == 0, exported.output
    export = tmp_path / "sh01.jsonl"
    export.write_text(exported.stdout)
    evaluated = runner.invoke(
        qms_cli, ["evaluate", str(export), "--checklists", str(CHECKLISTS)], obj=runtime
    )
    assert evaluated.exit_code == 0, evaluated.output
    expected = json.loads(evaluated.stdout)
    assert doc["findings"] == expected["findings"] and len(doc["findings"]) == 2
    assert doc["units"] == expected["units"] == 3
    run = session.get(AuditRun, doc["run"])
    assert doc["head"] == json.loads(run.covers) and run.ledger_seq == doc["head"]["seq"] + 1
    text = runner.invoke(
        qms_cli, ["audit", "run", "--site", "SH-01", "--from", "2026-10-31"], obj=runtime
    )
    assert text.exit_code == 0 and "0 units, 0 records, 0 findings" in text.output
    bad = runner.invoke(qms_cli, ["audit", "run", "--site", "SH-01", "--from", "Oct"], obj=runtime)
    assert bad.exit_code != 0 and "'Oct' is not a date" in bad.output
