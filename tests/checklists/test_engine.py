"""The engine's time semantics, live checks, due items, corrections and temperature logic."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from qms.checklists.engine import ReadingIndex, check_step, due_next, evaluate
from qms.checklists.facts import ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import Registry, parse_checklist
from qms.checklists.mkt import mean_kinetic_temperature
from tests.checklists.casebook import compliant_lines, findings_for, to_interchange

REGISTRY = Registry.from_directory()
KYMRIAH = REGISTRY.get("kymriah")


def kymriah_unit(unit_id: str = "K-US-1"):
    ix = to_interchange(compliant_lines("kymriah"), "kymriah")
    unit = next(u for u in ix.units if u.id == unit_id)
    return unit, ix.steps_of(unit_id), ix


def until(steps: list[StepFacts], step_id: str) -> list[StepFacts]:
    """The records up to and including the first record of `step_id` (a unit in progress)."""
    ordered = sorted(steps, key=lambda s: s.at)
    cut = next(i for i, s in enumerate(ordered) if s.step == step_id)
    return ordered[: cut + 1]


def rules(findings) -> list[str]:
    return [f.rule for f in findings]


def test_in_progress_unit_flags_no_step_whose_time_has_not_come() -> None:
    unit, steps, _ = kymriah_unit()
    partial = until(steps, "thaw_end")
    assert evaluate(KYMRIAH, unit, partial, complete=False) == []
    # The same records judged as a finished unit: infusion, observation, disposal and (US)
    # the discharge with its counselling are missing.
    missing = {
        f.rule for f in evaluate(KYMRIAH, unit, partial, complete=True) if f.kind == "missing_step"
    }
    assert missing == {
        "kymriah.infusion_start.done",
        "kymriah.infusion_end.done",
        "kymriah.observation.done",
        "kymriah.disposal.done",
        "kymriah.discharge.done",
    }


def test_in_progress_unit_flags_a_skipped_step_once_a_later_step_is_recorded() -> None:
    unit, steps, _ = kymriah_unit()
    partial = [s for s in until(steps, "thaw_start") if s.step != "identity_check"]
    found = evaluate(KYMRIAH, unit, partial, complete=False)
    assert set(rules(found)) == {"kymriah.identity_check.done", "kymriah.identity_before_thaw"}
    assert all(f.severity == "critical" for f in found)


def test_complete_defaults_to_the_unit_status() -> None:
    unit, steps, _ = kymriah_unit()
    partial = until(steps, "thaw_end")
    assert evaluate(KYMRIAH, dataclasses.replace(unit, status="in_progress"), partial) == []
    assert "kymriah.disposal.done" in rules(evaluate(KYMRIAH, unit, partial))  # status "complete"


def test_now_makes_an_open_window_overdue() -> None:
    unit, steps, _ = kymriah_unit()
    # thaw completed 09:12 (+08:00); the premedication's own window is left out here
    partial = [s for s in until(steps, "thaw_end") if s.step != "premedication"]
    thaw_end = partial[-1].at
    assert (
        evaluate(KYMRIAH, unit, partial, now=thaw_end + timedelta(minutes=29), complete=False) == []
    )
    late = evaluate(KYMRIAH, unit, partial, now=thaw_end + timedelta(minutes=41), complete=False)
    assert [(f.rule, f.kind, f.limit, f.actual) for f in late] == [
        ("kymriah.thaw_to_infusion", "window", "30m", "not done after 41m")
    ]


def test_due_next_says_by_when_in_the_ward_clock() -> None:
    unit, steps, _ = kymriah_unit()
    partial = [s for s in until(steps, "thaw_end") if s.step != "premedication"]
    now = partial[-1].at + timedelta(minutes=3)
    due = due_next(KYMRIAH, unit, partial, now=now)
    first = due[0]
    assert (first.step, first.rule) == ("infusion_end", "kymriah.thaw_to_infusion")
    assert first.by == partial[-1].at + timedelta(minutes=30)
    assert "by 09:42 (27m left)" in first.message  # thaw ended 09:12 +08:00
    # The same moment given in UTC shows the same ward time.
    utc = due_next(KYMRIAH, unit, partial, now=now.astimezone(datetime.now().astimezone().tzinfo))
    assert utc[0].message == first.message
    # Without its premedication the infusion cannot start yet: the premedication is due
    # (the start of the window that ends at the infusion's start comes first).
    shown = [d.step for d in due]
    assert "premedication" in shown and "infusion_start" not in shown


def test_check_step_reports_only_what_the_new_record_raises() -> None:
    unit, steps, _ = kymriah_unit()
    ordered = sorted(steps, key=lambda s: s.at)
    prior = [s for s in until(ordered, "tocilizumab_check")]
    bad_prior = [
        dataclasses.replace(s, fields={**s.fields, "doses_on_hand": 1})
        if s.step == "tocilizumab_check"
        else s
        for s in prior
    ]
    thaw = next(s for s in ordered if s.step == "thaw_start")
    found = check_step(KYMRIAH, unit, bad_prior, thaw)
    # Identity check skipped: the nurse sees it now; the old tocilizumab finding is not repeated.
    assert set(rules(found)) == {"kymriah.identity_check.done", "kymriah.identity_before_thaw"}
    fast = next(s for s in ordered if s.step == "infusion_start")
    fast = dataclasses.replace(fast, fields={**fast.fields, "rate_ml_min": 30})
    prior_all = [s for s in ordered if s.at < fast.at]
    assert rules(check_step(KYMRIAH, unit, prior_all, fast)) == ["kymriah.infusion_rate"]


def test_a_correction_replaces_the_record_it_corrects() -> None:
    unit, steps, _ = kymriah_unit()
    steps = [dataclasses.replace(s, record_id=f"R-{i}") for i, s in enumerate(steps)]
    wrong = next(s for s in steps if s.step == "infusion_start")
    typo = dataclasses.replace(wrong, fields={**wrong.fields, "rate_ml_min": 150})
    steps = [typo if s is wrong else s for s in steps]
    assert rules(evaluate(KYMRIAH, unit, steps)) == ["kymriah.infusion_rate"]
    fix = dataclasses.replace(
        wrong, record_id="R-fix", corrects=typo.record_id, reason="typed 150 for 15"
    )
    assert evaluate(KYMRIAH, unit, [*steps, fix]) == []


def test_records_of_another_checklist_or_without_offset_are_refused() -> None:
    unit, steps, _ = kymriah_unit()
    with pytest.raises(ValueError, match="not part of checklist"):
        evaluate(KYMRIAH, unit, [dataclasses.replace(steps[0], step="reconstitution")])
    with pytest.raises(ValueError, match="UTC offset"):
        evaluate(
            KYMRIAH, unit, [dataclasses.replace(steps[0], at=steps[0].at.replace(tzinfo=None))]
        )
    # Among records that are fine, wherever it is.
    for i in (0, len(steps) // 2, len(steps) - 1):
        naive = dataclasses.replace(steps[i], at=steps[i].at.replace(tzinfo=None))
        with pytest.raises(ValueError, match="UTC offset"):
            evaluate(KYMRIAH, unit, [*steps[:i], naive, *steps[i + 1 :]])
        stray = dataclasses.replace(steps[i], unit="K-OTHER")
        with pytest.raises(ValueError, match="belongs to unit 'K-OTHER'"):
            evaluate(KYMRIAH, unit, [*steps[:i], stray, *steps[i + 1 :]])


def test_abecma_second_bag_thawed_and_never_infused() -> None:
    abecma = REGISTRY.get("abecma")
    ix = to_interchange(compliant_lines("abecma"), "abecma")
    unit = ix.units[0]
    steps = ix.steps_of(unit.id)
    last_end = max((s for s in steps if s.step == "infusion_end"), key=lambda s: s.at)
    last_start = max((s for s in steps if s.step == "infusion_start"), key=lambda s: s.at)
    kept = [s for s in steps if s is not last_end and s is not last_start]
    found = evaluate(abecma, unit, kept, complete=True)
    window = [f for f in found if f.rule == "abecma.thaw_start_to_infusion"]
    assert window and window[0].actual == "never done"


def blincyto_storage(temps: list[tuple[str, float]]):
    blincyto = REGISTRY.get("blincyto")
    ix = to_interchange(compliant_lines("blincyto"), "blincyto")
    unit = ix.units[0]
    readings = list(ix.readings) + [
        ReadingFacts("FR-01", datetime.fromisoformat(at), t) for at, t in temps
    ]
    found = evaluate(blincyto, unit, ix.steps_of(unit.id), ReadingIndex(readings))
    return [f for f in found if f.rule == "blincyto.storage_temperature"]


def test_2_to_8_storage_tolerates_a_short_excursion_with_mkt_below_8() -> None:
    # 12 °C for 3 hours (between two 6-hourly readings): tolerated by USP <659>.
    assert blincyto_storage([("2026-12-02T03:00:00+08:00", 12.0)]) == []


def test_2_to_8_storage_rejects_above_15_freezing_and_long_excursions() -> None:
    assert (
        "above the tolerated 15 °C"
        in blincyto_storage([("2026-12-02T03:00:00+08:00", 16.0)])[0].message
    )
    assert "below 2 °C" in blincyto_storage([("2026-12-02T03:00:00+08:00", -0.5)])[0].message
    long = [(f"2026-12-01T{h:02d}:30:00+08:00", 9.0) for h in range(10, 24)] + [
        (f"2026-12-02T{h:02d}:30:00+08:00", 9.0) for h in range(0, 14)
    ]
    message = blincyto_storage(long)[0].message
    assert "more than the tolerated 24h" in message


def test_storage_readings_outside_the_stay_do_not_count() -> None:
    # A warm reading after the vials left the fridge (B-1 left it on 3 Dec 07:30).
    assert blincyto_storage([("2026-12-03T09:00:00+08:00", 30.0)]) == []


def test_mean_kinetic_temperature() -> None:
    assert mean_kinetic_temperature([5.0, 5.0, 5.0]) == pytest.approx(5.0)
    # MKT weighs warm readings more than the arithmetic mean does.
    assert mean_kinetic_temperature([2.0, 14.0]) > 8.0
    # Time weights: 1 hour at 14 °C in 23 hours at 4 °C.
    assert mean_kinetic_temperature([4.0, 14.0], [23, 1]) == pytest.approx(
        4.767, abs=0.001
    )  # by hand: 10000 / 35.9819 K


def test_a_unit_attribute_a_rule_needs_but_never_given_is_a_finding() -> None:
    registry = Registry.from_directory()
    lines = compliant_lines("car-t-institutional")
    for line in lines:
        if line["type"] == "unit" and line["id"] == "C-CN-1":
            del line["attributes"]["product_name"]
    interchange = to_interchange(lines, "no-product.jsonl")
    findings = findings_for(registry, interchange, "C-CN-1")
    assert [(f.rule, f.actual) for f in findings] == [
        ("car-t-institutional.product_covered", "not recorded")
    ]
    assert "cannot be shown to hold" in findings[0].message
    # The other unit, which names its product, still passes.
    assert findings_for(registry, interchange, "C-CN-2") == []


def _kymriah_us_until(day_count: int) -> tuple[Registry, object, list]:
    """K-US-1 in progress, with its observations up to `day_count` days after the infusion."""
    registry = Registry.from_directory()
    lines = compliant_lines("kymriah")
    unit_lines = [
        line
        for line in lines
        if line.get("unit") == "K-US-1" or line.get("id") == "K-US-1" or line["type"] == "equipment"
    ]
    interchange = to_interchange(unit_lines, "k-us-1.jsonl")
    end = max(s.at for s in interchange.steps if s.step == "infusion_end")
    steps = [
        s
        for s in interchange.steps
        if s.step not in ("observation", "discharge") or s.at < end + timedelta(days=day_count)
    ]
    unit = dataclasses.replace(interchange.units[0], status=None)
    return registry, unit, steps


def test_daily_monitoring_is_judged_only_for_days_that_are_over() -> None:
    registry, unit, steps = _kymriah_us_until(3)
    checklist = registry.get("kymriah")
    end = max(s.at for s in steps if s.step == "infusion_end")
    # Day 4 is under way: nothing is missing yet, and the ward is told the deadline.
    during = end + timedelta(days=3, hours=5)
    assert [f.rule for f in evaluate(checklist, unit, steps, now=during)] == []
    due = [d for d in due_next(checklist, unit, steps, now=during) if d.step == "observation"]
    assert [d.by for d in due] == [end + timedelta(days=4)]
    assert "period 4 of 7" in due[0].message
    # Once day 4 is over without an assessment, it is a finding.
    after = end + timedelta(days=4, hours=1)
    late = [
        f for f in evaluate(checklist, unit, steps, now=after) if f.rule.endswith("monitoring_us")
    ]
    assert [(f.kind, f.actual) for f in late] == [("window", "none on day 4")]
    # The rule belongs to the US labels: the same records under the EU profile pass.
    eu = dataclasses.replace(unit, profile="eu")
    assert not [
        f for f in evaluate(checklist, eu, steps, now=after, profile="eu") if "monitoring" in f.rule
    ]


def test_daily_monitoring_of_a_finished_unit_needs_every_day() -> None:
    registry, unit, steps = _kymriah_us_until(2)
    finished = dataclasses.replace(unit, status="complete")
    findings = evaluate(registry.get("kymriah"), finished, steps)
    monitoring = [f for f in findings if f.rule == "kymriah.daily_monitoring_us"]
    assert [f.actual for f in monitoring] == ["none on days 3, 4, 5, 6, 7"]


def test_a_record_corrected_twice_counts_once_with_its_latest_values() -> None:
    import random

    from qms.checklists.engine import effective_records

    at = datetime.fromisoformat("2026-10-02T09:18:00+08:00")
    original = StepFacts(
        "U-1",
        "infusion_start",
        at,
        "li.na",
        None,
        {"rate_ml_min": 150},
        record_id="U-1#9",
        recorded_at=at,
    )
    first = dataclasses.replace(
        original,
        fields={"rate_ml_min": 51},
        record_id="U-1#10",
        corrects="U-1#9",
        recorded_at=at + timedelta(minutes=5),
    )
    second = dataclasses.replace(
        original,
        fields={"rate_ml_min": 15},
        record_id="U-1#11",
        corrects="U-1#9",
        recorded_at=at + timedelta(minutes=9),
    )
    other = StepFacts(
        "U-1",
        "infusion_end",
        at + timedelta(minutes=4),
        "li.na",
        None,
        {},
        record_id="U-1#12",
        recorded_at=at,
    )
    records = [original, first, second, other]
    for seed in range(5):
        random.Random(seed).shuffle(records)
        effective = effective_records(records)
        starts = [r for r in effective if r.step == "infusion_start"]
        assert [r.fields["rate_ml_min"] for r in starts] == [15]
        assert len(effective) == 2


PAIRING_YAML = """
id: pairing
title: Pairing
version: "1"
product: Pairing product
sources:
  Pairing SOP: Pairing standard operating procedure
steps:
  dose:
    title: Dose given
    roles: [nurse]
    severity: major
    source: Pairing SOP
  check:
    title: Patient checked
    roles: [nurse]
    severity: major
    source: Pairing SOP
    repeats: true
rules:
  checked_after_dose:
    says: The patient is checked between 30 minutes and 2 hours after the dose.
    severity: major
    source: Pairing SOP
    window: {from: dose, to: check, min: 30m, max: 2h, pair: PAIR, require_from: true}
"""


@pytest.mark.parametrize(
    ("pair", "checks", "expected"),
    [
        # One dose and checks after it: `first_end` and `in_turn` measure to the first
        # check only; `last_start` and `first_start` measure to every check.
        ("first_end", [40, 60, 300], []),
        ("in_turn", [40, 60, 300], []),
        ("last_start", [40, 60, 300], ["window.max_exceeded"]),
        ("first_start", [40, 60, 300], ["window.max_exceeded"]),
        ("last_start", [10, 60, 90], ["window.min_not_reached"]),
        ("first_end", [10, 60, 90], ["window.min_not_reached"]),
        ("first_start", [40, 60, 90], []),
        # A check before the dose has no dose before it (require_from), whatever the pairing.
        ("first_end", [-5, 40], ["window.no_start"]),
        ("last_start", [-5, 40, 60], ["window.no_start"]),
    ],
)
def test_one_start_several_ends_is_judged_as_its_pairing_says(pair, checks, expected) -> None:
    # evaluate() passes a window whose one `from` and every `to` after it are within the
    # limits without calling the check (planning.py, `_Runs.windows`): the pairs it skips
    # must be those the check measures.
    checklist = parse_checklist(PAIRING_YAML.replace("PAIR", pair).encode(), "pairing.yaml")
    unit = UnitFacts("P-1", "pairing", "SH-01", None, None, None, status="in_progress")
    t0 = datetime.fromisoformat("2026-10-01T08:00:00+08:00")
    steps = [StepFacts("P-1", "dose", t0, "li.na", None, {}, record_id="P-1#0")]
    steps += [
        StepFacts(
            "P-1", "check", t0 + timedelta(minutes=m), "li.na", None, {}, record_id=f"P-1#{n}"
        )
        for n, m in enumerate(checks, 1)
    ]
    found = evaluate(checklist, unit, steps, complete=False)
    assert [f.code for f in found] == expected
