"""CAPA: actions owned by staff with evidence (files kept by sha256), approval by another
quality officer, the effectiveness check falling due and re-running the audit."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from qms.core.errors import Conflict, Denied, Invalid
from qms.core.verify import verify
from qms.quality import capa as cp
from qms.quality import deviations as dv
from qms.quality.models import Capa
from qms.records.signatures import PasswordEntry
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0

SIGN = dv.Signer(PasswordEntry(DEFAULT_PASSWORD))
DEV = "DEV-SH01-2026-0001"


@pytest.fixture
def opened(session, make_user, late_infusion):
    owner = make_user("quality_officer", username="qo.owner")
    second = make_user("quality_officer", username="qo.second")
    nurse = make_user("nurse", username="nurse.zhao")
    make_user("regulator", username="reg.xu")
    late_infusion("U-1", minutes=45)
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
    return {"owner": owner, "second": second, "nurse": nurse, "capa": capa, "at": at}


def test_capa_from_actions_to_an_effectiveness_check(
    session, registry, opened, tmp_path, late_infusion
):
    owner, second, nurse, capa, at = (opened[k] for k in ("owner", "second", "nurse", "capa", "at"))
    assert capa.id == "CAPA-SH01-2026-0001" and json.loads(capa.rules) == [
        "testcart.thaw_to_infusion"
    ]
    for title, who in (
        ("Buy a spare pump", "qo.owner"),
        ("Train the ward on the alarm", "nurse.zhao"),
    ):
        cp.add_action(
            session=session,
            by=owner,
            capa_id=capa.id,
            title=title,
            owner=who,
            due_at=at + timedelta(days=14),
            signer=SIGN,
            now=at,
        )
    with pytest.raises(Invalid, match="member of staff"):
        cp.add_action(
            session=session,
            by=owner,
            capa_id=capa.id,
            title="x",
            owner="reg.xu",
            due_at=at + timedelta(days=1),
            signer=SIGN,
            now=at,
        )
    store = tmp_path / "evidence"
    sheet = b"%PDF-1.7 training attendance"
    cp.add_evidence(
        session=session,
        by=nurse,
        capa_id=capa.id,
        action="2",
        text="Ward trained on 5 October",
        files=[("attendance.pdf", sheet)],
        store=store,
        signer=SIGN,
        now=at + timedelta(days=3),
    )
    digest = hashlib.sha256(sheet).hexdigest()
    assert cp.evidence_path(store, digest).read_bytes() == sheet
    with pytest.raises(Denied, match="may not add evidence"):
        cp.add_evidence(
            session=session,
            by=nurse,
            capa_id=capa.id,
            action="1",
            text="not mine",
            store=store,
            signer=SIGN,
            now=at,
        )
    cp.complete_action(
        session=session,
        by=nurse,
        capa_id=capa.id,
        action="2",
        signer=SIGN,
        now=at + timedelta(days=3),
    )
    with pytest.raises(Conflict, match="actions not done yet: 1"):
        cp.approve_closure(session=session, by=second, capa_id=capa.id, signer=SIGN, now=at)
    with pytest.raises(Invalid, match="evidence is recorded"):
        cp.complete_action(
            session=session, by=owner, capa_id=capa.id, action="1", signer=SIGN, now=at
        )
    cp.add_evidence(
        session=session,
        by=owner,
        capa_id=capa.id,
        action="1",
        text="Pump PX-2 delivered",
        store=store,
        signer=SIGN,
        now=at + timedelta(days=4),
    )
    cp.complete_action(
        session=session,
        by=owner,
        capa_id=capa.id,
        action="1",
        signer=SIGN,
        now=at + timedelta(days=4),
    )
    with pytest.raises(Denied, match="other than its owner"):
        cp.approve_closure(session=session, by=owner, capa_id=capa.id, signer=SIGN, now=at)
    closed_at = at + timedelta(days=5)
    cp.approve_closure(session=session, by=second, capa_id=capa.id, signer=SIGN, now=closed_at)
    state = cp.get_capa(session, owner, capa.id)
    assert state.status == cp.APPROVED and state.effectiveness_due == closed_at + timedelta(days=90)
    (evidence,) = state.actions["2"].evidence
    assert evidence["files"] == [{"name": "attendance.pdf", "sha256": digest, "bytes": len(sheet)}]
    # The deviation closes once its CAPA is closed, approved by the other officer.
    dv.record_event(
        session=session, by=second, deviation_id=DEV, action="closed", signer=SIGN, now=closed_at
    )
    # Not due before 90 days; then the audit is re-run for the same rules since closure.
    with pytest.raises(Conflict, match="not due yet"):
        cp.prepare_effectiveness(
            session=session,
            registry=registry,
            by=second,
            capa_id=capa.id,
            now=closed_at + timedelta(days=30),
        )
    late_infusion("U-2", minutes=55, at=closed_at + timedelta(days=20))  # it recurred
    due = closed_at + timedelta(days=90)
    run = cp.prepare_effectiveness(
        session=session, registry=registry, by=second, capa_id=capa.id, now=due
    )
    assert run.kind == "effectiveness"
    found = cp.recurred(state, run)
    assert [d["unit"] for d in found] == ["U-2"]
    with pytest.raises(Invalid, match="needs a reason"):
        cp.record_effectiveness(
            session=session,
            by=second,
            capa_id=capa.id,
            run_id=run.id,
            effective=False,
            reason=None,
            signer=SIGN,
            now=due,
        )
    event = cp.record_effectiveness(
        session=session,
        by=second,
        capa_id=capa.id,
        run_id=run.id,
        effective=False,
        reason="the delay recurred on U-2",
        signer=SIGN,
        now=due,
    )
    details = json.loads(event.details)
    assert details == {
        "effective": False,
        "run": run.id,
        "recurred": 1,
        "next": "CAPA-SH01-2027-0001",
    }
    follow = session.get(Capa, "CAPA-SH01-2027-0001")
    assert follow.follows_id == capa.id and json.loads(follow.deviations) == [DEV]
    assert cp.get_capa(session, owner, capa.id).status == cp.NOT_EFFECTIVE
    assert verify(session).ok


def test_a_deviation_waits_for_its_capa_and_overdue_actions_show(session, opened):
    owner, second, capa, at = (opened[k] for k in ("owner", "second", "capa", "at"))
    with pytest.raises(Conflict, match="close its CAPA first"):
        dv.record_event(
            session=session, by=second, deviation_id=DEV, action="closed", signer=SIGN, now=at
        )
    cp.add_action(
        session=session,
        by=owner,
        capa_id=capa.id,
        title="Buy a spare pump",
        owner="nurse.zhao",
        due_at=at + timedelta(days=2),
        signer=SIGN,
        now=at,
    )
    assert cp.overdue_actions(session, ["SH-01"], at + timedelta(days=1)) == []
    ((state, action),) = cp.overdue_actions(session, ["SH-01"], at + timedelta(days=3))
    assert state.id == capa.id and action.owner == "nurse.zhao"
