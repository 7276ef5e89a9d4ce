"""A data-logger import is chained by a fast path (`ledger.write_many` with a template per
file): what it stores and chains must be exactly what the general path would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core.errors import Invalid
from qms.core.models import LedgerEntry
from qms.core.verify import verify
from qms.db import SEAL_KEY
from qms.storage import service
from qms.storage.loggers import READING_COLUMNS, import_log, reading_items
from qms.storage.models import READING, Reading

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
    row = dict(zip(READING_COLUMNS, (equipment, at, temperature, NOW, by), strict=False))
    row.update(source="logger", imported_at=None, imported_by=None)
    assert ("reading", ref, body) == READING.body(row, lambda _id: "")
    # The times are stored as SQLAlchemy stores them on SQLite (UTCDateTime, then DATETIME).
    dialect = sqlite.dialect()
    stored = Reading.__table__.c.at.type.dialect_impl(dialect).bind_processor(dialect)
    assert values[1] == stored(at) and values[3] == stored(NOW)


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
