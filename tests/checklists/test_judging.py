"""The judging function: facts in, findings and due items out, the same for every caller."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from qms.checklists.engine import check_step, due_next, effective_records, evaluate
from qms.checklists.facts import ReadingFacts
from qms.checklists.judging import (
    Judgement,
    UnitCase,
    counted_record_ids,
    judge,
    judge_many,
    judge_new_record,
)
from tests.checklists.test_engine import KYMRIAH, REGISTRY, kymriah_unit, until


def _in_progress():
    """A Kymriah unit thawed but not yet infused, its records numbered as stored ones are."""
    unit, steps, ix = kymriah_unit()
    partial = [
        dataclasses.replace(s, record_id=f"K-US-1#{n}", recorded_at=s.at)
        for n, s in enumerate(until(steps, "thaw_end"), start=1)
    ]
    return dataclasses.replace(unit, status=None), partial, ix


def test_a_unit_in_progress_gets_its_findings_and_what_is_due():
    unit, partial, ix = _in_progress()
    now = partial[-1].at + timedelta(minutes=10)
    judged = judge(KYMRIAH, unit, partial, ix.readings, now=now)
    assert judged.status == "in_progress"
    assert judged.findings == evaluate(KYMRIAH, unit, partial, ix.readings, now=now)
    assert judged.due == due_next(KYMRIAH, unit, partial, now=now)
    assert judged.next_due is not None and judged.next_due.step == judged.due[0].step


def test_declared_complete_judges_the_unit_as_finished_and_nothing_is_due():
    unit, partial, ix = _in_progress()
    now = partial[-1].at + timedelta(minutes=10)
    judged = judge(KYMRIAH, unit, partial, ix.readings, now=now, status="complete")
    assert judged.status == "complete" and judged.due == []
    assert "kymriah.infusion_end.done" in {f.rule for f in judged.findings}
    # The unit's own status says the same when no status is given.
    closed = dataclasses.replace(unit, status="complete")
    assert judge(KYMRIAH, closed, partial, ix.readings, now=now) == judged


def test_a_cancelled_unit_waits_for_nothing_and_misses_nothing():
    unit, partial, ix = _in_progress()
    now = partial[-1].at + timedelta(minutes=10)
    judged = judge(KYMRIAH, unit, partial, ix.readings, now=now, status="cancelled")
    assert judged.due == []
    assert not any(f.kind == "missing_step" for f in judged.findings)


def test_without_now_or_when_asked_nothing_is_due():
    unit, partial, ix = _in_progress()
    assert judge(KYMRIAH, unit, partial, ix.readings, now=None).due == []
    now = partial[-1].at + timedelta(minutes=10)
    assert judge(KYMRIAH, unit, partial, ix.readings, now=now, due=False).due == []


def test_raw_records_are_judged_with_their_latest_correction():
    unit, partial, ix = _in_progress()
    thaw = next(s for s in partial if s.step == "thaw_end")
    wrong = dataclasses.replace(
        thaw,
        record_id="K-US-1#98",
        corrects=thaw.record_id,
        fields={**thaw.fields, "temperature_c": 90},
        recorded_at=thaw.at + timedelta(minutes=1),
        reason="typed 90",
    )
    right = dataclasses.replace(
        wrong, record_id="K-US-1#99", fields=thaw.fields, recorded_at=thaw.at + timedelta(minutes=2)
    )
    now = partial[-1].at + timedelta(minutes=5)
    raw = [*partial, right, wrong]  # any order: the later entry counts
    assert judge(KYMRIAH, unit, raw, ix.readings, now=now).findings == evaluate(
        KYMRIAH, unit, effective_records(raw), ix.readings, now=now
    )
    assert counted_record_ids(raw) == {s.record_id for s in partial} - {thaw.record_id} | {
        "K-US-1#99"
    }


def test_the_live_check_of_a_correction_replaces_what_it_corrects():
    unit, partial, ix = _in_progress()
    thaw = next(s for s in partial if s.step == "thaw_end")
    hot = dataclasses.replace(
        thaw, record_id=None, corrects=thaw.record_id, fields={**thaw.fields, "temperature_c": 90}
    )
    found = judge_new_record(KYMRIAH, unit, partial, hot, ix.readings)
    others = [s for s in partial if s.record_id != thaw.record_id]
    assert found == check_step(KYMRIAH, unit, others, hot, readings=ix.readings)
    # A new step is compared with every record that counts.
    later = dataclasses.replace(thaw, step="infusion_start", record_id=None, fields={})
    assert judge_new_record(KYMRIAH, unit, partial, later, ix.readings) == check_step(
        KYMRIAH, unit, partial, later, readings=ix.readings
    )


def test_many_units_are_judged_as_one_by_one():
    _, _, ix = kymriah_unit()
    now = max(s.at for s in ix.steps) + timedelta(hours=1)
    cases = [UnitCase(u, tuple(ix.steps_of(u.id))) for u in ix.units]
    judged = judge_many(
        cases, lambda u: REGISTRY.get(u.checklist, u.checklist_version), ix.readings, now=now
    )
    assert list(judged) == [u.id for u in ix.units]
    for case in cases:
        checklist = REGISTRY.get(case.unit.checklist, case.unit.checklist_version)
        assert judged[case.unit.id] == judge(checklist, case.unit, case.steps, ix.readings, now=now)


def test_a_warm_freezer_is_found_with_readings_and_counted_by_severity():
    unit, steps, ix = kymriah_unit()
    stored = next(s for s in steps if s.step == "storage_in")
    warm = ReadingFacts(stored.fields["equipment"], stored.at + timedelta(minutes=5), -100.0)
    judged = judge(KYMRIAH, unit, steps, [*ix.readings, warm], now=None)
    assert "kymriah.storage_temperature" in {f.rule for f in judged.findings}
    counts = judged.by_severity()
    assert list(counts) == ["critical", "major", "minor"]
    assert sum(counts.values()) == len(judged.findings) and counts["critical"] >= 1
    assert [f.severity for f in judged.worst_first()] == sorted(
        (f.severity for f in judged.findings), key=["critical", "major", "minor"].index
    )
    assert Judgement("U", "in_progress").by_severity() == {"critical": 0, "major": 0, "minor": 0}
