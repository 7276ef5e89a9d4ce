"""A unit's status: declared complete or cancelled by a signed record, reopened with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from qms.core.errors import Conflict, Denied, FindingsNeedReason, Invalid, NotFound
from qms.core.verify import verify
from qms.db import Database
from qms.records import queries
from qms.records.exporter import export_interchange
from qms.records.importer import import_interchange
from qms.records.models import UnitStatus
from qms.records.signatures import PasswordEntry
from qms.records.status import set_unit_status, status_of

PASSWORD = "correct-horse-battery"


@pytest.fixture
def close(session, registry):
    def do(unit, status, *, by, reason=None):
        return set_unit_status(
            session=session,
            registry=registry,
            unit_id=unit.id,
            status=status,
            by=by,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            reason=reason,
        )

    return do


@pytest.fixture
def infused(make_user, make_unit, log):
    """A testcart unit with every step recorded."""
    nurse = make_user("nurse")
    witness = make_user("nurse")
    unit = make_unit(by=nurse)
    start = datetime.now(UTC) - timedelta(hours=1)
    log(unit, "receipt", by=nurse, at=start)
    log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        at=start + timedelta(minutes=5),
        fields={"product_patient_id": "P-1", "wristband_patient_id": "P-1"},
    )
    log(unit, "thaw_end", by=nurse, at=start + timedelta(minutes=10), fields={"temperature_c": 20})
    log(unit, "infusion_end", by=nurse, at=start + timedelta(minutes=20))
    return unit, nurse


def test_a_finished_unit_is_declared_complete_and_takes_no_new_step(
    session, infused, close, log, registry
):
    unit, nurse = infused
    assert status_of(session, unit.id) == "in_progress"
    change = close(unit, "complete", by=nurse)
    assert change.findings == [] and change.record.method == "password"
    assert status_of(session, unit.id) == "complete"
    with pytest.raises(Invalid, match="is complete: reopen it"):
        log(unit, "infusion_end", by=nurse)
    assessment = queries.assess_unit(session, registry, unit, now=datetime.now(UTC))
    assert assessment.status == "complete" and assessment.due == []
    assert verify(session.connection()).ok


def test_closing_an_incomplete_unit_needs_a_reason_and_reports_what_is_missing(
    session, make_user, make_unit, log, close, registry
):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    log(unit, "receipt", by=nurse)
    with pytest.raises(FindingsNeedReason) as refused:
        close(unit, "complete", by=nurse)
    assert {f.kind for f in refused.value.findings} == {"missing_step"}
    assert status_of(session, unit.id) == "in_progress"
    change = close(unit, "complete", by=nurse, reason="patient transferred before infusion")
    assert {f.rule for f in change.findings} >= {"testcart.infusion_end.done"}
    # The audit sees the missing steps from now on, as for any finished unit.
    now = datetime.now(UTC)
    missing = [f for f in queries.assess_unit(session, registry, unit, now=now).findings]
    assert "testcart.infusion_end.done" in {f.rule for f in missing}


def test_cancel_and_reopen_need_reasons(session, infused, close):
    unit, nurse = infused
    with pytest.raises(Invalid, match="cancelling a unit needs a reason"):
        close(unit, "cancelled", by=nurse)
    close(unit, "cancelled", by=nurse, reason="infusion stopped by the physician")
    with pytest.raises(Invalid, match="reopening a unit needs a reason"):
        close(unit, "in_progress", by=nurse)
    close(unit, "in_progress", by=nurse, reason="the cancellation was entered on the wrong unit")
    history = session.exec(select(UnitStatus).where(UnitStatus.unit_id == unit.id)).all()
    assert [h.status for h in sorted(history, key=lambda h: h.ledger_seq)] == [
        "cancelled",
        "in_progress",
    ]
    with pytest.raises(Conflict, match="already in progress"):
        close(unit, "in_progress", by=nurse, reason="again")


def test_who_may_close_and_the_password(session, infused, close, make_user, registry):
    unit, _ = infused
    with pytest.raises(Denied):
        close(unit, "complete", by=make_user("regulator"))
    with pytest.raises(NotFound, match=f"there is no unit {unit.id}"):  # as if missing
        close(unit, "complete", by=make_user("nurse", sites=("SH-02",)))
    with pytest.raises(Invalid, match="wrong password"):
        set_unit_status(
            session=session,
            registry=registry,
            unit_id=unit.id,
            status="complete",
            by=make_user("quality_officer"),
            credential=PasswordEntry("nope"),
            freshness_minutes=5,
        )


def test_status_records_are_append_only(session, infused, close):
    unit, nurse = infused
    close(unit, "complete", by=nurse)
    session.flush()
    with pytest.raises(DBAPIError, match="append-only"):
        with session.begin_nested():
            session.exec(text("UPDATE unit_status SET status = 'in_progress'"))


def test_status_travels_through_export_and_import(
    session, infused, close, registry, backend, empty_databases
):
    from qms.accounts import service as accounts

    unit, nurse = infused
    close(unit, "complete", by=nurse)
    first = list(export_interchange(session=session))
    assert json.loads(first[0])["status"] == "complete"
    target = Database(empty_databases.new(backend))
    try:
        with target.transaction() as s:
            accounts.create_site(session=s, site_id="SH-01", name="Target")
        with target.transaction() as s:
            import_interchange(
                session=s,
                registry=registry,
                lines=first,
                source="f.jsonl",
                actor=accounts.Actor.system("importer"),
                create_missing_users=True,
            )
        with target.transaction(write=False) as s:
            assert status_of(s, unit.id) == "complete"
            imported = s.exec(select(UnitStatus)).one()
            assert imported.method == "imported" and imported.by_id is None
            assert list(export_interchange(session=s)) == first
            assert verify(s).ok
    finally:
        target.dispose()
