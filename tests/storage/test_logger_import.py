"""A data-logger import is chained by a fast path (`ledger.write_many` with a template per
file): what it stores and chains must be exactly what the general path would."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.errors import Invalid
from qms.core.models import LedgerEntry
from qms.core.verify import verify
from qms.db import SEAL_KEY
from qms.storage import service
from qms.storage.loggers import READING_COLUMNS, import_log, reading_constants, reading_items
from qms.storage.models import READING, Reading
from tests.conftest import only_on

SEAL = bytes.fromhex("a7" * 32)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    equipment=st.text(min_size=1, max_size=12),
    by=st.text(min_size=1, max_size=12),
    at=st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(2090, 1, 1)),
    temperature=st.floats(-200, 60, allow_nan=False) | st.integers(-200, 60).map(float),
)
def test_the_template_renders_what_the_declaration_renders(equipment, by, at, temperature):
    at = at.replace(tzinfo=UTC)
    try:
        (equipment + by).encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates: import_log's names come from the database and the session
    [(ref, body, values)] = reading_items(
        equipment, [(at, temperature)], now=NOW, by=by, sqlite=True
    )
    constants = reading_constants(equipment, now=NOW, by=by, sqlite=True)
    assert set(READING_COLUMNS) | set(constants) == {
        c.name for c in Reading.__table__.columns if c.name not in ("id", "ledger_seq")
    }
    row = {"equipment_id": equipment, "at": at, "temperature_c": temperature}
    row.update(recorded_at=NOW, recorded_by=by, source="logger", imported_at=None, imported_by=None)
    assert ("reading", ref, body) == READING.body(row, lambda _id: "")
    assert constants["source"] == "logger" and constants["imported_at"] is None
    # The times are stored as SQLAlchemy stores them on SQLite (UTCDateTime, then DATETIME).
    dialect = sqlite.dialect()
    stored = Reading.__table__.c.at.type.dialect_impl(dialect).bind_processor(dialect)
    assert values[0] == stored(at) and constants["recorded_at"] == stored(NOW)


@pytest.fixture
def dewar(session, make_user):
    actor = Actor.of(make_user("pharmacist", username="chen.jie"))
    service.register_equipment(
        session=session, actor=actor, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
    )
    return actor


def test_an_import_chains_between_other_records_and_verifies(session, dewar):
    """Sealed like an installation's; a manual reading before, one after in the same
    transaction: the chain runs on without a gap and `qms verify` passes, seals included."""
    session.info[SEAL_KEY] = SEAL
    start = NOW - timedelta(days=2)
    service.record_reading(
        session=session, actor=dewar, equipment_id="LN2-01", at=start, temperature_c=-150.0,
        now=NOW,
    )  # fmt: skip
    shanghai = timezone(timedelta(hours=8))
    readings = [
        ((start + timedelta(minutes=i + 1)).astimezone(shanghai), -160 + i * 0.25)
        for i in range(30)
    ]
    count = import_log(
        session=session, actor=dewar, equipment_id="LN2-01", readings=readings, now=NOW
    )
    service.record_reading(
        session=session, actor=dewar, equipment_id="LN2-01", at=start + timedelta(hours=1),
        temperature_c=-149.5, now=NOW,
    )  # fmt: skip
    assert count == 30
    stored = session.exec(select(Reading).order_by(Reading.at)).all()
    assert len(stored) == 32
    assert [r.source for r in stored] == ["manual", *["logger"] * 30, "manual"]
    assert stored[1].at == start + timedelta(minutes=1) and stored[1].temperature_c == -160
    seqs = [e.seq for e in session.exec(select(LedgerEntry).order_by(LedgerEntry.seq))]
    assert seqs == list(range(1, len(seqs) + 1))
    content = json.loads(session.get(LedgerEntry, stored[2].ledger_seq).content)
    assert content["at"] == "2026-05-30T12:02:00.000000Z" and content["temperature_c"] == -159.75
    assert verify(session, seal_key=SEAL).ok


@pytest.mark.parametrize(
    ("reading", "message"),
    [
        ((datetime(2026, 5, 1), -150.0), "UTC offset"),
        ((datetime(2026, 5, 1, tzinfo=UTC), float("nan")), "not a possible reading"),
        ((datetime(2026, 5, 1, tzinfo=UTC), "-150"), "must be a number"),
    ],
)
def test_an_impossible_reading_stores_nothing(session, dewar, reading, message):
    good = (datetime(2026, 4, 1, tzinfo=UTC), -150.0)
    with pytest.raises(Invalid, match=message):
        import_log(
            session=session, actor=dewar, equipment_id="LN2-01", readings=[good, reading], now=NOW
        )
    assert session.exec(select(Reading)).all() == []


def _orphan_insert(session, equipment_id: str, ledger_seq: int):
    return session.connection().execute(
        text(
            "INSERT INTO reading (equipment_id, at, temperature_c, recorded_at, recorded_by, "
            "source, ledger_seq) VALUES (:e, :at, -150, :at, 'x', 'logger', :seq)"
        ),
        {
            "e": equipment_id,
            "at": (NOW - timedelta(days=1)).replace(tzinfo=None),
            "seq": ledger_seq,
        },
    )


def test_a_reading_whose_equipment_or_ledger_entry_is_missing_is_refused(session, dewar):
    """The references of `reading` hold on both databases (PostgreSQL checks them once per
    statement by a trigger, SQLite by its foreign keys), by a single INSERT and by the
    import's bulk path (COPY on PostgreSQL, executemany on SQLite)."""
    service.record_reading(
        session=session, actor=dewar, equipment_id="LN2-01", at=NOW, temperature_c=-150
    )
    equipment_seq = session.exec(
        select(LedgerEntry.seq).where(LedgerEntry.kind == "equipment")
    ).first()
    for equipment_id, seq, missing in (
        ("GHOST-01", equipment_seq, "equipment"),  # an entry no reading uses, no equipment
        ("LN2-01", 10_000_000, "ledger_entry"),  # equipment of the site, no ledger entry
    ):
        nested = session.begin_nested()
        with pytest.raises(IntegrityError) as refused:
            _orphan_insert(session, equipment_id, seq)
        nested.rollback()
        if session.get_bind().dialect.name == "postgresql":
            assert f"is not present in table {missing}" in str(refused.value)
        else:
            assert "FOREIGN KEY constraint failed" in str(refused.value)
    nested = session.begin_nested()
    # The bulk path hands rows to the driver itself: the driver's own error.
    refusals = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)
    with pytest.raises(refusals, match="is not present in table equipment|FOREIGN KEY"):
        ledger.write_many(
            session,
            Reading,
            reading_items(
                "GHOST-01",
                [(NOW - timedelta(minutes=m), -150.0) for m in range(3)],
                now=NOW,
                by="logger",
                sqlite=session.get_bind().dialect.name == "sqlite",
            ),
            columns=READING_COLUMNS,
            constants=reading_constants(
                "GHOST-01", now=NOW, by="logger", sqlite=session.get_bind().dialect.name == "sqlite"
            ),
        )
    nested.rollback()
    assert verify(session).ok


@only_on("postgresql")
def test_verify_names_the_readings_parent_check_disabled(session, dewar):
    session.exec(text("ALTER TABLE reading DISABLE TRIGGER reading_parents"))
    report = verify(session)
    assert not report.ok
    assert any(
        "reading no longer refuses rows whose parent is missing" in p.message
        for p in report.problems
    )
