"""Import and export of the interchange file: all or nothing; export → import → export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from qms.accounts import service as accounts
from qms.accounts.models import User
from qms.core.models import LedgerEntry
from qms.core.trail import AuditTrailEntry
from qms.core.verify import verify
from qms.db import Database
from qms.records.corrections import correct_step
from qms.records.exporter import export_interchange
from qms.records.importer import ImportFileError, import_interchange
from qms.records.models import StepRecord, Unit
from qms.records.signatures import PasswordEntry
from qms.storage import service as storage

PASSWORD = "correct-horse-battery"
IMPORTER = accounts.Actor.system("test importer")


@pytest.fixture
def recorded(session, registry, make_user, make_unit, log):
    """A unit with a witnessed step, an out-of-limit step, a correction, and storage."""
    nurse = make_user("nurse", username="li.na", full_name="Li Na")
    witness = make_user("nurse", username="wang.wei", full_name="Wang Wei")
    pharmacist = make_user("pharmacist", username="chen.jie")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    unit = make_unit(by=nurse, unit_id="U-1", at=start, attributes={"age_years": 34})
    log(
        unit,
        "receipt",
        by=pharmacist,
        at=start + timedelta(minutes=1),
        fields={"temperature_c": -150.5},
    )
    log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        at=start + timedelta(minutes=10, microseconds=250_000),
        fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
    )
    hot = log(
        unit,
        "thaw_end",
        by=nurse,
        at=start + timedelta(minutes=30),
        fields={"temperature_c": 28},
        reason="water bath fault",
    ).record
    correct_step(  # by a colleague: the export must say who corrected
        session=session,
        registry=registry,
        record_id=hot.id,
        by=witness,
        credential=PasswordEntry(PASSWORD),
        freshness_minutes=5,
        reason="read the wrong thermometer",
        fields={"temperature_c": 24},
    )
    storage.register_equipment(
        session=session, actor=IMPORTER, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
    )
    for minutes, value in ((0, -151), (5, -150.25)):
        storage.record_reading(
            session=session,
            actor=IMPORTER,
            equipment_id="LN2-01",
            at=start + timedelta(minutes=minutes),
            temperature_c=value,
        )
    session.flush()
    return unit


def _counts(session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(model)).one()
        for model in (LedgerEntry, Unit, StepRecord, User, AuditTrailEntry)
    )


def test_export_writes_the_design_format(session, recorded):
    lines = [json.loads(line) for line in export_interchange(session=session)]
    kinds = [line["type"] for line in lines]
    assert kinds == ["unit", "equipment", "step", "step", "step", "step", "reading", "reading"]
    unit = lines[0]
    assert (
        unit["id"] == "U-1"
        and unit["patient"] == "P-0042"
        and unit["attributes"] == {"age_years": 34}
    )
    identity = lines[3]
    assert identity["by"] == "li.na" and identity["witness"] == "wang.wei"
    assert identity["at"].endswith("+08:00")  # shown in the site's zone
    correction = lines[5]
    assert correction["corrects"] == lines[4]["record_id"]
    assert correction["reason"] == "read the wrong thermometer"
    assert correction["by"] == "li.na" and correction["recorded_by"] == "wang.wei"
    assert "recorded_by" not in lines[4]  # the performer entered the original herself
    assert correction["fields"] == {"temperature_c": 24}


def test_export_import_export_round_trips(session, recorded, registry, backend, empty_databases):
    first = list(export_interchange(session=session))
    target = Database(empty_databases.new(backend))
    try:
        with target.transaction() as s:
            accounts.create_site(session=s, site_id="SH-01", name="Target hospital")
        with target.transaction() as s:
            summary = import_interchange(
                session=s,
                registry=registry,
                lines=first,
                source="sh01.jsonl",
                actor=IMPORTER,
                create_missing_users=True,
            )
        assert (summary.units, summary.steps, summary.corrections, summary.readings) == (1, 3, 1, 2)
        assert sorted(summary.created_users) == ["chen.jie", "li.na", "wang.wei"]
        with target.transaction(write=False) as s:
            second = list(export_interchange(session=s))
            assert second == first
            assert verify(s).ok
            record = s.exec(select(StepRecord).where(StepRecord.step == "identity_check")).one()
            assert record.imported_by == "test importer" and record.imported_at is not None
            original = session.exec(
                select(StepRecord).where(StepRecord.step == "identity_check")
            ).one()
            assert record.performed_at == original.performed_at
            assert record.recorded_at == original.recorded_at
            placeholder = accounts.get_user_by_username(session=s, username="li.na")
            assert not placeholder.active and "imported" in placeholder.full_name
            trail = s.exec(
                select(AuditTrailEntry).where(AuditTrailEntry.entity_id == "li.na")
            ).all()
            assert [t.action for t in trail] == ["create", "deactivate"]
            # The engine's findings were recomputed on import and agree with the source.
            hot = s.exec(
                select(StepRecord).where(
                    StepRecord.step == "thaw_end", StepRecord.corrects_id.is_(None)
                )
            ).one()
            assert json.loads(hot.findings)[0]["kind"] == "limit"
            fixed = s.exec(select(StepRecord).where(StepRecord.corrects_id == hot.id)).one()
            corrector = accounts.get_user_by_username(session=s, username="wang.wei")
            assert fixed.recorded_by_id == corrector.id
    finally:
        target.dispose()


def test_unknown_author_is_refused_with_its_line(session, recorded, registry):
    lines = [line for line in export_interchange(session=session) if '"unit"' in line]
    lines = [line.replace('"wang.wei"', '"zhao.unknown"') for line in lines]
    lines = [line.replace('"U-1', '"U-2') for line in lines]
    before = _counts(session)
    with pytest.raises(ImportFileError) as refused:
        import_interchange(
            session=session, registry=registry, lines=lines, source="f.jsonl", actor=IMPORTER
        )
    # The witness of line 3 and the colleague who entered the correction on line 5.
    assert refused.value.problems == [
        f"f.jsonl:{n}: unknown user 'zhao.unknown' in this database; create the account first or import with --create-missing-users"
        for n in (3, 5)
    ]
    assert _counts(session) == before


def test_a_bad_file_leaves_the_database_untouched(session, recorded, registry):
    lines = [line.replace('"U-1', '"U-9') for line in export_interchange(session=session)]
    lines = [line.replace('"LN2-01"', '"LN2-09"') for line in lines]
    lines.append(
        '{"type": "step", "unit": "U-9", "step": "infusion_end", "at": "2026-10-02T09:30:00"}\n'
    )
    lines.append("{not json\n")
    before = _counts(session)
    with pytest.raises(ImportFileError) as refused:
        import_interchange(
            session=session, registry=registry, lines=lines, source="bad.jsonl", actor=IMPORTER
        )
    problems = refused.value.problems
    assert problems[0].startswith("bad.jsonl:9: at '2026-10-02T09:30:00' has no UTC offset")
    assert problems[1].startswith("bad.jsonl:10: bad JSON")
    assert _counts(session) == before


def test_importing_the_same_file_twice_is_refused(session, recorded, registry):
    lines = list(export_interchange(session=session))
    before = _counts(session)
    with pytest.raises(ImportFileError) as refused:
        import_interchange(
            session=session, registry=registry, lines=lines, source="again.jsonl", actor=IMPORTER
        )
    text = "\n".join(refused.value.problems)
    assert "again.jsonl:1: unit U-1 already exists in this database" in text
    assert "again.jsonl:2: equipment LN2-01 already exists in this database" in text
    assert _counts(session) == before


def test_database_checks_name_lines(session, registry, make_user):
    make_user("nurse", username="li.na")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    lines = [
        '{"type": "unit", "id": "U-5", "checklist": "testcart", "site": "XX-99", "patient": "Li Na"}\n',
        f'{{"type": "step", "unit": "U-5", "step": "receipt", "at": "{future}", "by": "li.na", "fields": {{"colour": "red"}}}}\n',
    ]
    with pytest.raises(ImportFileError) as refused:
        import_interchange(
            session=session, registry=registry, lines=lines, source="f", actor=IMPORTER
        )
    assert refused.value.problems == [
        "f:1: unit U-5: there is no site XX-99 in this database",
        "f:1: unit U-5: the patient must be a pseudonymous reference such as P-0042, never a name",
        "f:2: the record is dated in the future",
        "f:2: receipt has no field colour; fields: temperature_c",
    ]


def test_import_needs_the_import_permission(session, registry, make_user):
    nurse = make_user("nurse")
    with pytest.raises(Exception, match="may not import"):
        import_interchange(
            session=session,
            registry=registry,
            lines=[],
            source="f",
            actor=accounts.Actor.of(nurse),
        )


def test_an_importer_answers_only_for_the_sites_they_belong_to(session, registry, make_user):
    """A quality officer of SH-01 imports SH-01's records, never another hospital's: not its
    units, nor its equipment and their readings."""
    officer = accounts.Actor.of(make_user("quality_officer", sites=("SH-01",)))
    make_user("nurse", username="li.na", sites=("SH-01",))
    make_user("nurse", username="wu.fei", sites=("BJ-02",))
    session.commit()
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    files = {
        "unit": [
            '{"type": "unit", "id": "U-9", "checklist": "testcart", "site": "BJ-02", "patient": "P-0009"}\n',
            f'{{"type": "step", "unit": "U-9", "step": "receipt", "at": "{at}", "by": "wu.fei", "fields": {{"temperature_c": -170}}}}\n',
        ],
        "equipment and its readings": [
            '{"type": "equipment", "id": "BJ-F2", "kind": "freezer_minus80", "site": "BJ-02"}\n',
            f'{{"type": "reading", "equipment": "BJ-F2", "at": "{at}", "temperature_c": -80}}\n',
        ],
    }  # fmt: skip
    before = _counts(session)
    for kind, lines in files.items():
        with pytest.raises(Exception, match="does not belong to site BJ-02"):
            import_interchange(
                session=session, registry=registry, lines=lines, source=kind, actor=officer
            )
        session.rollback()
        assert _counts(session) == before, kind
    own = [line.replace("BJ-02", "SH-01").replace("wu.fei", "li.na") for line in files["unit"]]
    summary = import_interchange(
        session=session, registry=registry, lines=own, source="own", actor=officer
    )
    assert summary.units == 1


def test_export_since_keeps_whole_units(session, recorded):
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert list(export_interchange(session=session, since=later)) == []
    earlier = datetime.now(UTC) - timedelta(days=1)
    assert len(list(export_interchange(session=session, since=earlier))) == 8
    assert list(export_interchange(session=session, site="BJ-02")) == []


def test_imported_records_keep_the_findings_the_live_check_gives_each(session, registry, make_site):
    """The import judges record after record (reusing the unit's last judgement as the
    next "before"); what it stores with each record is what `engine.check_step` says of
    that record against the ones before it."""
    from qms.checklists import engine
    from qms.records import queries
    from qms.records.loading import unit_facts

    lines = [
        '{"type": "unit", "id": "U-9", "checklist": "testcart", "site": "SH-01", "patient": "P-0042"}',
        '{"type": "step", "unit": "U-9", "step": "thaw_end", "at": "2026-10-02T09:00:00+08:00", "by": "li.na", "fields": {"temperature_c": 31}, "reason": "bath fault"}',
        '{"type": "step", "unit": "U-9", "step": "identity_check", "at": "2026-10-02T09:05:00+08:00", "by": "li.na", "witness": "wang.wei", "fields": {"product_patient_id": "P-0042", "wristband_patient_id": "P-0043"}, "reason": "wrong bag caught"}',
        '{"type": "step", "unit": "U-9", "step": "infusion_end", "at": "2026-10-02T10:30:00+08:00", "by": "li.na", "reason": "late"}',
        '{"type": "step", "unit": "U-9", "step": "receipt", "at": "2026-10-02T10:40:00+08:00", "by": "li.na", "fields": {"temperature_c": -150}}',
    ]
    make_site("SH-01")
    import_interchange(
        session=session,
        registry=registry,
        lines=lines,
        source="t.jsonl",
        actor=IMPORTER,
        create_missing_users=True,
    )
    checklist = registry.get("testcart")
    unit = session.get(Unit, "U-9")
    history = queries.step_history(session, "U-9")
    facts = queries.step_facts(
        history,
        queries.usernames_of(
            session, {r.performed_by_id for r in history} | {r.witness_id for r in history}
        ),
    )
    stored_codes = []
    for n, (record, fact) in enumerate(zip(history, facts, strict=True)):
        expected = engine.check_step(checklist, unit_facts(unit), facts[:n], fact)
        stored = json.loads(record.findings)
        assert sorted(d["code"] for d in stored) == sorted(f.code for f in expected), record.step
        stored_codes += [d["code"] for d in stored]
    assert {"field.out_of_range", "order.before", "window.max_exceeded"} <= set(stored_codes)


def test_an_imported_complete_unit_is_judged_as_a_status_change_would_judge_it(
    session, registry, make_site
):
    """The import judges a finished unit from the steps it has just written (corrections
    applied) and the readings in one query; the status it stores carries exactly what
    judging the stored records would give."""
    from qms.checklists.engine import evaluate
    from qms.records import queries
    from qms.records.loading import unit_facts
    from qms.records.models import COMPLETE, UnitStatus

    lines = [
        '{"type": "unit", "id": "U-7", "checklist": "testcart", "site": "SH-01", "patient": "P-0042", "status": "complete"}',
        '{"type": "step", "unit": "U-7", "step": "receipt", "at": "2026-10-02T08:00:00+08:00", "by": "li.na", "fields": {"temperature_c": -150}, "record_id": "U-7#1"}',
        '{"type": "step", "unit": "U-7", "step": "thaw_end", "at": "2026-10-02T09:00:00+08:00", "by": "li.na", "fields": {"temperature_c": 31}, "reason": "bath fault", "record_id": "U-7#2"}',
        '{"type": "step", "unit": "U-7", "step": "thaw_end", "at": "2026-10-02T09:00:00+08:00", "by": "li.na", "fields": {"temperature_c": 21}, "corrects": "U-7#2", "reason": "typed 31 for 21", "record_id": "U-7#3", "recorded_at": "2026-10-02T09:10:00+08:00"}',
    ]
    make_site("SH-01")
    import_interchange(
        session=session,
        registry=registry,
        lines=lines,
        source="t.jsonl",
        actor=IMPORTER,
        create_missing_users=True,
    )
    unit = session.get(Unit, "U-7")
    status = session.exec(select(UnitStatus).where(UnitStatus.unit_id == "U-7")).one()
    steps = queries.effective_steps(session, "U-7")
    expected = evaluate(
        registry.get("testcart"),
        unit_facts(unit, COMPLETE),
        steps,
        queries.readings_for(session, steps),
        profile=unit.profile,
    )
    stored = json.loads(status.findings)
    assert stored == [f.to_record() for f in expected]
    assert status.id == "U-7!1" and status.status == COMPLETE
    # The corrected temperature is what was judged: no out-of-range finding remains ...
    assert "field.out_of_range" not in {d["code"] for d in stored}
    # ... and the steps never recorded are.
    assert stored, "a unit completed without its infusion has findings"


def test_imported_records_with_serious_findings_open_their_deviations(session, registry, make_site):
    """An imported record opens a deviation as the bedside record would: one per record
    with a major or critical finding, numbered in turn, by its author; an imported
    correction that still shows the same finding opens none of its own."""
    from qms.quality.models import Deviation

    lines = [
        '{"type": "unit", "id": "U-9", "checklist": "testcart", "site": "SH-01", "patient": "P-0042"}',
        '{"type": "step", "unit": "U-9", "step": "identity_check", "at": "2026-10-02T09:05:00+08:00", "by": "li.na", "witness": "wang.wei", "fields": {"product_patient_id": "P-0042", "wristband_patient_id": "P-0043"}, "reason": "wrong bag caught", "record_id": "U-9#1"}',
        '{"type": "step", "unit": "U-9", "step": "thaw_end", "at": "2026-10-02T09:10:00+08:00", "by": "li.na", "fields": {"temperature_c": 20}, "record_id": "U-9#2"}',
        '{"type": "step", "unit": "U-9", "step": "infusion_end", "at": "2026-10-02T10:30:00+08:00", "by": "li.na", "reason": "late", "record_id": "U-9#3"}',
        '{"type": "step", "unit": "U-9", "step": "infusion_end", "at": "2026-10-02T10:35:00+08:00", "by": "wang.wei", "corrects": "U-9#3", "reason": "clock read wrong", "record_id": "U-9#4"}',
    ]
    make_site("SH-01")
    import_interchange(
        session=session,
        registry=registry,
        lines=lines,
        source="t.jsonl",
        actor=IMPORTER,
        create_missing_users=True,
    )
    opened = list(session.exec(select(Deviation).order_by(Deviation.ledger_seq)))
    assert [(d.id, d.step_record_id, d.source) for d in opened] == [
        ("DEV-SH01-2026-0001", "U-9#1", "step"),
        ("DEV-SH01-2026-0002", "U-9#3", "step"),
    ]
    assert opened[0].classification == "critical" and opened[1].classification == "major"
    assert opened[1].description == "late"
    li_na = session.exec(select(User).where(User.username == "li.na")).one()
    assert {d.opened_by_id for d in opened} == {li_na.id}
    assert verify(session).ok
