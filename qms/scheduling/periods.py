"""What is due: report periods and when each falls due, computed from plain values.

`due_periods(schedules, registry_rows, now)` is pure (no database, no clock, no Flask):
the scheduler, `qms schedule run-due` and the tests call it with what the database
holds and the time, so a scheduler that was down catches up by itself: every period
whose due time has passed and that has no registry row is due, once, oldest first.

A monthly report covers one calendar month and falls due on day N of the next month at
HH:MM in the site's zone (day 31 in a 30-day month is the month's last day); a
quarterly report covers a calendar quarter and falls due on day N of the month after
it; a yearly report covers a year and falls due on day N of January of the next.
Periods are named `2026-10`, `2026-Q4` and `2026`. A retired schedule (`until`) owes
the periods that fell due before its retirement, and none after.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

MONTHLY = "monthly"
QUARTERLY = "quarterly"
YEARLY = "yearly"
CADENCES = (MONTHLY, QUARTERLY, YEARLY)

# A period whose due time lies further back than this is still due (catch-up), but the
# loop that walks periods stops at this many per schedule and call, so that a schedule
# with a first period decades ago cannot make one pass run without end.
MAX_PERIODS_PER_PASS = 240


@dataclass(frozen=True)
class Cadence:
    """When a schedule's reports fall due (the schedule's own columns, as plain values)."""

    schedule_id: str
    cadence: str  # monthly | quarterly | yearly
    day: int  # 1..31
    at: time  # local time of day
    timezone: str  # the site's zone
    first_period: str  # the first period reported (e.g. "2026-10")
    active: bool = True  # False: nothing is ever due
    # Retired at this time: periods falling due after it are not reported (those due
    # before it and not yet made still are: they were owed while it was in force).
    until: datetime | None = None


@dataclass(frozen=True, order=True)
class Due:
    due_at: datetime  # UTC
    schedule_id: str
    period: str


def period_start(cadence: str, period: str) -> date:
    """The first day a period covers."""
    if cadence == MONTHLY:
        year, month = period.split("-")
        return date(int(year), int(month), 1)
    if cadence == QUARTERLY:
        year, quarter = period.split("-Q")
        return date(int(year), 3 * (int(quarter) - 1) + 1, 1)
    if cadence == YEARLY:
        return date(int(period), 1, 1)
    raise ValueError(f"unknown cadence {cadence!r}")


def period_end(cadence: str, period: str) -> date:
    """The first day after a period (exclusive end)."""
    start = period_start(cadence, period)
    months = {MONTHLY: 1, QUARTERLY: 3, YEARLY: 12}[cadence]
    return _add_months(start, months)


def period_of(cadence: str, day: date) -> str:
    """The name of the period that contains `day`."""
    if cadence == MONTHLY:
        return f"{day.year:04d}-{day.month:02d}"
    if cadence == QUARTERLY:
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if cadence == YEARLY:
        return f"{day.year:04d}"
    raise ValueError(f"unknown cadence {cadence!r}")


def next_period(cadence: str, period: str) -> str:
    return period_of(cadence, period_end(cadence, period))


def is_period(cadence: str, period: str) -> bool:
    """Whether `period` is a well-formed period name for that cadence."""
    try:
        return period_of(cadence, period_start(cadence, period)) == period
    except ValueError:
        return False


def due_at(schedule: Cadence, period: str) -> datetime:
    """When the report of `period` falls due, in UTC."""
    after = period_end(schedule.cadence, period)
    last_day = calendar.monthrange(after.year, after.month)[1]
    day = after.replace(day=min(schedule.day, last_day))
    # A local time that does not exist (a DST gap) or exists twice resolves by fold=0.
    local = datetime.combine(day, schedule.at, tzinfo=ZoneInfo(schedule.timezone))
    return local.astimezone(UTC)


def due_periods(
    schedules: Iterable[Cadence],
    registry_rows: Iterable[tuple[str, str]],
    now: datetime,
) -> list[Due]:
    """Every (schedule, period) due by `now` that has no registry row, oldest first.

    `registry_rows` are (schedule id, period) pairs already generated or claimed.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry an offset")
    done = set(registry_rows)
    found: list[Due] = []
    for schedule in schedules:
        if not schedule.active:
            continue
        period = schedule.first_period
        for _ in range(MAX_PERIODS_PER_PASS):
            when = due_at(schedule, period)
            if when > now or (schedule.until is not None and when > schedule.until):
                break
            if (schedule.schedule_id, period) not in done:
                found.append(Due(when, schedule.schedule_id, period))
            period = next_period(schedule.cadence, period)
    return sorted(found)


def next_due(schedules: Iterable[Cadence], now: datetime) -> datetime | None:
    """The first due time after `now` of any active schedule (for the scheduler's sleep)."""
    times = []
    for schedule in schedules:
        if not schedule.active:
            continue
        period = schedule.first_period
        for _ in range(MAX_PERIODS_PER_PASS * 4):
            when = due_at(schedule, period)
            if schedule.until is not None and when > schedule.until:
                break
            if when > now:
                times.append(when)
                break
            period = next_period(schedule.cadence, period)
    return min(times, default=None)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)
