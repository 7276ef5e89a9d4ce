"""The demonstration hospital's schedule: SH-01's monthly report to its regulator."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from qms.accounts.service import Actor
from qms.scheduling.models import Schedule
from qms.scheduling.service import ScheduleSpec, add_schedule


def add_demo_schedule(*, session: Session, site_id: str, regulator: str, now: datetime) -> Schedule:
    """Monthly on day 1 at 08:00 Shanghai time, from October 2026, in Chinese, to the
    regulator's portal and the bureau's address; a quality officer approves each one."""
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
            recipients=["reports@xuhui-amr.example"],
            first_period="2026-10",
        ),
        now=now,
    )
