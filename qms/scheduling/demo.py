"""The demonstration hospital's schedule: SH-01's monthly report to its regulator."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from qms.accounts.service import Actor
from qms.scheduling.models import Schedule
from qms.scheduling.service import ScheduleSpec, add_schedule


def add_demo_schedule(*, session: Session, site_id: str, regulator: str, now: datetime) -> Schedule:
    """Monthly on day 1 at 08:00 Shanghai time, from October 2026, in Chinese, to the
    regulator's portal; a quality officer approves each one."""
    return add_schedule(
        session=session,
        actor=Actor.system("demonstration data"),
        spec=ScheduleSpec(
            report_type="site-monthly",
            site_id=site_id,
            day=1,
            at="08:00",
            language="zh_CN",
            regulators=[regulator],
            first_period="2026-10",
        ),
        now=now,
    )


def deliver_demo_october(runtime, *, officer: str, password: str) -> list[str]:
    """Make the demonstration schedule's October report, have the demonstration quality
    officer approve it with her password, and deliver it to the regulator's portal: what
    the scheduler and a quality officer would have done on 1 November."""
    from sqlmodel import select

    from qms.accounts.models import User
    from qms.records.signatures import PasswordEntry
    from qms.reports.keys import make_demo_keys
    from qms.reports.models import ReportVersion
    from qms.reports.service import approve_report
    from qms.scheduling.runner import PassResult, release_and_deliver, run_due

    settings, database = runtime.settings, runtime.database
    make_demo_keys(settings, site_name="Xuhui Demonstration Hospital")
    november = datetime.fromisoformat("2026-11-01T08:00:00+08:00")
    made = run_due(database, november, settings=settings, registry=runtime.registry)
    with database.transaction() as session:
        approver = session.exec(select(User).where(User.username == officer)).one()
        for version_id in made.generated:
            if session.get(ReportVersion, version_id).period == "2026-10":
                approve_report(
                    session=session,
                    settings=settings,
                    version_id=version_id,
                    by=approver,
                    credential=PasswordEntry(password),
                    freshness_minutes=settings.signature_freshness_minutes,
                )
    delivered = PassResult()
    release_and_deliver(database, settings, november, delivered)
    return [*made.lines(), *delivered.lines()]
