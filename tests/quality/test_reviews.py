"""Reviewing a run's findings: confirmed as a new or existing deviation, or dismissed with
a rationale; signed, chained, and still in the run afterwards."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from qms.core.errors import Conflict, Invalid, NotFound
from qms.core.verify import verify
from qms.quality import audits, reviews
from qms.quality import deviations as dv
from qms.quality.models import Deviation, DeviationEvent
from qms.records.signatures import PasswordEntry
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0

SIGN = dv.Signer(PasswordEntry(DEFAULT_PASSWORD))


@pytest.fixture
def run(session, registry, make_user, late_infusion):
    officer = make_user("quality_officer", username="qo.wang")
    for i, minutes in enumerate((45, 50, 70)):
        late_infusion(f"U-{i + 1}", minutes=minutes, at=T0 + timedelta(days=i))
    return officer, audits.run_audit(
        session=session,
        registry=registry,
        by=officer,
        scope=audits.AuditScope(site_id="SH-01"),
        now=T0 + timedelta(days=10),
    )


def _review(session, officer, run, index, decision, **kw):
    return reviews.review_finding(
        session=session,
        by=officer,
        run_id=run.id,
        finding=index,
        decision=decision,
        signer=SIGN,
        now=T0 + timedelta(days=11),
        **kw,
    )


def test_confirm_link_and_dismiss_and_nothing_disappears(session, run):
    officer, run = run
    view = audits.load_run(session, officer, run.id)
    suggested = reviews.open_deviations_for(session, [f.doc for f in view.findings])
    assert suggested == {
        0: ["DEV-SH01-2026-0001"],
        1: ["DEV-SH01-2026-0002"],
        2: ["DEV-SH01-2026-0003"],
    }
    linked = _review(session, officer, run, 0, "confirmed", deviation_id="DEV-SH01-2026-0001")
    assert linked.deviation_id == "DEV-SH01-2026-0001"
    event = session.exec(select(DeviationEvent)).one()
    assert event.action == "linked" and json.loads(event.details) == {"run": run.id, "finding": 0}
    new = _review(session, officer, run, 1, "confirmed", rationale="a second pump failure")
    opened = session.get(Deviation, new.deviation_id)
    assert opened.source == "audit" and opened.audit_run_id == run.id
    assert opened.id == "DEV-SH01-2026-0004" and json.loads(opened.units) == ["U-2"]
    with pytest.raises(Invalid, match="written rationale"):
        _review(session, officer, run, 2, "dismissed")
    _review(
        session,
        officer,
        run,
        2,
        "dismissed",
        rationale="infusion started in time; the end time was mistyped",
    )
    with pytest.raises(Conflict, match="reviewed already"):
        _review(session, officer, run, 2, "confirmed")
    with pytest.raises(NotFound, match="no finding 4"):
        _review(session, officer, run, 3, "dismissed", rationale="x")
    view = audits.load_run(session, officer, run.id)
    assert len(view.findings) == 3
    dismissed = view.findings[2].decision
    assert dismissed.decision == "dismissed" and dismissed.by_id == officer.id
    assert "mistyped" in dismissed.rationale
    assert verify(session).ok


def test_a_deviation_of_another_site_cannot_be_linked(session, run, make_user, late_infusion):
    officer, run = run
    late_infusion("BJ-1", site="BJ-02")
    bj = session.exec(select(Deviation).where(Deviation.site_id == "BJ-02")).one()
    with pytest.raises(NotFound):
        _review(session, officer, run, 0, "confirmed", deviation_id=bj.id)
    assert dv.get_deviation(session, officer, "DEV-SH01-2026-0001").events == []
