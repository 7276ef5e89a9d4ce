"""Two real `qms scheduler` processes: one leads, one stands by and takes over on kill -9."""

from __future__ import annotations

import os
import time

import pytest
from sqlmodel import select

from qms.core.verify import verify
from qms.db import Database
from qms.scheduling.models import ScheduleRun
from tests.scheduling.conftest import seed_site_with_schedule
from tests.scheduling.processes import QmsProcess, wait_until

pytestmark = pytest.mark.slow


def _runs(database: Database) -> list[ScheduleRun]:
    with database.transaction(write=False) as session:
        return list(session.exec(select(ScheduleRun)).all())


def test_one_scheduler_leads_the_other_takes_over_when_it_is_killed(tmp_path, fresh_database_url):
    database = Database(fresh_database_url)
    env = dict(
        os.environ,
        QMS_DATABASE_URL=fresh_database_url,
        QMS_INSTANCE_PATH=str(tmp_path / "instance"),
    )
    args = ("scheduler", "--poll", "0.5", "--tick", "0.5")
    first = second = None
    try:
        seed_site_with_schedule(database, first_period="2026-08")
        first = QmsProcess(*args, env=env)
        first.wait_for("leading")
        second = QmsProcess(*args, env=env)
        second.wait_for("standing by")
        # Aug, Sep, Oct, Nov 2026 (and any month after, as the clock goes) by the leader.
        runs = wait_until(
            lambda: [r for r in _runs(database)] if len(_runs(database)) >= 4 else None
        )
        assert all(f"pid {first.pid}" in r.claimed_by for r in runs)
        assert not any("leading" in line for line in second.lines)

        first.kill9()
        killed_at = time.monotonic()
        seed_site_with_schedule(database, first_period="2026-10")  # a second schedule
        second.wait_for("leading")
        print(f"standby took over {time.monotonic() - killed_at:.2f}s after kill -9 (poll 0.5s)")
        taken = wait_until(
            lambda: [r for r in _runs(database) if f"pid {second.pid}" in r.claimed_by] or None
        )
        assert {r.schedule_id for r in taken} == {"SCH-SH-01-2"}
        runs = _runs(database)
        pairs = [(r.schedule_id, r.period) for r in runs]
        assert len(pairs) == len(set(pairs))  # no period claimed twice
        assert {p for s, p in pairs if s == "SCH-SH-01-2"} >= {"2026-10", "2026-11"}
        with database.transaction(write=False) as session:
            assert verify(session).ok
        assert second.stop() == 0
        assert "stopped" in second.wait_for("stopped")
    finally:
        for process in (first, second):
            if process is not None:
                process.stop()
        database.dispose()
