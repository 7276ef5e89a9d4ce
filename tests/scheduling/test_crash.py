"""kill -9 during a scheduled generation, then a restart: exactly one report per period."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import select

from qms.db import Database
from tests.conftest import make_test_settings

pytestmark = pytest.mark.slow


def _run_due(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qms", "schedule", "run-due", "--now", "2026-11-01T08:00:00+08:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("point", ["mid-write", "after-row"])
def test_a_crash_during_generation_then_a_restart_makes_the_period_once(
    tmp_path, fresh_database_url, point
):
    from qms.demo import load_demo
    from qms.quality.models import AuditRun
    from qms.reports.keys import make_demo_keys
    from qms.reports.models import ReportVersion
    from qms.scheduling.models import ScheduleRun

    settings = make_test_settings(tmp_path, fresh_database_url)
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            load_demo(session=session)  # with SH-01's monthly schedule from October
        make_demo_keys(settings, site_name="Demo")
        env = dict(os.environ, QMS_DATABASE_URL=fresh_database_url, QMS_INSTANCE_PATH=str(tmp_path))
        crashed = _run_due(dict(env, QMS_REPORT_CRASH_AT=point))
        assert crashed.returncode == -9, crashed.stdout + crashed.stderr
        with database.transaction(write=False) as session:
            assert len(session.exec(select(ScheduleRun)).all()) == 1  # the claim survived
            assert session.exec(select(ReportVersion)).all() == []

        again = _run_due(env)
        assert again.returncode == 0, again.stderr
        assert "generated site-monthly:SH-01:SH-01:2026-10:zh_CN/v1" in again.stdout
        assert _run_due(env).stdout == "nothing due\n"
        with database.transaction(write=False) as session:
            reports = session.exec(select(ReportVersion)).all()
            audits = session.exec(select(AuditRun)).all()
        assert [r.period for r in reports] == ["2026-10"]
        assert len(audits) == 1  # the audit of the crashed pass was reused
        files = [p for p in (tmp_path / "reports").rglob("*.pdf")]
        assert [p.name for p in files] == [reports[0].file_name.rsplit("/", 1)[-1]]
    finally:
        database.dispose()
