"""Properties: no finding depends on the clock's origin, the time zone, or the input order."""

from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qms.checklists.engine import ReadingIndex, check_step, evaluate, storage_can_change
from qms.checklists.engine.context import _Ctx
from qms.checklists.engine.planning import _plan
from qms.checklists.engine.records import _index_timed
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
# Found by CI: an order finding's gap across Santiago's change measured on the clocks.
@example(698, ZoneInfo("America/Santiago"), timedelta(days=-1514))
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


def every_check(index: int, steps, now):
    """The findings of calling every check the unit's plan chose, with no quick test."""
    ix, unit_id, _, complete = SCENARIOS[index]
    unit = next(u for u in ix.units if u.id == unit_id)
    checklist = REGISTRY.get(unit.checklist)
    plan = _plan(checklist, unit.profile)
    records, by_step, when, recorded = _index_timed(plan, unit, steps)
    done = unit.status == "complete" if complete is None else complete
    readings = ReadingIndex(ix.readings)
    ctx = _Ctx(unit, by_step, records, readings, now, done, unit.profile, when, recorded)
    for check in plan.runs(recorded).checks:
        check(ctx)
    return ctx.out


ODD_VALUES = [None, "", " ", "x", 0, -1, 1.5, 10**6, -(10**6), float("nan"), True, False, [1]]


@SETTINGS
@given(scenario, st.randoms(use_true_random=False), st.booleans())
def test_the_quick_tests_pass_no_check_that_would_find_something(index: int, rnd, at_now) -> None:
    # evaluate() calls only the checks whose quick test fails (planning.py, `_Runs`): with
    # records made wrong in every way the tests look at, it finds what every check finds.
    ix, unit_id, now, complete = SCENARIOS[index]
    unit = next(u for u in ix.units if u.id == unit_id)
    steps = list(ix.steps_of(unit_id))
    for _ in range(rnd.randint(1, 3)):
        if not steps:
            break
        i = rnd.randrange(len(steps))
        s = steps[i]
        what = rnd.randrange(7)
        if what == 0 and s.fields:
            name = rnd.choice(sorted(s.fields))
            steps[i] = dataclasses.replace(s, fields={**s.fields, name: rnd.choice(ODD_VALUES)})
        elif what == 1 and s.fields:
            name = rnd.choice(sorted(s.fields))
            steps[i] = dataclasses.replace(
                s, fields={k: v for k, v in s.fields.items() if k != name}
            )
        elif what == 2:
            steps[i] = dataclasses.replace(s, fields={**s.fields, "extra": 1})
        elif what == 3:
            minutes = rnd.choice((-3000, -90, -20, 45, 300, 3000))
            steps[i] = dataclasses.replace(s, at=s.at + timedelta(minutes=minutes))
        elif what == 4:
            steps.append(dataclasses.replace(s, record_id=f"{s.record_id}-again"))
        elif what == 5:
            steps[i] = dataclasses.replace(
                s, witness=rnd.choice((s.by, None, "someone.else")), by=rnd.choice((s.by, "", " "))
            )
        else:
            steps[i] = dataclasses.replace(
                s, by_role=rnd.choice(("nobody", None)), witness_role="nobody"
            )
    if at_now and steps:
        now = rnd.choice(steps).at + timedelta(minutes=rnd.choice((-60, 0, 600, 6000)))
    checklist = REGISTRY.get(unit.checklist)
    found = evaluate(checklist, unit, steps, ReadingIndex(ix.readings), now=now, complete=complete)
    assert found == every_check(index, steps, now)


@SETTINGS
@given(scenario, st.randoms(use_true_random=False))
def test_a_record_that_cannot_change_storage_needs_no_readings(index: int, rnd) -> None:
    # The ward's live check and log_step load no readings when `storage_can_change` says
    # the new record cannot change a storage finding: the findings it adds are the same.
    ix, unit_id, _, _ = SCENARIOS[index]
    unit = next(u for u in ix.units if u.id == unit_id)
    steps = sorted(ix.steps_of(unit_id), key=lambda s: s.at)
    if not steps:
        return
    cut = rnd.randrange(len(steps))
    prior, new = steps[:cut], rnd.choice(steps[cut:])
    new = dataclasses.replace(
        new, at=new.at + timedelta(minutes=rnd.choice((-6000, -60, 0, 30, 6000)))
    )
    checklist = REGISTRY.get(unit.checklist)
    with_readings = check_step(checklist, unit, prior, new, readings=ReadingIndex(ix.readings))
    if not storage_can_change(prior, new):
        assert check_step(checklist, unit, prior, new, readings=None) == with_readings


def test_storage_findings_stay_the_same_after_a_closed_stay() -> None:
    # Not vacuous: a unit with an excursion during a closed stay has its storage finding
    # before and after a later record, so the record adds none, readings or not.
    case = next(
        (ix, u)
        for ix, u, _, _ in SCENARIOS
        if any(
            f.code == "storage.excursion"
            for f in evaluate(
                REGISTRY.get(next(x for x in ix.units if x.id == u).checklist),
                next(x for x in ix.units if x.id == u),
                ix.steps_of(u),
                ReadingIndex(ix.readings),
            )
        )
    )
    ix, unit_id = case
    unit = next(u for u in ix.units if u.id == unit_id)
    checklist = REGISTRY.get(unit.checklist)
    steps = sorted(ix.steps_of(unit_id), key=lambda s: s.at)
    prior, new = steps[:-1], steps[-1]
    assert not storage_can_change(prior, new)
    before = evaluate(checklist, unit, prior, ReadingIndex(ix.readings), complete=False)
    assert any(f.code == "storage.excursion" for f in before)
    added = check_step(checklist, unit, prior, new, readings=ReadingIndex(ix.readings))
    assert added == check_step(checklist, unit, prior, new, readings=None)
    # A stay still open (no storage out yet) can change: readings are needed then.
    open_stay = [s for s in prior if s.step != "storage_out"]
    assert storage_can_change(open_stay, new)
    # So can a unit put into storage while the device is out of its limits.
    stored = next(s for s in steps if s.step == "storage_in")
    device = [r for r in ix.readings if r.equipment == stored.fields["equipment"]]
    warm = max(device, key=lambda r: r.temperature_c)
    before_storage = [s for s in steps if s.at < stored.at]
    into_warm = dataclasses.replace(stored, at=warm.at + timedelta(minutes=1))
    added = check_step(
        checklist, unit, before_storage, into_warm, readings=ReadingIndex(ix.readings)
    )
    assert [f.code for f in added if f.code == "storage.excursion"]
    assert storage_can_change(before_storage, into_warm)
