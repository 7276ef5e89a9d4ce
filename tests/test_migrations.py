"""The schema is made only by migrations, and the models agree with them."""

from alembic import command
from sqlalchemy import inspect

from qms.db import alembic_config, current_revision, make_engine, metadata, migrate


def test_models_and_migrations_agree(fresh_database_url):
    # alembic check fails when autogenerate would produce any operation.
    command.check(alembic_config(fresh_database_url))


def test_init_db_is_idempotent_and_creates_every_table(fresh_database_url):
    head = current_revision(fresh_database_url)
    migrate(fresh_database_url)
    assert current_revision(fresh_database_url) == head
    engine = make_engine(fresh_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables


def test_records_chained_at_revision_0003_still_verify_after_the_upgrade(backend, empty_databases):
    """A database of revision 0003 holds records of canonical form 1 (findings as English
    words); after `qms init-db` to the newest revision they verify beside new form-2 records."""
    import json
    from datetime import UTC, datetime

    from sqlalchemy import insert, text

    from qms.accounts import service as accounts
    from qms.core.canonical import GENESIS, canonical_json, chain_hash
    from qms.core.models import LedgerEntry
    from qms.core.verify import verify
    from qms.db import Database
    from qms.records.models import STEP_RECORD, UNIT, StepRecord, Unit
    from qms.storage import service as storage

    url = empty_databases.new(backend, migrated=False)
    command.upgrade(alembic_config(url), "0003")
    at = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)
    old_finding = {
        "unit": "OLD-1",
        "kind": "limit",
        "rule": "testcart.thaw_temperature",
        "severity": "major",
        "steps": ["thaw_end"],
        "message": "Thaw completed: temperature (thaw_end.temperature_c) was 31 °C, above the maximum of 25 °C.",
        "limit": "25 °C",
        "actual": "31 °C",
    }
    engine = make_engine(url)
    try:
        with engine.begin() as c:  # what the code of revision 0003 wrote
            c.execute(
                text(
                    "INSERT INTO site (id, name, timezone, created_at) VALUES ('SH-01', 'Old', 'Asia/Shanghai', :t)"
                ),
                {"t": at},
            )
            c.execute(
                text(
                    "INSERT INTO app_user (username, full_name, role, password_hash, active, created_at) "
                    "VALUES ('li.na', 'Li Na', 'nurse', '!', true, :t)"
                ),
                {"t": at},
            )
            user_id = c.execute(text("SELECT id FROM app_user")).scalar_one()
            unit = {
                "id": "OLD-1",
                "site_id": "SH-01",
                "checklist_id": "testcart",
                "checklist_version": "1.0",
                "profile": None,
                "coi_id": None,
                "patient_ref": "P-0001",
                "attributes": "{}",
                "registered_at": at,
                "registered_by_id": user_id,
                "imported_at": None,
                "imported_by": None,
            }
            step = {
                "id": "OLD-1#1",
                "unit_id": "OLD-1",
                "step": "thaw_end",
                "fields": '{"temperature_c":31}',
                "performed_at": at,
                "recorded_at": at,
                "performed_by_id": user_id,
                "performed_by_role": "nurse",
                "witness_id": None,
                "witness_role": None,
                "recorded_by_id": user_id,
                "meaning": "performed",
                "checklist_id": "testcart",
                "checklist_version": "1.0",
                "corrects_id": None,
                "reason": "bath too warm",
                "findings": canonical_json([old_finding]),
                "imported_at": None,
                "imported_by": None,
            }
            previous = GENESIS
            for seq, (declaration, row, table) in enumerate(
                [(UNIT, unit, Unit.__table__), (STEP_RECORD, step, StepRecord.__table__)], start=1
            ):
                content = {**declaration.content(row, {user_id: "li.na"}.__getitem__), "v": 1}
                body = canonical_json(content)
                digest = chain_hash(previous, body)
                c.execute(
                    insert(LedgerEntry.__table__),
                    {
                        "seq": seq,
                        "kind": content["type"],
                        "ref": content["id"],
                        "content": body,
                        "prev_hash": previous,
                        "hash": digest,
                    },
                )
                c.execute(insert(table), {**row, "ledger_seq": seq})
                previous = digest
    finally:
        engine.dispose()
    migrate(url)  # qms init-db: to the newest revision
    database = Database(url)
    try:
        with database.transaction() as s:
            accounts.create_user(
                session=s,
                actor=accounts.Actor.system("test"),
                username="wang.wei",
                full_name="Wang Wei",
                role="nurse",
                password=None,
                site_ids=["SH-01"],
            )
            system = accounts.Actor.system("test")
            storage.register_equipment(
                session=s, actor=system, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
            )
            storage.record_reading(
                session=s, actor=system, equipment_id="LN2-01", at=at, temperature_c=-160.5
            )
        with database.transaction(write=False) as s:
            report = verify(s)
            old, new = s.get(LedgerEntry, 2).content, s.get(LedgerEntry, 3).content
        assert report.ok, report.problems
        assert report.rows_checked == 4  # unit, step, then the device and its reading
        assert '"v":1' in old and json.loads(old)["findings"][0]["message"].startswith("Thaw")
        assert json.loads(new)["v"] == 2
    finally:
        database.dispose()


def test_equipment_of_revision_0010_is_chained_and_sealed_by_the_upgrade(backend, empty_databases):
    """Devices registered before equipment was chained (and a reading of one) get their
    ledger entries from migration 0011, sealed with the key `qms init-db` passes; the
    ledger then verifies, and moving a device is refused by the database."""
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy import insert, text
    from sqlalchemy.exc import DBAPIError

    from qms.core.verify import verify
    from qms.db import Database
    from qms.storage.models import Equipment

    key = bytes.fromhex("42" * 32)
    url = empty_databases.new(backend, migrated=False)
    command.upgrade(alembic_config(url), "0010")
    at = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)
    engine = make_engine(url)
    try:
        with engine.begin() as c:  # what the code of revision 0010 wrote
            c.execute(
                text(
                    "INSERT INTO site (id, name, timezone, created_at) VALUES ('SH-01', 'Old', 'Asia/Shanghai', :t)"
                ),
                {"t": at},
            )
            for n, device in enumerate(("LN2-02", "LN2-01")):
                c.execute(  # through the column types, as the app stored them
                    insert(Equipment.__table__).values(
                        id=device,
                        site_id="SH-01",
                        kind="ln2_vapour",
                        description="Dewar",
                        active=True,
                        created_at=at.replace(minute=n),
                        created_by="admin",
                    )
                )
    finally:
        engine.dispose()
    migrate(url, seal_key=key)
    database = Database(url, seal_key=key)
    try:
        with database.transaction(write=False) as s:
            report = verify(s, seal_key=key)
            chained = s.execute(
                text(
                    "SELECT e.id, l.seq FROM equipment e JOIN ledger_entry l ON l.seq = e.ledger_seq ORDER BY l.seq"
                )
            ).all()
        assert report.ok, report.problems
        assert report.sealed_from == 1
        assert [row[0] for row in chained] == ["LN2-02", "LN2-01"]  # in the order created
        with pytest.raises(DBAPIError, match="append-only"):
            with database.transaction() as s:
                s.execute(text("UPDATE equipment SET site_id = 'BJ-02' WHERE id = 'LN2-01'"))
        with database.transaction() as s:  # taking a device out of use stays possible
            s.execute(text("UPDATE equipment SET active = false WHERE id = 'LN2-01'"))
    finally:
        database.dispose()
