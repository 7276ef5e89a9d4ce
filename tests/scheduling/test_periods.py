"""What is due, as a pure function of schedules, registry rows and now."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from qms.scheduling.periods import (
    Cadence,
    due_at,
    due_periods,
    is_period,
    next_due,
    period_of,
)

SHANGHAI = "Asia/Shanghai"


def monthly(first="2026-08", day=1, at=time(8, 0), zone=SHANGHAI, **kw) -> Cadence:
    return Cadence("S1", "monthly", day, at, zone, first, **kw)


def test_a_monthly_report_falls_due_on_day_n_of_the_next_month_in_the_sites_zone():
    # October's report, day 1 at 08:00 Shanghai = 00:00 UTC on 1 November.
    assert due_at(monthly(), "2026-10") == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def test_nothing_is_due_a_minute_before_and_the_period_is_due_at_the_minute():
    s = monthly(first="2026-10")
    at = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert due_periods([s], [], at - timedelta(minutes=1)) == []
    assert [d.period for d in due_periods([s], [], at)] == ["2026-10"]


def test_three_missed_months_give_three_periods_once_each_oldest_first():
    s = monthly(first="2026-08")
    now = datetime(2026, 11, 15, tzinfo=UTC)
    due = due_periods([s], [], now)
    assert [d.period for d in due] == ["2026-08", "2026-09", "2026-10"]
    # Once claimed, none is due again; the next month's comes later.
    claimed = [(d.schedule_id, d.period) for d in due]
    assert due_periods([s], claimed, now) == []
    assert [d.period for d in due_periods([s], claimed, datetime(2026, 12, 1, tzinfo=UTC))] == [
        "2026-11"
    ]


def test_day_31_is_the_last_day_of_a_short_month():
    s = monthly(first="2026-10", day=31)
    assert due_at(s, "2026-10") == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert due_at(s, "2027-01") == datetime(2027, 2, 28, 0, 0, tzinfo=UTC)


def test_quarterly_and_yearly():
    q = Cadence("Q", "quarterly", 5, time(9, 30), "UTC", "2026-Q3")
    assert due_at(q, "2026-Q3") == datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    assert due_at(q, "2026-Q4") == datetime(2027, 1, 5, 9, 30, tzinfo=UTC)
    y = Cadence("Y", "yearly", 15, time(0, 0), SHANGHAI, "2025")
    assert due_at(y, "2025") == datetime(2026, 1, 14, 16, 0, tzinfo=UTC)
    due = due_periods([q, y], [], datetime(2027, 2, 1, tzinfo=UTC))
    assert [(d.schedule_id, d.period) for d in due] == [
        ("Y", "2025"),
        ("Q", "2026-Q3"),
        ("Q", "2026-Q4"),
        ("Y", "2026"),
    ]


def test_a_zone_with_summer_time_keeps_the_local_hour():
    s = monthly(first="2026-02", zone="Europe/Berlin")
    assert due_at(s, "2026-02") == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)  # CET
    assert due_at(s, "2026-04") == datetime(2026, 5, 1, 6, 0, tzinfo=UTC)  # CEST


def test_a_retired_schedule_is_never_due():
    assert due_periods([monthly(active=False)], [], datetime(2027, 1, 1, tzinfo=UTC)) == []


def test_next_due_is_the_first_due_time_after_now():
    s = monthly(first="2026-08")
    assert next_due([s], datetime(2026, 11, 15, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_now_must_carry_an_offset():
    with pytest.raises(ValueError):
        due_periods([monthly()], [], datetime(2026, 11, 1))


def test_period_names():
    from datetime import date

    assert period_of("monthly", date(2026, 10, 31)) == "2026-10"
    assert period_of("quarterly", date(2026, 10, 1)) == "2026-Q4"
    assert period_of("yearly", date(2026, 10, 1)) == "2026"
    assert is_period("monthly", "2026-10") and not is_period("monthly", "2026-13")
    assert is_period("quarterly", "2026-Q4") and not is_period("quarterly", "2026-Q5")
    assert not is_period("yearly", "2026-10")


def test_a_quarterly_schedule_down_for_months_catches_up_each_quarter_once():
    q = Cadence("Q", "quarterly", 5, time(9, 0), SHANGHAI, "2026-Q1")
    # Q1 was made on time (due 5 April); the scheduler then stopped until mid-October.
    done = [("Q", "2026-Q1")]
    now = datetime(2026, 10, 15, tzinfo=UTC)
    due = due_periods([q], done, now)
    assert [(d.period, d.due_at) for d in due] == [
        ("2026-Q2", datetime(2026, 7, 5, 1, 0, tzinfo=UTC)),
        ("2026-Q3", datetime(2026, 10, 5, 1, 0, tzinfo=UTC)),
    ]
    done += [(d.schedule_id, d.period) for d in due]
    assert due_periods([q], done, now) == []
    assert next_due([q], now) == datetime(2027, 1, 5, 1, 0, tzinfo=UTC)


def test_a_yearly_schedule_names_its_periods_by_the_year():
    y = Cadence("Y", "yearly", 1, time(8, 0), SHANGHAI, "2026")
    assert due_periods([y], [], datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == []
    (due,) = due_periods([y], [], datetime(2027, 3, 1, tzinfo=UTC))
    assert (due.period, due.due_at) == ("2026", datetime(2027, 1, 1, 0, 0, tzinfo=UTC))


def test_a_schedule_retired_owes_what_fell_due_before_and_nothing_after():
    retired_at = datetime(2026, 10, 20, tzinfo=UTC)
    s = monthly(first="2026-08", until=retired_at)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    # August and September fell due (1 Sep, 1 Oct) before the retirement; October's
    # report would have fallen due on 1 November, after it.
    assert [d.period for d in due_periods([s], [], now)] == ["2026-08", "2026-09"]
    assert next_due([s], retired_at) is None
