"""The ledger: one chain under many concurrent writers; the database refuses changes;
`verify` names the record that was altered, removed or inserted."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from qms.accounts import service as accounts
from qms.core import ledger
from qms.core.anchors import LedgerAnchor, anchor
from qms.core.canonical import GENESIS, canonical_json, chain_hash
from qms.core.migration import append_only_sql
from qms.core.models import LedgerEntry
from qms.core.verify import VerifyReport, verify
from qms.db import Database
from qms.records import service
from qms.records.models import StepRecord, Unit
from qms.records.signatures import PasswordEntry, WitnessCredential
from qms.storage import service as storage
from qms.storage.models import Reading
from tests.conftest import only_on

PASSWORD = "correct-horse-battery"
T0 = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)


def _setup(database: Database, registry) -> None:
    """A site, two nurses, a freezer, a unit with two steps and a reading, committed."""
    with database.transaction() as s:
        accounts.create_site(session=s, site_id="SH-01", name="Test Hospital")
        s.flush()
        system = accounts.Actor.system("test")
        for name in ("li.na", "wang.wei"):
            accounts.create_user(
                session=s,
                actor=system,
                username=name,
                full_name=name.title(),
                role="nurse",
                password=PASSWORD,
                site_ids=["SH-01"],
            )
        storage.register_equipment(
            session=s, actor=system, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
        )
    with database.transaction() as s:
        nurse = accounts.get_user_by_username(session=s, username="li.na")
        unit = service.register_unit(
            session=s,
            registry=registry,
            by=nurse,
            unit_id="U-1",
            checklist_id="testcart",
            site_id="SH-01",
            patient_ref="P-0042",
            now=T0,
        )
        service.log_step(
            session=s,
            registry=registry,
            unit_id=unit.id,
            step="identity_check",
            performed_at=T0 + timedelta(minutes=5),
            fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
            by=nurse,
            credential=PasswordEntry(PASSWORD),
            witness=WitnessCredential("wang.wei", PASSWORD),
            freshness_minutes=5,
            now=T0 + timedelta(minutes=6),
        )
        storage.record_reading(
            session=s,
            actor=accounts.Actor.system("logger"),
            equipment_id="LN2-01",
            at=T0 + timedelta(minutes=7),
            temperature_c=-151.5,
            source="logger",
            now=T0 + timedelta(minutes=8),
        )
        service.log_step(
            session=s,
            registry=registry,
            unit_id=unit.id,
            step="thaw_end",
            performed_at=T0 + timedelta(minutes=20),
            fields={"temperature_c": 21.5},
            by=nurse,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            now=T0 + timedelta(minutes=21),
        )


def _entries(database: Database) -> list[tuple]:
    with database.transaction(write=False) as s:
        return [
            (e.seq, e.kind, e.ref) for e in s.exec(select(LedgerEntry).order_by(LedgerEntry.seq))
        ]


def _verify(database: Database, **kwargs) -> VerifyReport:
    """verify in one connection, and as `qms verify` runs it (typed rows on a second
    connection, in parallel): both must say the same of committed data."""
    with database.transaction(write=False) as s:
        alone = verify(s, **kwargs)
    with database.transaction(write=False) as s:
        parallel = verify(s, parallel=True, **kwargs)
    assert sorted(map(str, parallel.problems)) == sorted(map(str, alone.problems))
    assert parallel.rows_checked == alone.rows_checked
    return alone


def _unprotect(database: Database, *tables: str) -> None:
    """What an attacker with database rights would do first."""
    with database.transaction() as s:
        for table in tables:
            for name in ledger.trigger_names(database.dialect, table):
                if database.dialect == "postgresql":
                    s.exec(text(f"DROP TRIGGER {name} ON {table}"))
                else:
                    s.exec(text(f"DROP TRIGGER {name}"))


@pytest.fixture
def built(fresh_database_url, registry):
    database = Database(fresh_database_url)
    _setup(database, registry)
    yield database
    database.dispose()


def test_a_fresh_ledger_verifies(built):
    report = _verify(built)
    assert report.ok, report.problems
    kinds = [kind for _, kind, _ in _entries(built)]
    assert kinds == [
        "equipment",
        "unit",
        "step",
        "signature",
        "signature",
        "reading",
        "step",
        "signature",
    ]
    assert report.records == 8 and report.head_seq == 8 and report.rows_checked == 8
    with built.transaction(write=False) as s:
        head = s.get(LedgerEntry, 8)
        first = s.get(LedgerEntry, 1)
    assert report.head_hash == head.hash
    assert first.prev_hash == GENESIS and first.hash == chain_hash(GENESIS, first.content)


def test_canonical_content_is_the_documented_form(built):
    with built.transaction(write=False) as s:
        step = s.get(LedgerEntry, 3)
        reading = s.get(LedgerEntry, 6)
    doc = json.loads(step.content)
    assert step.content == canonical_json(doc)  # sorted keys, no spaces
    assert doc["performed_at"] == "2026-10-02T01:05:00.000000Z"
    assert doc["performed_by"] == "li.na" and doc["witness"] == "wang.wei"
    assert '"temperature_c":-151.5' in reading.content
    assert json.loads(reading.content)["id"] == "LN2-01@2026-10-02T01:07:00.000000Z"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET content = 'x' WHERE seq = 3",
        "DELETE FROM ledger_entry WHERE seq = 8",
        "UPDATE step_record SET fields = '{}'",
        "DELETE FROM signature",
        "UPDATE unit SET patient_ref = 'P-9'",
        "UPDATE reading SET temperature_c = -190",
        "DELETE FROM reading",
        "UPDATE audit_trail SET reason = 'nothing happened'",
        "DELETE FROM login_event",
        "UPDATE equipment SET site_id = 'BJ-02'",
        "DELETE FROM equipment",
        "UPDATE login_event SET kind = 'success'",
    ],
)
def test_the_database_refuses_update_and_delete(built, statement):
    with built.transaction() as s:
        s.add(accounts.LoginEvent(username="li.na", kind="failure"))
    with pytest.raises(DBAPIError, match="append-only"):
        with built.transaction() as s:
            s.exec(text(statement))
    assert _verify(built).ok


@only_on("postgresql")  # SQLite has no TRUNCATE
def test_truncate_is_refused_on_postgresql(built):
    with pytest.raises(DBAPIError, match="append-only"):
        with built.transaction() as s:
            s.exec(text("TRUNCATE ledger_entry CASCADE"))


def test_verify_names_an_altered_record(built):
    _unprotect(built, "ledger_entry")
    with built.transaction() as s:
        s.exec(
            text("UPDATE ledger_entry SET content = replace(content, '21.5', '24') WHERE seq = 7")
        )
    report = _verify(built)
    assert not report.ok
    first = report.first_problem
    assert (first.seq, first.kind, first.ref) == (7, "step", "U-1#2")
    assert "altered" in first.message
    assert any("ledger_entry is no longer protected" in p.message for p in report.problems)


def test_verify_names_a_record_altered_with_its_hash_recomputed(built):
    _unprotect(built, "ledger_entry")
    with built.transaction() as s:
        entry = s.get(LedgerEntry, 3)
        forged = entry.content.replace("P-0042", "P-0043")
        s.exec(
            text("UPDATE ledger_entry SET content = :c, hash = :h WHERE seq = 3"),
            params={"c": forged, "h": chain_hash(entry.prev_hash, forged)},
        )
    report = _verify(built)
    first = report.first_problem
    assert (first.seq, first.kind, first.ref) == (3, "step", "U-1#1")
    assert "altered" in first.message
    # The typed row still says P-0042: it no longer matches what the chain covers.
    assert any(
        p.seq == 3 and "step_record row no longer matches" in p.message for p in report.problems
    )


def test_verify_names_a_typed_row_that_no_longer_matches(built):
    _unprotect(built, "step_record")
    with built.transaction() as s:
        s.exec(
            text("UPDATE step_record SET fields = :f WHERE id = 'U-1#2'"),
            params={"f": '{"temperature_c":24}'},
        )
    report = _verify(built)
    first = report.first_problem
    assert (first.seq, first.kind, first.ref) == (7, "step", "U-1#2")
    assert "step_record row no longer matches what the chain covers" in first.message


def test_verify_names_a_device_moved_to_another_site(built):
    """A freezer moved to another site in the database (its trigger dropped first)."""
    with built.transaction() as s:
        accounts.create_site(session=s, site_id="BJ-02", name="Other Hospital")
    _unprotect(built, "equipment")
    with built.transaction() as s:
        s.exec(text("UPDATE equipment SET site_id = 'BJ-02' WHERE id = 'LN2-01'"))
    report = _verify(built)
    first = report.first_problem
    assert (first.seq, first.kind, first.ref) == (1, "equipment", "LN2-01")
    assert "equipment row no longer matches what the chain covers" in first.message


def test_verify_names_a_device_added_outside_qms(built):
    with built.transaction() as s:
        s.exec(
            text(
                "INSERT INTO equipment (id, site_id, kind, description, active, created_at, created_by) "
                "VALUES ('LN2-99', 'SH-01', 'ln2_vapour', '', true, '2026-10-02 01:00:00.000000', 'x')"
            )
        )
    problems = [str(p) for p in _verify(built).problems]
    assert problems == [
        "ledger (equipment LN2-99): its equipment row is not chained (added outside qms)"
    ]


def test_a_device_is_still_taken_out_of_use_with_a_reason(built):
    with built.transaction() as s:
        storage.set_equipment_active(
            session=s,
            actor=accounts.Actor.system("test"),
            equipment_id="LN2-01",
            active=False,
            reason="compressor failed",
        )
    assert _verify(built).ok


def test_verify_names_a_removed_record(built):
    _unprotect(built, "ledger_entry", "reading")
    with built.transaction() as s:
        s.exec(text("DELETE FROM reading"))
        s.exec(text("DELETE FROM ledger_entry WHERE seq = 6"))
    report = _verify(built)
    first = report.first_problem
    assert first.seq == 6 and "removed" in first.message


def test_verify_names_records_removed_from_the_end_against_a_quoted_head(built):
    quoted = _verify(built).head_hash
    _unprotect(built, "ledger_entry", "signature")
    with built.transaction() as s:
        s.exec(text("DELETE FROM signature WHERE ledger_seq = 8"))
        s.exec(text("DELETE FROM ledger_entry WHERE seq = 8"))
    assert _verify(built).problems == [
        p for p in _verify(built).problems if "protected" in p.message
    ]  # without the quoted hash the chain itself looks whole ...
    report = _verify(built, expect_hashes=(quoted,))
    assert any(quoted in p.message for p in report.problems)  # ... with it, it does not


def _reprotect(database: Database, *tables: str) -> None:
    """What a careful attacker does last: the triggers back, so verify sees them in place."""
    with database.transaction() as s:
        for table in tables:
            for statement in append_only_sql(database.dialect, table):
                s.exec(text(statement))


def test_verify_names_an_anchored_head_after_records_are_removed_from_the_end(built):
    """Truncation with the triggers restored leaves a chain that is whole in itself; the
    head an earlier verify anchored no longer stands, and verify says which one."""
    before = _verify(built)
    with built.transaction() as s:
        anchor(s, source="verify", head_seq=before.head_seq, head_hash=before.head_hash)
    _unprotect(built, "ledger_entry", "signature")
    with built.transaction() as s:
        s.exec(text("DELETE FROM signature WHERE ledger_seq = 8"))
        s.exec(text("DELETE FROM ledger_entry WHERE seq = 8"))
    _reprotect(built, "ledger_entry", "signature")
    report = _verify(built)
    assert [str(p) for p in report.problems] == [
        f"record 8: the head anchored by qms verify at {str(_anchored_at(built))[:19]} "
        f"(hash {before.head_hash}) no longer stands: record 8 was removed (the ledger ends before it)"
    ]


def test_verify_names_an_anchored_head_that_was_rewritten(built):
    """The last record replaced by another, correctly chained: the anchored hash is gone."""
    report = _verify(built)
    with built.transaction() as s:
        anchor(s, source="report", source_ref="RPT-1", head_seq=8, head_hash=report.head_hash)
    _unprotect(built, "ledger_entry", "signature")
    with built.transaction() as s:
        entry = s.get(LedgerEntry, 8)
        forged = entry.content.replace("li.na", "wang.wei")
        s.exec(
            text("UPDATE ledger_entry SET content = :c, hash = :h WHERE seq = 8"),
            params={"c": forged, "h": chain_hash(entry.prev_hash, forged)},
        )
    _reprotect(built, "ledger_entry", "signature")
    problems = [p for p in _verify(built).problems if "anchored" in p.message]
    assert len(problems) == 1
    assert "anchored by report RPT-1" in problems[0].message
    assert "record 8 now has another hash" in problems[0].message


def _truncate_to(database: Database, seq: int, tables: tuple[str, ...], *deletes: str) -> None:
    """Remove the ledger's entries after `seq` and, by the DELETE statements given, their
    typed rows, triggers dropped and restored: a shorter chain, whole in itself."""
    _unprotect(database, "ledger_entry", *tables)
    with database.transaction() as s:
        for statement in deletes:
            s.exec(text(statement))
        s.exec(text("DELETE FROM ledger_entry WHERE seq > :seq"), params={"seq": seq})
    _reprotect(database, "ledger_entry", *tables)


def test_an_audit_run_anchors_the_head_it_judged(built, registry):
    """Removing the records an audit run judged (and the run) is named by verify."""
    from qms.quality import audits

    with built.transaction() as s:
        officer = accounts.create_user(
            session=s,
            actor=accounts.Actor.system("test"),
            username="liu.yang",
            full_name="Liu Yang",
            role="quality_officer",
            password=PASSWORD,
            site_ids=["SH-01"],
        )
        run = audits.run_audit(
            session=s,
            registry=registry,
            by=officer,
            scope=audits.AuditScope(site_id="SH-01"),
            now=T0 + timedelta(days=1),
        )
        run_id, covered = run.id, json.loads(run.covers)
    assert covered["seq"] == 8 and _verify(built).ok
    _truncate_to(
        built,
        7,
        ("audit_run", "signature"),
        "DELETE FROM audit_run",
        "DELETE FROM signature WHERE ledger_seq = 8",
    )
    messages = [p.message for p in _verify(built).problems]
    assert any(
        f"the head anchored by audit run {run_id}" in m and "record 8 was removed" in m
        for m in messages
    ), messages


def test_a_report_anchors_the_head_it_covers(built, tmp_path):
    """Removing the records a registered report covers (and its row) is named by verify."""
    from tests.conftest import make_test_settings
    from tests.reports.conftest import registered_dossier

    settings = make_test_settings(tmp_path)
    with built.transaction() as s:
        nurse = accounts.get_user_by_username(session=s, username="li.na")
        row = registered_dossier(s, settings, s.get(Unit, "U-1"), nurse, T0)
        report_id, covered = row.id, row.ledger_head_seq
    assert covered == 8 and _verify(built).ok
    _truncate_to(
        built,
        7,
        ("report_version", "signature"),
        "DELETE FROM report_version",
        "DELETE FROM signature WHERE ledger_seq = 8",
    )
    messages = [p.message for p in _verify(built).problems]
    assert any(
        f"the head anchored by report {report_id}" in m and "record 8 was removed" in m
        for m in messages
    ), messages


def test_anchors_are_append_only(built):
    with built.transaction() as s:
        anchor(s, source="audit", source_ref="AR-1", head_seq=8, head_hash="0" * 64)
    for statement in ("UPDATE ledger_anchor SET head_seq = 1", "DELETE FROM ledger_anchor"):
        with pytest.raises(DBAPIError, match="append-only"):
            with built.transaction() as s:
                s.exec(text(statement))


KEY = bytes.fromhex("5e" * 32)


@pytest.fixture
def sealed(fresh_database_url, registry):
    """The same ledger, written by an installation that seals its entries."""
    database = Database(fresh_database_url, seal_key=KEY)
    _setup(database, registry)
    yield database
    database.dispose()


def _forge_reading(url: str, minute: int, **database) -> None:
    """What someone with database rights but without the ledger key can do: run qms's own
    code (or hand-written SQL) to append a correctly chained record."""
    forger = Database(url, **database)
    with forger.transaction() as s:
        storage.record_reading(
            session=s,
            actor=accounts.Actor.system("logger"),
            equipment_id="LN2-01",
            at=T0 + timedelta(minutes=minute),
            temperature_c=-150.0,
            source="logger",
            now=T0 + timedelta(minutes=minute + 1),
        )
    forger.dispose()


def test_a_sealed_ledger_verifies_with_its_key(sealed):
    report = _verify(sealed, seal_key=KEY)
    assert report.ok, report.problems
    assert report.seals_checked and report.sealed_from == 1
    with sealed.transaction(write=False) as s:
        entry = s.get(LedgerEntry, 8)
    assert entry.seal == ledger.seal_of(KEY, entry.hash)


def test_verify_names_a_correctly_chained_append_made_without_the_key(sealed):
    _forge_reading(sealed.url, 30)
    assert _verify(sealed).ok  # the chain alone cannot tell ...
    report = _verify(sealed, seal_key=KEY)  # ... the seal can
    assert [str(p) for p in report.problems] == [
        "record 9 (reading LN2-01@2026-10-02T01:30:00.000000Z): not sealed, though every "
        "record since 1 is: written outside qms"
    ]


def test_verify_names_an_append_sealed_with_another_key(sealed):
    _forge_reading(sealed.url, 30, seal_key=bytes.fromhex("17" * 32))
    report = _verify(sealed, seal_key=KEY)
    assert [(p.seq, p.kind) for p in report.problems] == [(9, "reading")]
    assert "seal does not match this installation's ledger key" in report.problems[0].message


def test_records_from_before_sealing_began_verify(sealed_later):
    report = _verify(sealed_later, seal_key=KEY)
    assert report.ok, report.problems
    assert report.sealed_from == 9


@pytest.fixture
def sealed_later(built):
    """A ledger written before sealing began (an upgraded installation), then sealed."""
    _forge_reading(built.url, 30, seal_key=KEY)
    return built


def test_verify_with_the_wrong_key_names_every_sealed_record(sealed):
    report = _verify(sealed, seal_key=bytes.fromhex("17" * 32))
    assert [p.seq for p in report.problems] == [1, 2, 3, 4, 5, 6, 7, 8]


def _anchored_at(database: Database):
    with database.transaction(write=False) as s:
        return s.exec(select(LedgerAnchor.recorded_at)).one()


def test_verify_names_an_inserted_record(built):
    """Shift the later records up and slip a forged reading in at position 5."""
    _unprotect(built, "ledger_entry", "reading", "signature", "step_record")
    with built.transaction() as s:
        if built.dialect == "postgresql":
            s.exec(text("SET LOCAL session_replication_role = replica"))  # foreign keys off
        else:
            s.exec(text("PRAGMA defer_foreign_keys = ON"))
        for table, column in (
            ("signature", "ledger_seq"),
            ("step_record", "ledger_seq"),
            ("reading", "ledger_seq"),
            ("ledger_entry", "seq"),
        ):
            s.exec(text(f"UPDATE {table} SET {column} = {column} + 1000 WHERE {column} >= 5"))  # noqa: S608
            s.exec(text(f"UPDATE {table} SET {column} = {column} - 999 WHERE {column} >= 1005"))  # noqa: S608
        forged = canonical_json(
            ledger.content_of(
                Reading(
                    equipment_id="LN2-01",
                    at=T0 + timedelta(minutes=6),
                    temperature_c=-150,
                    recorded_at=T0 + timedelta(minutes=6),
                    recorded_by="logger",
                    source="logger",
                ),
                usernames={},
            )
        )
        fake_previous = "f" * 64  # the real one is taken: prev_hash is unique
        s.exec(
            text(
                "INSERT INTO ledger_entry (seq, kind, ref, content, prev_hash, hash) "
                "VALUES (5, 'reading', :ref, :content, :prev, :hash)"
            ),
            params={
                "ref": json.loads(forged)["id"],
                "content": forged,
                "prev": fake_previous,
                "hash": chain_hash(fake_previous, forged),
            },
        )
    report = _verify(built)
    first = report.first_problem
    assert (first.seq, first.kind) == (5, "reading")
    assert first.message.startswith("inserted")


def test_concurrent_writers_keep_one_chain(fresh_database_url, registry):
    """Many writers, each with its own connection, append at once: no fork, nothing lost."""
    setup = Database(fresh_database_url)
    _setup(setup, registry)
    before = _verify(setup).records
    setup.dispose()
    writers, per_writer = 8, 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(index: int) -> None:
        database = Database(fresh_database_url)
        try:
            barrier.wait()
            for n in range(per_writer):
                with database.transaction() as s:
                    storage.record_reading(
                        session=s,
                        actor=accounts.Actor.system(f"logger {index}"),
                        equipment_id="LN2-01",
                        at=T0 + timedelta(hours=1, seconds=index * 1000 + n),
                        temperature_c=-150 - index,
                        source="logger",
                    )
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    database = Database(fresh_database_url)
    try:
        report = _verify(database)
        assert report.ok, report.problems
        assert report.records == before + writers * per_writer
        seqs = [seq for seq, _, _ in _entries(database)]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        database.dispose()


@only_on("sqlite")  # PostgreSQL serialises with an advisory lock in any transaction
def test_appending_needs_a_write_session_on_sqlite(fresh_database_url, backend):
    database = Database(fresh_database_url)
    try:
        with (
            database.transaction(write=False) as s,
            pytest.raises(RuntimeError, match="write session"),
        ):
            ledger.append(s, "unit", "U-1", {"type": "unit", "id": "U-1"})
    finally:
        database.dispose()


def test_verify_names_an_altered_unit_status(built, registry):
    from qms.records.status import set_unit_status

    with built.transaction() as s:
        nurse = accounts.get_user_by_username(session=s, username="li.na")
        set_unit_status(
            session=s,
            registry=registry,
            unit_id="U-1",
            status="cancelled",
            by=nurse,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            reason="infusion stopped",
        )
    assert _verify(built).ok
    _unprotect(built, "unit_status")
    with built.transaction() as s:  # someone turns a cancelled unit into a complete one
        s.exec(text("UPDATE unit_status SET status = 'complete', reason = NULL"))
    report = _verify(built)
    altered = [p for p in report.problems if p.kind == "unit_status"]
    assert altered and "altered" in altered[0].message and altered[0].ref == "U-1!1"
    assert any("unit_status is no longer protected" in p.message for p in report.problems)


TRICKY_TEXTS = [
    'quote " backslash \\ slash /',
    "controls \x01\x08\t\n\x0c\r\x1f and del \x7f",
    "中文 · émigré · 🧊 · \u2028\u2029 · \ufeff",
    "",
]


def test_the_database_pass_vouches_for_tricky_values_and_python_agrees(built, registry):
    """Rows with every kind of character and ordinary numbers: the SQL rendering matches the
    chain byte for byte (no suspect). Numbers whose shortest form needs more than 15 digits,
    or that SQLite writes in its own exponent form, come back as suspects, and Python
    clears them: both passes agree."""
    with built.transaction() as s:
        nurse = accounts.get_user_by_username(session=s, username="li.na")
        for n, tricky in enumerate(TRICKY_TEXTS):
            service.register_unit(
                session=s,
                registry=registry,
                by=nurse,
                unit_id=f"T-{n}",
                checklist_id="testcart",
                site_id="SH-01",
                patient_ref=f"P-{n}0",
                attributes={"note": tricky, "nested": {"b": [1, 2.5, None, True], "a": tricky}},
                now=T0,
            )
        for n, value in enumerate([-151.3, -0.0, 12.0, 21.5, -80.25, 4.125]):
            storage.record_reading(
                session=s,
                actor=accounts.Actor.system(TRICKY_TEXTS[n % len(TRICKY_TEXTS)] or "logger"),
                equipment_id="LN2-01",
                at=T0 + timedelta(minutes=30 + n),
                temperature_c=value,
                source="logger",
                now=T0 + timedelta(hours=1),
            )
    from qms.core.ledger import RECORD_TYPES
    from qms.core.verify import _suspects_sql

    with built.transaction(write=False) as s:
        connection = s.connection()
        for declaration in RECORD_TYPES.values():
            sql = _suspects_sql(connection.dialect.name, declaration)
            joined, suspects = connection.exec_driver_sql(sql).one()
            assert suspects is None, declaration.table
    with built.transaction() as s:
        for n, value in enumerate([0.1 + 0.2, 1e-05, 99.99999999999999, -273.1499999999999]):
            storage.record_reading(
                session=s,
                actor=accounts.Actor.system("logger"),
                equipment_id="LN2-01",
                at=T0 + timedelta(minutes=50 + n),
                temperature_c=value,
                source="logger",
                now=T0 + timedelta(hours=1),
            )
    with built.transaction(write=False) as s:
        fast = verify(s)
        thorough = verify(s, thorough=True)
    assert fast.ok and thorough.ok
    assert fast.rows_checked == thorough.rows_checked


@pytest.mark.parametrize(
    "table, column, value",
    [
        ("unit", "patient_ref", "'P-9'"),
        ("unit", "attributes", "'{\"age_years\":35}'"),
        ("unit", "registered_at", "registered_at"),  # the same value: no change, no finding
        ("unit", "registered_by_id", "NULL"),
        ("step_record", "fields", "'{}'"),
        ("step_record", "witness_id", "NULL"),
        ("step_record", "reason", "'typed later'"),
        ("step_record", "corrects_id", "'U-1#1'"),
        ("signature", "printed_name", "'Someone Else'"),
        ("signature", "method", "'session'"),
        ("reading", "temperature_c", "-151.50000000000003"),
        ("reading", "equipment_id", "'LN2-02'"),
    ],
)
def test_an_altered_column_of_any_table_is_named_by_both_passes(built, table, column, value):
    with built.transaction() as s:
        if column == "equipment_id":
            storage.register_equipment(
                session=s,
                actor=accounts.Actor.system("test"),
                equipment_id="LN2-02",
                kind="ln2_vapour",
                site_id="SH-01",
            )
    _unprotect(built, table)
    with built.transaction() as s:
        if built.dialect == "postgresql":
            s.exec(text("SET LOCAL session_replication_role = replica"))  # foreign keys off
        else:
            s.exec(text("PRAGMA defer_foreign_keys = ON"))
        s.connection().exec_driver_sql(f"UPDATE {table} SET {column} = {value}")  # noqa: S608
    fast, thorough = _verify(built), _verify(built, thorough=True)
    named = sorted((p.seq, p.message) for p in fast.problems if "protected" not in p.message)
    assert named == sorted(
        (p.seq, p.message) for p in thorough.problems if "protected" not in p.message
    )
    if value == column:
        assert named == []
    else:
        assert named and all("altered" in message for _, message in named)


def _at_once(url: str, writers: int, work) -> list[BaseException]:
    """Run `work(session)` in `writers` threads at the same moment, each in its own
    connection and transaction; return what each raised (None when it committed)."""
    barrier = threading.Barrier(writers)
    outcome: list = [None] * writers

    def run(index: int) -> None:
        database = Database(url)
        try:
            barrier.wait()
            with database.transaction() as s:
                work(s)
        except BaseException as exc:  # counted by the test
            outcome[index] = exc
        finally:
            database.dispose()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_fifty_concurrent_writers_store_a_once_only_step_once(fresh_database_url, registry):
    """The "already recorded" check is decided under the ledger's lock: of 50 nurses
    recording the same non-repeating step at once, one stores it and 49 are told."""
    from qms.core.errors import Conflict

    setup = Database(fresh_database_url)
    _setup(setup, registry)  # U-1 has identity_check and thaw_end; receipt is not recorded
    setup.dispose()

    def receipt(s) -> None:
        nurse = accounts.get_user_by_username(session=s, username="li.na")
        service.log_step(
            session=s,
            registry=registry,
            unit_id="U-1",
            step="receipt",
            performed_at=T0 + timedelta(minutes=30),
            fields={"temperature_c": -150},
            by=nurse,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            now=T0 + timedelta(minutes=31),
        )

    outcome = _at_once(fresh_database_url, 50, receipt)
    assert [type(e) for e in outcome].count(type(None)) == 1
    assert all(isinstance(e, Conflict) for e in outcome if e is not None)
    database = Database(fresh_database_url)
    try:
        with database.transaction(write=False) as s:
            stored = s.exec(
                select(StepRecord).where(StepRecord.unit_id == "U-1", StepRecord.step == "receipt")
            ).all()
        assert len(stored) == 1
        assert _verify(database).ok
    finally:
        database.dispose()


def test_fifty_concurrent_writers_cancel_a_unit_once(fresh_database_url, registry):
    from qms.core.errors import Conflict
    from qms.records.models import UnitStatus
    from qms.records.status import set_unit_status

    setup = Database(fresh_database_url)
    _setup(setup, registry)
    setup.dispose()

    def cancel(s) -> None:
        set_unit_status(
            session=s,
            registry=registry,
            unit_id="U-1",
            status="cancelled",
            by=accounts.get_user_by_username(session=s, username="wang.wei"),
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            reason="infusion stopped",
            now=T0 + timedelta(hours=1),
        )

    outcome = _at_once(fresh_database_url, 50, cancel)
    assert [type(e) for e in outcome].count(type(None)) == 1
    assert all(isinstance(e, Conflict) for e in outcome if e is not None)
    database = Database(fresh_database_url)
    try:
        with database.transaction(write=False) as s:
            assert len(s.exec(select(UnitStatus)).all()) == 1
        assert _verify(database).ok
    finally:
        database.dispose()


def test_fifty_concurrent_imports_of_one_unit_store_it_once(fresh_database_url, registry):
    """Fifty imports of a file with the same unit at once: one stores it, 49 are told in
    the import's own words, with the line, as a second import is (never a database error)."""
    from qms.records.importer import ImportFileError, import_interchange
    from qms.records.models import Unit

    setup = Database(fresh_database_url)
    _setup(setup, registry)
    setup.dispose()
    line = (
        '{"type": "unit", "id": "U-50", "checklist": "testcart", "site": "SH-01", '
        '"patient": "P-0050", "coi_id": "CHG123426ABC123"}\n'
    )

    def import_it(s) -> None:
        import_interchange(
            session=s,
            registry=registry,
            lines=[line],
            source="same.jsonl",
            actor=accounts.Actor.system("test"),
        )

    outcome = _at_once(fresh_database_url, 50, import_it)
    assert [type(e) for e in outcome].count(type(None)) == 1
    refused = [e for e in outcome if e is not None]
    assert all(isinstance(e, ImportFileError) for e in refused), {type(e) for e in refused}
    assert all("same.jsonl:1: unit U-50 already exists in this database" in str(e) for e in refused)
    database = Database(fresh_database_url)
    try:
        with database.transaction(write=False) as s:
            assert len(s.exec(select(Unit).where(Unit.id == "U-50")).all()) == 1
        assert _verify(database).ok
    finally:
        database.dispose()


def test_fifty_concurrent_registrations_of_one_unit_store_it_once(fresh_database_url, registry):
    from qms.core.errors import Conflict

    setup = Database(fresh_database_url)
    _setup(setup, registry)
    setup.dispose()

    def register(s) -> None:
        service.register_unit(
            session=s,
            registry=registry,
            by=accounts.get_user_by_username(session=s, username="li.na"),
            unit_id="U-51",
            checklist_id="testcart",
            site_id="SH-01",
            patient_ref="P-0051",
            now=T0,
        )

    outcome = _at_once(fresh_database_url, 50, register)
    assert [type(e) for e in outcome].count(type(None)) == 1
    refused = [e for e in outcome if e is not None]
    assert all(isinstance(e, Conflict) for e in refused), {type(e) for e in refused}
    assert all("unit U-51 is already registered" in str(e) for e in refused)


@only_on("postgresql")  # triggers in replica mode are PostgreSQL's
def test_verify_reports_triggers_switched_to_replica_mode(built):
    """ENABLE REPLICA TRIGGER lets ordinary sessions UPDATE the table: verify must say so."""
    with built.transaction() as s:
        for name in ledger.trigger_names(built.dialect, "ledger_entry"):
            s.exec(text(f"ALTER TABLE ledger_entry ENABLE REPLICA TRIGGER {name}"))
    with built.transaction() as s:  # the bypass works: the update goes through
        s.exec(text("UPDATE ledger_entry SET content = content WHERE seq = 6"))
    report = _verify(built)
    assert any("ledger_entry is no longer protected" in p.message for p in report.problems)
