"""The entry points: judge a unit, check one new record, describe a checklist's rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from qms.checklists.engine.context import ReadingIndex, _Ctx
from qms.checklists.engine.planning import _plan
from qms.checklists.engine.records import _index_timed
from qms.checklists.engine.steps import CLOCK_TOLERANCE
from qms.checklists.facts import Finding, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import Checklist, Profile

_ZERO = timedelta(0)


def _profile_name(unit: UnitFacts, profile: Profile | str | None) -> str | None:
    if profile is None:
        return unit.profile
    return profile if isinstance(profile, str) else profile.id


def _reading_index(
    readings: Mapping[str, Sequence[ReadingFacts]] | ReadingIndex | None,
) -> ReadingIndex | None:
    if readings is None or isinstance(readings, ReadingIndex):
        return readings
    return ReadingIndex(readings)


def evaluate(
    checklist: Checklist,
    unit: UnitFacts,
    steps: Sequence[StepFacts],
    readings: Mapping[str, Sequence[ReadingFacts]] | ReadingIndex | None = None,
    *,
    profile: Profile | str | None = None,
    now: datetime | None = None,
    complete: bool | None = None,
) -> list[Finding]:
    """Every finding for one unit, in the checklist's rule order.

    `profile` overrides the unit's own; `complete=None` means "complete when the unit's
    status is 'complete'". Readings are needed only for storage rules (skipped if None);
    pass a ReadingIndex when evaluating many units against the same readings.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must carry a UTC offset")
    name = _profile_name(unit, profile)
    plan = _plan(checklist, name)
    records, by_step, when, recorded = _index_timed(plan, unit, steps)
    done = unit.status == "complete" if complete is None else complete
    ctx = _Ctx(unit, by_step, records, _reading_index(readings), now, done, name, when, recorded)
    runs = plan.runs(recorded)
    # The quick tests first, all at once (planning.py, `_Runs`): a check whose test passes
    # would find nothing and is not called; the others run in their turn, as every check.
    dirty: set[int] | None = None
    if runs.steps:
        latest = None if now is None else now + CLOCK_TOLERANCE
        for step, clean, once, positions in runs.steps:
            got = by_step[step]
            if not once or len(got) == 1:
                for rec in got:
                    if not clean(rec, latest):
                        break
                else:
                    continue
            if dirty is None:
                dirty = set()
            dirty.update(positions)
    for position, pred, later in runs.turns:
        if pred is None or when[id(by_step[pred][-1])] > when[id(by_step[later][0])]:
            if dirty is None:
                dirty = set()
            dirty.add(position)
    for position, start, end, low, high, require_from, each in runs.windows:
        starts = by_step.get(start)
        ends = by_step.get(end)
        if starts is None:
            if ends is None or not require_from:
                continue
        elif ends is None:
            if now is None or high is None:
                continue  # open, and it cannot be late
        elif len(starts) == 1:
            # One `from`, and every `to` at or after it (none before: no `to` without its
            # `from`, and no pairing question): each `to` is measured from it when the
            # window pairs every `to` (`each`), else the first `to` only (engine/windows.py).
            began = when[id(starts[0])]
            first = when[id(ends[0])] - began
            if first >= _ZERO:
                last = when[id(ends[-1])] - began if each else first
                if (high is None or not last > high) and (low is None or not first < low):
                    continue
        if dirty is None:
            dirty = set()
        dirty.add(position)
    checks = runs.quiet if dirty is None else runs.select(frozenset(dirty))
    for check in checks:
        check(ctx)
    return ctx.out


def check_step(
    checklist: Checklist,
    unit: UnitFacts,
    prior_steps: Sequence[StepFacts],
    new_step: StepFacts,
    *,
    profile: Profile | str | None = None,
    readings: Mapping[str, Sequence[ReadingFacts]] | ReadingIndex | None = None,
) -> list[Finding]:
    """The findings a new record would raise (for a form, before it is signed)."""
    index = _reading_index(readings)
    before = evaluate(checklist, unit, prior_steps, index, profile=profile, complete=False)
    after = evaluate(
        checklist, unit, [*prior_steps, new_step], index, profile=profile, complete=False
    )
    return added_findings(before, after)


def added_findings(before: Sequence[Finding], after: Sequence[Finding]) -> list[Finding]:
    """The findings of `after` that `before` does not have (each counted as often as it
    occurs): what a new record adds. A caller judging records one after another (the
    import) passes the previous `after` as the next `before`."""
    seen: dict[Finding, int] = {}
    for finding in before:
        seen[finding] = seen.get(finding, 0) + 1
    out = []
    for finding in after:
        if seen.get(finding):
            seen[finding] -= 1
        else:
            out.append(finding)
    return out


def describe_rules(checklist: Checklist) -> list[dict[str, Any]]:
    """The rules of a checklist as plain data (for `qms checklist show` and documentation)."""
    return [
        {
            "rule": r.id,
            "kind": r.kind,
            "severity": r.severity,
            "source": r.source,
            "says": r.says,
            "when": r.when.text if r.when else None,
            "limit": r.limit_text,
        }
        for r in checklist.rules
    ]
