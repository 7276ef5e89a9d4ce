"""Factories for schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qms.accounts import service as accounts
from qms.accounts.models import Site
from qms.db import Database

MADE_AT = datetime(2026, 7, 20, 3, 0, tzinfo=UTC)


def seed_site_with_schedule(database: Database, *, first_period: str = "2026-08") -> str:
    """A committed site, regulator and monthly schedule in a database of its own."""
    from qms.scheduling.service import ScheduleSpec, add_schedule

    with database.transaction() as session:
        if session.get(Site, "SH-01") is None:
            accounts.create_site(session=session, site_id="SH-01", name="Test Hospital")
            accounts.create_user(
                session=session,
                actor=accounts.Actor.system("test"),
                username="reg1",
                full_name="Reg One",
                role="regulator",
                password="correct-horse-battery",
                site_ids=["SH-01"],
            )
            session.flush()
        row = add_schedule(
            session=session,
            actor=accounts.Actor.system("test"),
            spec=ScheduleSpec(
                report_type="site-monthly",
                site_id="SH-01",
                day=1,
                at="08:00",
                regulators=["reg1"],
                recipients=["bureau@example.org"],
                first_period=first_period,
            ),
            now=MADE_AT,
        )
        return row.schedule_id


@pytest.fixture
def make_schedule(session, make_site, make_user):
    from qms.scheduling.service import ScheduleSpec, add_schedule

    def make(actor=None, **changes):
        make_site("SH-01")
        regulator = make_user("regulator")
        values = dict(
            report_type="site-monthly",
            site_id="SH-01",
            day=1,
            at="08:00",
            regulators=[regulator.username],
            first_period="2026-08",
        )
        values.update(changes)
        row = add_schedule(
            session=session,
            actor=actor or accounts.Actor.system("test"),
            spec=ScheduleSpec(**values),
            now=MADE_AT,
        )
        session.flush()
        return row

    return make
