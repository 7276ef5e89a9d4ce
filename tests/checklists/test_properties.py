"""Properties: no finding depends on the clock's origin, the time zone, or the input order."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qms.checklists.engine import ReadingIndex, evaluate
from qms.checklists.language import Registry
from tests.checklists.casebook import cases, compliant_lines, to_interchange

REGISTRY = Registry.from_directory()
# Every violation example and every compliant unit: findings of all kinds to compare.
SCENARIOS = []
for case in cases(REGISTRY).values():
    if case is not None:
        SCENARIOS.append(
            (to_interchange(case.lines, case.source), case.unit, case.now, case.complete)
        )
for checklist in REGISTRY:
    ix = to_interchange(compliant_lines(checklist.id), checklist.id)
    SCENARIOS.extend((ix, unit.id, None, None) for unit in ix.units)

scenario = st.sampled_from(range(len(SCENARIOS)))
shift = st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650))
zone = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda q: timezone(timedelta(minutes=15 * q))
)

# Zones with summer time: two times of one such zone differ by more than their clocks
# across a change, so the engine's subtraction on clock fields must not apply to them.
summer_zone = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Sydney", "America/Santiago"]
).map(ZoneInfo)


def run(index: int, move=lambda t: t, order=None):
    ix, unit_id, now, complete = SCENARIOS[index]
    unit = next(u for u in ix.units if u.id == unit_id)
    steps = [dataclasses.replace(s, at=move(s.at)) for s in ix.steps_of(unit_id)]
    if order is not None:
        steps = order(steps)
    readings = ReadingIndex([dataclasses.replace(r, at=move(r.at)) for r in ix.readings])
    checklist = REGISTRY.get(unit.checklist)
    return evaluate(
        checklist, unit, steps, readings, now=move(now) if now else None, complete=complete
    )


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario, shift)
def test_shifting_every_time_changes_no_finding(index: int, delta: timedelta) -> None:
    assert run(index) == run(index, move=lambda t: t + delta)


@SETTINGS
@given(scenario, zone)
def test_writing_times_in_another_zone_changes_no_finding(index: int, tz: timezone) -> None:
    assert run(index) == run(index, move=lambda t: t.astimezone(tz))


@SETTINGS
@given(scenario, summer_zone, shift)
def test_writing_times_in_a_zone_with_summer_time_changes_no_finding(
    index: int, tz: ZoneInfo, delta: timedelta
) -> None:
    assert run(index, move=lambda t: t + delta) == run(
        index, move=lambda t: (t + delta).astimezone(tz)
    )


@SETTINGS
@given(scenario, st.randoms(use_true_random=False))
def test_each_time_in_an_offset_of_its_own_changes_no_finding(index: int, rnd) -> None:
    # Records of one unit with offset objects of their own, equal or not.
    def own_offset(t):
        return t.astimezone(timezone(timedelta(minutes=15 * rnd.randint(-48, 56))))

    assert run(index) == run(index, move=own_offset)


@SETTINGS
@given(scenario, st.randoms(use_true_random=False))
def test_reordering_the_records_changes_nothing(index: int, rnd) -> None:
    def shuffled(steps):
        steps = list(steps)
        rnd.shuffle(steps)
        return steps

    assert run(index) == run(index, order=shuffled)


def test_the_scenarios_include_findings_of_every_kind() -> None:
    kinds = {f.kind for i in range(len(SCENARIOS)) for f in run(i)}
    assert kinds >= {
        "missing_step",
        "order",
        "window",
        "limit",
        "identity",
        "witness",
        "role",
        "excursion",
        "record_integrity",
    }
