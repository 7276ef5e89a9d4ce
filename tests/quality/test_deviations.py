"""Deviations: opened by a stored step's major finding (once, under 50 writers), by hand;
a workflow of signed, chained changes whose state is derived; who may see and approve."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from qms.accounts import service as accounts
from qms.accounts.models import User
from qms.core.errors import Conflict, Denied, Invalid, NotFound
from qms.core.verify import verify
from qms.db import Database
from qms.quality import deviations as dv
from qms.quality.models import Deviation, DeviationEvent
from qms.records import service
from qms.records.models import StepRecord
from qms.records.signatures import PasswordEntry, WitnessCredential
from tests.conftest import DEFAULT_PASSWORD
from tests.quality.conftest import T0

SIGN = dv.Signer(PasswordEntry(DEFAULT_PASSWORD))


def _deviations(session) -> list[Deviation]:
    return list(session.exec(select(Deviation).order_by(Deviation.ledger_seq)))


def test_a_step_stored_with_a_major_finding_opens_one_deviation_linked_to_it(
    session, late_infusion
):
    unit = late_infusion("U-1", minutes=45)
    late_infusion("U-2", minutes=20)  # within the limit: no deviation
    (deviation,) = _deviations(session)
    assert deviation.id == "DEV-SH01-2026-0001"
    assert deviation.source == "step" and deviation.classification == "major"
    assert deviation.rule == "testcart.thaw_to_infusion"
    assert deviation.description == "pump alarm delayed the start"  # the ward's reason
    assert json.loads(deviation.units) == [unit.id]
    assert deviation.step_record_id == "U-1#3"
    assert set(json.loads(deviation.records)) == {"U-1#2", "U-1#3"}
    (finding,) = json.loads(deviation.findings)
    assert finding["code"] == "window.max_exceeded" and "message" not in finding
    assert deviation.due_at == deviation.opened_at + timedelta(days=30)
    assert verify(session).ok


def test_the_due_date_follows_the_sites_parameter(session, make_user, late_infusion):
    from qms.quality.parameters import set_parameter

    officer = make_user("quality_officer")
    set_parameter(
        session=session,
        by=officer,
        site_id="SH-01",
        name="deviation_due_days",
        value=45,
        reason="external deviations get 45 days",
        now=T0,
    )
    late_infusion("U-1", minutes=45)
    (deviation,) = _deviations(session)
    assert deviation.due_at - deviation.opened_at == timedelta(days=45)


def _setup_units(url: str, registry, count: int) -> None:
    database = Database(url)
    try:
        with database.transaction() as s:
            accounts.create_site(session=s, site_id="SH-01", name="Test Hospital")
            for username, role in (("li.na", "nurse"), ("wang.wei", "physician")):
                accounts.create_user(
                    session=s,
                    actor=accounts.Actor.system("test"),
                    username=username,
                    full_name=username.title(),
                    role=role,
                    password=DEFAULT_PASSWORD,
                    site_ids=["SH-01"],
                )
            nurse = accounts.get_user_by_username(session=s, username="li.na")
            for i in range(count):
                unit = service.register_unit(
                    session=s,
                    registry=registry,
                    by=nurse,
                    unit_id=f"U-{i:02d}",
                    checklist_id="testcart",
                    site_id="SH-01",
                    patient_ref="P-0042",
                    now=T0,
                )
                for step, minutes, fields, witness in (
                    (
                        "identity_check",
                        5,
                        {"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
                        WitnessCredential("wang.wei", DEFAULT_PASSWORD),
                    ),
                    ("thaw_end", 20, {"temperature_c": 21}, None),
                ):
                    service.log_step(
                        session=s,
                        registry=registry,
                        unit_id=unit.id,
                        step=step,
                        performed_at=T0 + timedelta(minutes=minutes),
                        fields=fields,
                        by=nurse,
                        credential=PasswordEntry(DEFAULT_PASSWORD),
                        witness=witness,
                        freshness_minutes=5,
                        now=T0 + timedelta(minutes=minutes + 1),
                    )
    finally:
        database.dispose()


def test_fifty_late_infusions_stored_at_once_open_one_deviation_each(fresh_database_url, registry):
    """Numbers are allocated under the ledger's lock: no two deviations share one, none
    is skipped, and each record opened exactly one (SQLite and PostgreSQL)."""
    writers = 50
    _setup_units(fresh_database_url, registry, writers)
    barrier = threading.Barrier(writers)
    outcome: list = [None] * writers

    def infuse(index: int) -> None:
        database = Database(fresh_database_url)
        try:
            barrier.wait()
            with database.transaction() as s:
                service.log_step(
                    session=s,
                    registry=registry,
                    unit_id=f"U-{index:02d}",
                    step="infusion_end",
                    performed_at=T0 + timedelta(minutes=80),
                    fields={},
                    by=accounts.get_user_by_username(session=s, username="li.na"),
                    credential=PasswordEntry(DEFAULT_PASSWORD),
                    reason="the pump alarmed",
                    freshness_minutes=5,
                    now=T0 + timedelta(minutes=81),
                )
        except BaseException as exc:  # counted below
            outcome[index] = exc
        finally:
            database.dispose()

    threads = [threading.Thread(target=infuse, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcome == [None] * writers
    database = Database(fresh_database_url)
    try:
        with database.transaction(write=False) as s:
            stored = _deviations(s)
            assert sorted(d.id for d in stored) == [
                f"DEV-SH01-2026-{n:04d}" for n in range(1, writers + 1)
            ]
            assert sorted(d.step_record_id for d in stored) == [
                f"U-{i:02d}#3" for i in range(writers)
            ]
            assert verify(s).ok
    finally:
        database.dispose()


@pytest.fixture
def people(make_user):
    return {
        "owner": make_user("quality_officer", username="qo.owner"),
        "second": make_user("quality_officer", username="qo.second"),
        "nurse": make_user("nurse", username="nurse.zhao"),
        "regulator": make_user("regulator", username="reg.xu"),
        "admin": make_user("admin", username="admin.sun"),
        "stranger": make_user("quality_officer", username="qo.bj", sites=("BJ-02",)),
    }


def _event(session, by, deviation, action, at, **kw):
    return dv.record_event(
        session=session, by=by, deviation_id=deviation, action=action, signer=SIGN, now=at, **kw
    )


def test_workflow_owner_cannot_close_and_due_date_moves_only_by_approved_extension(
    session, people, late_infusion
):
    late_infusion("U-1", minutes=45)
    dev = "DEV-SH01-2026-0001"
    owner, second = people["owner"], people["second"]
    at = T0 + timedelta(days=1)
    with pytest.raises(Conflict, match="assign an owner"):
        _event(session, owner, dev, "investigation_started", at)
    _event(session, owner, dev, "assigned", at, details={"owner": "qo.owner"})
    with pytest.raises(Invalid, match="quality officer of site SH-01"):
        _event(session, owner, dev, "assigned", at, details={"owner": "nurse.zhao"})
    with pytest.raises(Invalid, match="needs a reason"):
        _event(session, owner, dev, "classified", at, details={"classification": "critical"})
    _event(
        session,
        owner,
        dev,
        "classified",
        at,
        details={"classification": "critical"},
        reason="patient received an expired product",
    )
    _event(session, owner, dev, "investigation_started", at)
    _event(
        session,
        owner,
        dev,
        "investigation_recorded",
        at,
        details={
            "immediate_action": "patient observed, physician informed",
            "patient_impact": "none seen",
            "product_impact": "viability unknown",
            "root_cause_method": "five_whys",
            "whys": ["pump alarm", "line kinked", "no spare pump", "", "budget"],
        },
    )
    due = dv.get_deviation(session, owner, dev).due_at
    _event(
        session,
        owner,
        dev,
        "extension_requested",
        at,
        reason="waiting for the maker's report",
        details={"due_at": (due + timedelta(days=14)).isoformat()},
    )
    assert dv.get_deviation(session, owner, dev).due_at == due  # not before approval
    with pytest.raises(Denied, match="other than the owner"):
        _event(session, owner, dev, "extension_approved", at)
    _event(session, second, dev, "extension_approved", at)
    state = dv.get_deviation(session, owner, dev)
    assert state.due_at == due + timedelta(days=14) and state.classification == "critical"
    assert state.investigation["whys"] == ["pump alarm", "line kinked", "no spare pump", "budget"]
    with pytest.raises(Conflict, match="after its CAPA decision"):
        _event(session, second, dev, "closed", at)
    with pytest.raises(Invalid, match="needs a reason"):
        _event(session, owner, dev, "no_capa", at)
    _event(session, owner, dev, "no_capa", at, reason="a one-off pump failure, pump replaced")
    with pytest.raises(Denied, match="other than its owner"):
        _event(session, owner, dev, "closed", at)
    _event(session, second, dev, "closed", at + timedelta(hours=1))
    state = dv.get_deviation(session, owner, dev)
    assert state.status == dv.CLOSED and state.closed_at == at + timedelta(hours=1)
    with pytest.raises(Conflict, match="is closed"):
        _event(session, owner, dev, "investigation_started", at)
    events = session.exec(select(DeviationEvent).order_by(DeviationEvent.ledger_seq)).all()
    assert [e.action for e in events] == [
        "assigned",
        "classified",
        "investigation_started",
        "investigation_recorded",
        "extension_requested",
        "extension_approved",
        "no_capa",
        "closed",
    ]
    assert all(e.method == "password" for e in events)
    assert verify(session).ok


def test_a_wrong_password_signs_nothing(session, people, late_infusion):
    late_infusion("U-1", minutes=45)
    with pytest.raises(Invalid, match="wrong password"):
        dv.record_event(
            session=session,
            by=people["owner"],
            deviation_id="DEV-SH01-2026-0001",
            action="assigned",
            details={"owner": "qo.owner"},
            signer=dv.Signer(PasswordEntry("not-it")),
            now=T0,
        )
    assert session.exec(select(DeviationEvent)).all() == []


def test_who_sees_deviations(session, people, late_infusion):
    late_infusion("U-1", minutes=45)
    dev = "DEV-SH01-2026-0001"
    assert dv.get_deviation(session, people["nurse"], dev).id == dev
    for who in ("regulator", "stranger"):
        with pytest.raises(NotFound):
            dv.get_deviation(session, people[who], dev)
    assert dv.deviations_of(session, people["regulator"], "SH-01") == []
    # Admins see their sites' units and step records, so their deviations too; they change none.
    assert [s.id for s in dv.deviations_of(session, people["admin"], "SH-01")] == [dev]
    with pytest.raises(Denied):
        _event(session, people["admin"], dev, "assigned", T0, details={"owner": "qo.owner"})
    with pytest.raises(Denied, match="may not change deviations"):
        _event(session, people["nurse"], dev, "assigned", T0, details={"owner": "qo.owner"})
    # Confirmed by a quality officer: the regulator sees it now.
    _event(session, people["owner"], dev, "assigned", T0, details={"owner": "qo.owner"})
    _event(session, people["owner"], dev, "investigation_started", T0)
    assert [s.id for s in dv.deviations_of(session, people["regulator"], "SH-01")] == [dev]


def test_opened_by_hand_and_recurrence(session, people, late_infusion):
    late_infusion("U-1", minutes=45)
    late_infusion("U-2", minutes=50, at=T0 + timedelta(days=20))
    manual = dv.open_deviation(
        session=session,
        by=people["owner"],
        site_id="SH-01",
        title="Bag dropped in the corridor",
        description="The bag of U-1 fell from the trolley; no leak seen.",
        classification="minor",
        units=["U-1"],
        signer=SIGN,
        now=T0 + timedelta(days=21),
    )
    assert manual.id == "DEV-SH01-2026-0003" and manual.source == "manual"
    with pytest.raises(Invalid, match="has no unit U-404"):
        dv.open_deviation(
            session=session,
            by=people["owner"],
            site_id="SH-01",
            title="x",
            description="y",
            classification="minor",
            units=["U-404"],
            signer=SIGN,
            now=T0,
        )
    second = dv.get_deviation(session, people["owner"], "DEV-SH01-2026-0002")
    assert [d.id for d in dv.recurrence(session, second)] == ["DEV-SH01-2026-0001"]
    assert dv.recurrence(session, dv.get_deviation(session, people["owner"], manual.id)) == []


def test_altering_a_deviation_row_is_detected(fresh_database_url, registry, backend):
    _setup_units(fresh_database_url, registry, 1)
    database = Database(fresh_database_url)
    try:
        with database.transaction() as s:
            service.log_step(
                session=s,
                registry=registry,
                unit_id="U-00",
                step="infusion_end",
                performed_at=T0 + timedelta(minutes=80),
                fields={},
                by=accounts.get_user_by_username(session=s, username="li.na"),
                credential=PasswordEntry(DEFAULT_PASSWORD),
                reason="the pump alarmed",
                freshness_minutes=5,
                now=T0 + timedelta(minutes=81),
            )
        with database.transaction() as s, pytest.raises(Exception, match="append-only"):
            s.connection().exec_driver_sql("UPDATE deviation SET classification = 'minor'")
        with database.transaction() as s:
            if backend == "postgresql":
                s.exec(text("ALTER TABLE deviation DISABLE TRIGGER deviation_append_only"))
            else:
                s.exec(text("DROP TRIGGER deviation_refuse_update"))
            s.connection().exec_driver_sql("UPDATE deviation SET classification = 'minor'")
        with database.transaction(write=False) as s:
            report = verify(s)
        assert not report.ok
        assert any(
            "deviation DEV-SH01-2026-0001" in str(p) and "altered" in str(p)
            for p in report.problems
        )
    finally:
        database.dispose()


def test_a_correction_that_shows_a_new_serious_finding_opens_a_deviation(
    session, registry, late_infusion, make_user
):
    """A corrected time that makes an infusion late opens a deviation linked to the
    correction; correcting it again, still late, opens no second one."""
    from qms.records.corrections import correct_step

    unit = late_infusion("U-1", minutes=20)  # on time: no deviation
    assert _deviations(session) == []
    nurse = session.exec(select(User).where(User.username == "li.na")).one()
    end = session.get(StepRecord, "U-1#3")
    assert end.step == "infusion_end"
    first = correct_step(
        session=session,
        registry=registry,
        record_id=end.id,
        by=nurse,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
        reason="the pump clock was 25 minutes behind",
        performed_at=T0 + timedelta(minutes=45),
        now=T0 + timedelta(hours=2),
    )
    (deviation,) = _deviations(session)
    assert deviation.step_record_id == first.record.id and deviation.classification == "major"
    assert deviation.description == "the pump clock was 25 minutes behind"
    assert json.loads(deviation.units) == [unit.id]
    correct_step(
        session=session,
        registry=registry,
        record_id=first.record.id,
        by=nurse,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
        reason="the end was at 09:50",
        performed_at=T0 + timedelta(minutes=50),
        now=T0 + timedelta(hours=3),
    )
    assert len(_deviations(session)) == 1
    assert verify(session).ok


def test_a_deviation_opened_by_a_finding_is_titled_in_the_readers_language() -> None:
    # Stored with its rule's id as its title (a code); shown as the rule says it.
    from qms.checklists.language import Registry

    registry = Registry.from_directory()
    says = registry.get("kymriah").rule("kymriah.thaw_to_infusion").says
    opened = Deviation(rule="kymriah.thaw_to_infusion", title="kymriah.thaw_to_infusion")
    assert dv.title_in(opened, registry, "en") == str(says)
    assert dv.title_in(opened, registry, "zh") == says.get("zh") != str(says)
    # A typed title is shown as typed; a rule this installation no longer knows, as stored.
    typed = Deviation(rule="kymriah.thaw_to_infusion", title="Bag thawed twice")
    assert dv.title_in(typed, registry, "zh") == "Bag thawed twice"
    gone = Deviation(rule="kymriah.retired_rule", title="kymriah.retired_rule")
    assert dv.title_in(gone, registry, "zh") == "kymriah.retired_rule"
    unknown = Deviation(rule="nosuch.rule", title="nosuch.rule")
    assert dv.title_in(unknown, registry, "en") == "nosuch.rule"
