"""Due items: what can be done now, in the checklist's order, with a deadline when a window runs."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from qms.checklists.engine import due_next
from qms.checklists.engine.due import render_due
from qms.checklists.language import Registry
from tests.checklists.casebook import compliant_lines, to_interchange

REGISTRY = Registry.from_directory()


def _unit(product: str):
    ix = to_interchange(compliant_lines(product), product)
    unit = dataclasses.replace(ix.units[0], status=None)
    return unit, sorted(ix.steps_of(unit.id), key=lambda s: s.at)


def _until(steps, step_id):
    cut = next(i for i, s in enumerate(steps) if s.step == step_id)
    return steps[: cut + 1]


def test_a_unit_in_the_freezer_waits_for_release_not_for_its_observation():
    checklist = REGISTRY.get("yescarta")
    unit, steps = _unit("yescarta")
    stored = _until(steps, "storage_in")
    due = due_next(checklist, unit, stored, now=stored[-1].at + timedelta(hours=5))
    shown = [d.step for d in due]
    # Observation comes after the infusion's end (its window starts there): not now.
    assert "observation" not in shown and "infusion_end" not in shown
    # What can be done now, in the order the checklist lists its steps; no deadline runs.
    assert shown == [s for s in checklist.steps if s in shown]
    assert shown[0] == "storage_out"
    assert all(d.by is None for d in due)


def test_a_running_window_comes_first_with_its_deadline_and_no_step_id():
    checklist = REGISTRY.get("kymriah")
    unit, steps = _unit("kymriah")
    thawed = _until(steps, "thaw_end")
    now = thawed[-1].at + timedelta(minutes=8)
    due = due_next(checklist, unit, thawed, now=now)
    # Two windows run: the premedication's (the infusion must start within 1 h of it) and
    # the thaw's (the infusion must end within 30 min): the nearer deadline comes first.
    assert [d.step for d in due[:2]] == ["infusion_start", "infusion_end"]
    assert due[0].by <= due[1].by
    first = due[1]
    assert first.step == "infusion_end" and first.by == thawed[-1].at + timedelta(minutes=30)
    assert first.code == "due.window.by" and first.params["left"] == 22 * 60
    text = render_due(first, checklist=checklist)
    assert "22m left" in text and "infusion_end" not in text
    assert text.startswith(checklist.steps["infusion_end"].title)
    late = next(
        d
        for d in due_next(checklist, unit, thawed, now=thawed[-1].at + timedelta(minutes=41))
        if d.step == "infusion_end"
    )
    assert late.code == "due.window.overdue" and "overdue by 11m" in late.message


def test_due_words_are_in_the_readers_language_with_the_callers_clock():
    checklist = REGISTRY.get("kymriah")
    unit, steps = _unit("kymriah")
    thawed = _until(steps, "thaw_end")
    item = next(
        d
        for d in due_next(checklist, unit, thawed, now=thawed[-1].at + timedelta(minutes=3))
        if d.step == "infusion_end"
    )
    catalog = {
        "%(step_title)s by %(by)s (%(left)s left): %(limit)s from %(start_title)s at %(start_at)s.": (
            "%(step_title)s须在%(by)s前完成（剩余%(left)s）：自%(start_title)s（%(start_at)s）起%(limit)s。"
        )
    }
    text = render_due(
        item,
        checklist=checklist,
        lang="zh",
        gettext=lambda s: catalog.get(s, s),
        clock=lambda moment: "CLOCK",
    )
    assert text.startswith(checklist.steps["infusion_end"].title.get("zh"))
    assert "须在CLOCK前完成（剩余27m）" in text
