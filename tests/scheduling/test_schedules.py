"""Schedules as regulated records, and claiming each due period exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core.errors import Invalid, NotFound
from qms.core.verify import verify
from qms.db import Database
from qms.scheduling import service
from qms.scheduling.models import Alert, Schedule, ScheduleRun
from qms.scheduling.runner import run_due
from qms.scheduling.service import ScheduleSpec
from tests.scheduling.conftest import MADE_AT, seed_site_with_schedule

SYSTEM = Actor.system("test")
NOV_1 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def test_a_schedule_is_chained_and_a_change_is_a_new_version(session, make_schedule):
    first = make_schedule()
    changed = service.change_schedule(
        session=session,
        actor=SYSTEM,
        schedule_id=first.schedule_id,
        spec=ScheduleSpec(**{**service.spec_of(first).__dict__, "day": 5}),
        reason="the bureau asked for the 5th",
        now=MADE_AT,
    )
    session.flush()
    assert (changed.version, changed.day) == (2, 5)
    history = service.schedule_history(session=session, actor=SYSTEM, schedule_id=first.schedule_id)
    assert [(s.version, s.day) for s in history] == [(1, 1), (2, 5)]
    assert service.list_schedules(session=session, actor=SYSTEM)[0].day == 5
    assert verify(session).ok
    with pytest.raises((IntegrityError, DBAPIError)):
        with session.begin_nested():
            session.execute(text("UPDATE schedule SET day = 9"))


def test_a_nurse_may_not_keep_schedules_and_another_sites_schedule_is_not_found(
    session, make_schedule, make_user
):
    schedule = make_schedule()
    nurse = make_user("nurse")
    with pytest.raises(Exception, match="may not manage schedules"):
        service.add_schedule(
            session=session, actor=nurse, spec=service.spec_of(schedule), now=MADE_AT
        )
    officer_elsewhere = make_user("quality_officer", sites=("BJ-02",))
    with pytest.raises(NotFound):
        service.current_schedule(
            session=session, actor=officer_elsewhere, schedule_id=schedule.schedule_id
        )
    assert service.list_schedules(session=session, actor=officer_elsewhere) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"report_type": "unit-dossier"}, "cannot make unit-dossier"),
        ({"day": 32}, "between 1 and 31"),
        ({"at": "8am"}, "HH:MM"),
        ({"recipients": ["not-an-address"]}, "not an email address"),
        ({"regulators": [], "recipients": []}, "at least one recipient"),
        ({"auto_release": True}, "signing key"),
        ({"first_period": "2026-13"}, "not a monthly period"),
        ({"language": "fr"}, "unknown language"),
        (
            {"cadence": "quarterly", "first_period": "2026-Q3"},
            "no generator makes site-monthly reports for quarterly periods yet",
        ),
        ({"report_type": "regional-annual", "first_period": "2026"}, "needs a region"),
        ({"region_id": "SH-XH"}, "only a regional report is made for a region"),
        ({"recipients": ["nobody"]}, "nobody is not an email address"),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_with_one_message(make_schedule, change, message):
    with pytest.raises(Invalid, match=message):
        make_schedule(**change)


def test_a_regulator_of_another_site_cannot_be_a_recipient(session, make_schedule, make_user):
    other = make_user("regulator", sites=("BJ-02",))
    with pytest.raises(Invalid, match="does not belong to site SH-01"):
        make_schedule(regulators=[other.username])


def test_claiming_is_once_per_period_and_catches_up(session, make_schedule):
    schedule = make_schedule()
    claimed = service.claim_due(session=session, actor=SYSTEM, now=NOV_1, claimed_at=NOV_1)
    assert [r.period for r in claimed] == ["2026-08", "2026-09", "2026-10"]
    assert service.claim_due(session=session, actor=SYSTEM, now=NOV_1, claimed_at=NOV_1) == []
    session.flush()
    # The database itself refuses a second row for a period.
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(
                text(
                    "INSERT INTO schedule_run (id, schedule_id, schedule_version, period, due_at,"
                    " claimed_at, claimed_by, ledger_seq) SELECT 'x', schedule_id, schedule_version,"
                    " period, due_at, claimed_at, claimed_by, 999999 FROM schedule_run LIMIT 1"
                )
            )
    runs = session.exec(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.schedule_id))
    assert len(runs.all()) == 3
    assert verify(session).ok


def test_run_due_from_many_processes_at_once_claims_each_period_once(fresh_database_url):
    database = Database(fresh_database_url)
    try:
        seed_site_with_schedule(database)
        results, errors = [], []
        barrier = threading.Barrier(8)

        def worker(n: int) -> None:
            own = Database(fresh_database_url)
            try:
                barrier.wait()
                results.append(run_due(own, NOV_1, by=f"worker {n}").claimed)
            except Exception as exc:  # pragma: no cover - shown by the assert
                errors.append(exc)
            finally:
                own.dispose()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(r.period for claimed in results for r in claimed) == [
            "2026-08",
            "2026-09",
            "2026-10",
        ]
        with database.transaction(write=False) as session:
            assert len(session.exec(select(ScheduleRun)).all()) == 3
            assert verify(session).ok
    finally:
        database.dispose()


def test_the_command_line_adds_lists_and_runs_due_once(tmp_path, fresh_database_url):
    from click.testing import CliRunner

    from qms.cli import cli
    from qms.runtime import Runtime
    from tests.conftest import make_test_settings

    database = Database(fresh_database_url)
    seed_site_with_schedule(database, first_period="2026-10")
    runtime = Runtime(make_test_settings(tmp_path, fresh_database_url), database=database)
    runner = CliRunner()

    def qms(*args):
        result = runner.invoke(cli, list(args), obj=runtime)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        out = qms(
            "schedule", "add", "--type", "site-monthly", "--site", "SH-01", "--day", "2",
            "--at", "09:30", "--lang", "zh", "--to", "a@example.org", "--from", "2026-09",
        )  # fmt: skip
        assert "SCH-SH-01-2 added" in out and "zh_CN" in out
        first = qms("schedule", "run-due", "--now", "2026-11-02T09:30:00+08:00")
        assert first.count("claimed") == 3  # 2026-10 of the first; 2026-09 and -10 of the second
        # No signing key yet: each pass says why, and quality officers are alerted once.
        assert "not generated SCH-SH-01-1:2026-10: no key to sign reports" in first
        second = qms("schedule", "run-due", "--now", "2026-11-02T09:30:00+08:00")
        assert "claimed" not in second and second.count("not generated") == 3
        with database.transaction(write=False) as session:
            codes = [a.code for a in session.exec(select(Alert)).all()]
            from qms.quality.models import AuditRun

            # The key is looked for first: no month was audited (nor a page rendered).
            assert session.exec(select(AuditRun)).all() == []
        assert codes == ["report.not_generated"] * 3
        # With a key the next pass makes the three reports, once: then nothing is due.
        from qms.reports.keys import make_demo_keys

        make_demo_keys(runtime.settings, site_name="Test Hospital")
        third = qms("schedule", "run-due", "--now", "2026-11-02T09:30:00+08:00")
        assert third.count("generated site-monthly:SH-01:SH-01:") == 3, third
        assert qms("schedule", "run-due", "--now", "2026-11-02T09:30:00+08:00") == "nothing due\n"
        listed = qms("schedule", "list")
        assert "SCH-SH-01-2 v1 active" in listed and "periods claimed: 2026-09, 2026-10" in listed
        bad = runner.invoke(cli, ["schedule", "run-due", "--now", "2026-11-02T09:30"], obj=runtime)
        assert bad.exit_code != 0 and "no UTC offset" in bad.output
        with database.transaction(write=False) as session:
            assert session.exec(select(Schedule)).all()
    finally:
        database.dispose()


def test_a_change_needs_a_reason_and_a_retired_schedule_stays_retired(session, make_schedule):
    from qms.core.errors import Conflict
    from qms.scheduling.models import ScheduleChange

    first = make_schedule()
    sid = first.schedule_id
    with pytest.raises(Invalid, match="needs a reason"):
        service.retire_schedule(session=session, actor=SYSTEM, schedule_id=sid, reason=" ",
                                now=MADE_AT)  # fmt: skip
    with pytest.raises(Invalid, match="nothing to change"):
        service.change_schedule(session=session, actor=SYSTEM, schedule_id=sid,
                                spec=service.spec_of(first), reason="same", now=MADE_AT)  # fmt: skip
    assert session.exec(select(ScheduleChange)).all() == []
    retired = service.retire_schedule(
        session=session, actor=SYSTEM, schedule_id=sid, reason="the bureau closed", now=MADE_AT
    )
    session.flush()
    assert (retired.version, retired.status) == (2, "retired")
    (change,) = session.exec(select(ScheduleChange)).all()
    assert (change.id, change.change, change.reason, change.by) == (
        f"{sid}/2",
        "retired",
        "the bureau closed",
        "test",
    )
    with pytest.raises(Conflict, match="is retired"):
        service.retire_schedule(session=session, actor=SYSTEM, schedule_id=sid, reason="again",
                                now=MADE_AT)  # fmt: skip
    assert verify(session).ok
    with pytest.raises((IntegrityError, DBAPIError)):
        with session.begin_nested():
            session.execute(text("UPDATE schedule_change SET reason = 'nothing'"))


def test_the_command_line_edits_and_retires_and_a_retired_schedule_makes_nothing_after(
    tmp_path, fresh_database_url
):
    from click.testing import CliRunner

    from qms.cli import cli
    from qms.runtime import Runtime
    from tests.conftest import make_test_settings

    database = Database(fresh_database_url)
    sid = seed_site_with_schedule(database, first_period="2026-08")
    runtime = Runtime(make_test_settings(tmp_path, fresh_database_url), database=database)
    runner = CliRunner()

    def qms(*args, ok=True):
        result = runner.invoke(cli, list(args), obj=runtime)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    try:
        out = qms("schedule", "add", "--type", "site-monthly", "--site", "SH-01", "--day", "5",
                  "--at", "09:00", "--cadence", "quarterly", "--to", "a@example.org",
                  "--from", "2026-Q3", ok=False)  # fmt: skip
        assert "no generator makes site-monthly reports for quarterly periods yet" in out
        out = qms("schedule", "edit", sid, "--day", "3", "--reason", "the bureau reads on the 3rd")
        assert f"schedule {sid} is now version 2" in out and "on day 3 at 08:00" in out
        assert "--reason" in qms("schedule", "edit", sid, "--day", "4", ok=False)
        # August and September fall due (3 Sep, 3 Oct) and are claimed.
        first = qms("schedule", "run-due", "--now", "2026-10-10T00:00:00+00:00")
        assert first.count("claimed") == 2
        # What fell due up to the retirement is owed (made by a pass up to now)...
        from datetime import timedelta

        now = datetime.now(UTC)
        qms("schedule", "run-due", "--now", now.isoformat())
        out = qms("schedule", "retire", sid, "--reason", "replaced by the regional report")
        assert f"schedule {sid} retired (version 3)" in out
        # ...and a year later nothing more falls due for it.
        later = qms("schedule", "run-due", "--now", (now + timedelta(days=365)).isoformat())
        assert "claimed" not in later, later
        assert "is retired" in qms("schedule", "edit", sid, "--day", "9", "--reason", "x", ok=False)
        listed = qms("schedule", "list")
        assert f"{sid} v3 retired" in listed
        assert "v2 edited" in listed and "the bureau reads on the 3rd" in listed
        assert "v3 retired" in listed and "replaced by the regional report" in listed
        assert "periods claimed: 2026-08, 2026-09" in listed
        with database.transaction(write=False) as session:
            claimed = [r.due_at for r in session.exec(select(ScheduleRun)).all()]
        assert max(claimed) <= now
        out = qms("schedule", "settings", "--site", "SH-01", "--logger-gap", "45",
                  "--quality-address", "quality@hospital.example", "--reason", "set up")  # fmt: skip
        assert (
            "logger_gap_minutes: 45" in out and "quality_address: quality@hospital.example" in out
        )
        assert "between 5 and 1440" in qms("schedule", "settings", "--site", "SH-01",
                                           "--logger-gap", "2", "--reason", "x", ok=False)  # fmt: skip
    finally:
        database.dispose()
