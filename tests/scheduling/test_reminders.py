"""The nightly reminder of deviations past their due date: once per due date."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from qms.accounts import service as accounts
from qms.db import Database
from qms.scheduling.models import Alert
from qms.scheduling.reminders import remind_overdue_deviations

OPENED = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)


def test_an_overdue_deviation_is_reminded_once(fresh_database_url):
    from qms.quality import deviations as dv
    from qms.records.signatures import PasswordEntry

    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            accounts.create_site(session=session, site_id="SH-01", name="Test Hospital")
            officer = accounts.create_user(
                session=session,
                actor=accounts.Actor.system("test"),
                username="qo1",
                full_name="Quality One",
                role="quality_officer",
                password="correct-horse-battery",
                site_ids=["SH-01"],
            )
            session.flush()
            opened = dv.open_deviation(
                session=session,
                by=officer,
                site_id="SH-01",
                title="Bag dropped",
                description="The bag fell from the trolley.",
                classification="minor",
                signer=dv.Signer(PasswordEntry("correct-horse-battery")),
                now=OPENED,
            )
        with database.transaction(write=False) as session:
            (state,) = dv.states_of(session, [session.get(type(opened), opened.id)])
        assert state.due_at is not None
        assert remind_overdue_deviations(database, state.due_at - timedelta(minutes=1)) == []
        lines = remind_overdue_deviations(database, state.due_at + timedelta(days=1))
        assert lines == [f"deviation {opened.id} is past its due date {state.due_at:%Y-%m-%d}"]
        assert remind_overdue_deviations(database, state.due_at + timedelta(days=2)) == []
        with database.transaction(write=False) as session:
            (alert,) = session.exec(select(Alert)).all()
        assert (alert.code, alert.site_id) == ("deviation.overdue", "SH-01")
        assert json.loads(alert.params)["deviation"] == opened.id
    finally:
        database.dispose()
