"""The nightly ledger check records the head and alerts when the ledger lost records."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlmodel import select

from qms.db import Database
from qms.scheduling.models import Alert, JobRun
from qms.scheduling.nightly import nightly_verify
from tests.scheduling.conftest import seed_site_with_schedule


def test_nightly_verify_records_the_head_and_alerts_when_it_is_gone(fresh_database_url, backend):
    database = Database(fresh_database_url)
    try:
        seed_site_with_schedule(database)
        first = nightly_verify(database)
        assert first.ok and first.head_seq == 1 and len(first.head_hash) == 64
        from qms.core.anchors import LedgerAnchor

        with database.transaction(write=False) as session:
            (anchor,) = session.exec(select(LedgerAnchor)).all()
        assert (anchor.source, anchor.head_seq, anchor.head_hash) == ("verify", 1, first.head_hash)
        assert anchor.source_ref == f"nightly job run {first.id}"
        seed_site_with_schedule(database)
        assert nightly_verify(database).head_seq == 2
        # Someone strips the protection and removes the newest record with its entry.
        with database.transaction() as session:
            if backend == "sqlite":
                session.execute(text("DROP TRIGGER schedule_refuse_delete"))
                session.execute(text("DROP TRIGGER ledger_entry_refuse_delete"))
            else:
                session.execute(text("ALTER TABLE schedule DISABLE TRIGGER USER"))
                session.execute(text("ALTER TABLE ledger_entry DISABLE TRIGGER USER"))
            session.execute(text("DELETE FROM schedule WHERE ledger_seq = 2"))
            session.execute(text("DELETE FROM ledger_entry WHERE seq = 2"))
        third = nightly_verify(database)
        assert not third.ok
        with database.transaction(write=False) as session:
            alert = session.exec(select(Alert)).one()
            runs = session.exec(select(JobRun).order_by(JobRun.id)).all()
        assert alert.code == "verify.head_missing"
        assert json.loads(alert.params)["hash"] == runs[1].head_hash
        assert [r.ok for r in runs] == [True, True, False]
    finally:
        database.dispose()


def test_a_nightly_check_that_cannot_run_is_recorded_and_alerted(fresh_database_url, monkeypatch):
    from qms.scheduling import nightly

    database = Database(fresh_database_url)
    try:
        seed_site_with_schedule(database)

        def broken(*args, **kwargs):
            raise OSError("disk read error")

        monkeypatch.setattr(nightly, "verify", broken)
        run = nightly_verify(database)
        assert not run.ok and "disk read error" in json.loads(run.details)["error"]
        with database.transaction(write=False) as session:
            (alert,) = session.exec(select(Alert)).all()
        assert (
            alert.code == "verify.failed"
            and "disk read error" in json.loads(alert.params)["problem"]
        )
    finally:
        database.dispose()
