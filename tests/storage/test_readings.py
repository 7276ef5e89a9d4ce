"""Equipment (master data with an audit trail) and temperature readings (in the ledger)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core.errors import Denied, Invalid
from qms.core.models import LedgerEntry
from qms.core.trail import AuditTrailEntry
from qms.core.verify import verify
from qms.storage import service


@pytest.fixture
def pharmacist(make_user):
    return Actor.of(make_user("pharmacist", username="chen.jie"))


@pytest.fixture
def dewar(session, pharmacist):
    return service.register_equipment(
        session=session, actor=pharmacist, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
    )


def test_a_reading_is_chained_with_who_and_when(session, pharmacist, dewar):
    at = datetime.now(UTC) - timedelta(minutes=5)
    reading = service.record_reading(
        session=session, actor=pharmacist, equipment_id="LN2-01", at=at, temperature_c=-151.5
    )
    content = json.loads(session.get(LedgerEntry, reading.ledger_seq).content)
    assert content["type"] == "reading" and content["temperature_c"] == -151.5
    assert content["recorded_by"] == pharmacist.name and content["source"] == "manual"
    assert verify(session).ok


def test_equipment_changes_are_in_the_audit_trail(session, pharmacist, dewar):
    service.set_equipment_active(
        session=session,
        actor=pharmacist,
        equipment_id="LN2-01",
        active=False,
        reason="sensor failed",
    )
    trail = session.exec(select(AuditTrailEntry).where(AuditTrailEntry.entity == "equipment")).all()
    assert [(t.action, t.old_value, t.new_value, t.reason) for t in trail][-1] == (
        "deactivate",
        "true",
        "false",
        "sensor failed",
    )
    with pytest.raises(Invalid, match="out of use"):
        service.record_reading(
            session=session,
            actor=pharmacist,
            equipment_id="LN2-01",
            at=datetime.now(UTC),
            temperature_c=-150,
        )


@pytest.mark.parametrize(
    ("shift", "value", "message"),
    [
        (timedelta(hours=1), -150, "in the future"),
        (timedelta(0), -300, "not a possible reading"),
        (timedelta(0), float("nan"), "not a possible reading"),
    ],
)
def test_impossible_readings_are_refused(session, pharmacist, dewar, shift, value, message):
    with pytest.raises(Invalid, match=message):
        service.record_reading(
            session=session,
            actor=pharmacist,
            equipment_id="LN2-01",
            at=datetime.now(UTC) + shift,
            temperature_c=value,
        )


def test_the_same_reading_twice_is_refused(session, pharmacist, dewar):
    at = datetime.now(UTC) - timedelta(minutes=1)
    service.record_reading(
        session=session, actor=pharmacist, equipment_id="LN2-01", at=at, temperature_c=-150
    )
    with pytest.raises(Invalid, match="already recorded"):
        service.record_reading(
            session=session, actor=pharmacist, equipment_id="LN2-01", at=at, temperature_c=-149
        )


def test_who_may_manage_storage(session, make_user, dewar):
    nurse = Actor.of(make_user("nurse"))
    with pytest.raises(Denied, match="may not manage storage"):
        service.record_reading(
            session=session,
            actor=nurse,
            equipment_id="LN2-01",
            at=datetime.now(UTC),
            temperature_c=-150,
        )
    elsewhere = Actor.of(make_user("pharmacist", sites=("BJ-02",)))
    with pytest.raises(Denied, match="not belong to site SH-01"):
        service.record_reading(
            session=session,
            actor=elsewhere,
            equipment_id="LN2-01",
            at=datetime.now(UTC),
            temperature_c=-150,
        )
