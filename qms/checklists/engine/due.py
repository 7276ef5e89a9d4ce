"""Due items: what a unit in progress waits for next, soonest deadline first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from qms.checklists.engine.context import _Ctx
from qms.checklists.engine.planning import _plan
from qms.checklists.engine.records import _index
from qms.checklists.engine.run import _profile_name
from qms.checklists.engine.windows import _periods, _window_pairs, _window_records
from qms.checklists.facts import DueItem, StepFacts, UnitFacts
from qms.checklists.language import Checklist, Profile
from qms.checklists.quantities import format_duration


def _clock(moment: datetime, now: datetime) -> str:
    local_now = now.astimezone(moment.tzinfo)
    if moment.date() == local_now.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def due_next(
    checklist: Checklist,
    unit: UnitFacts,
    steps: Sequence[StepFacts],
    *,
    profile: Profile | str | None = None,
    now: datetime,
) -> list[DueItem]:
    """What a unit in progress waits for, soonest deadline first ("infusion must end by 09:40").

    Times are shown in the UTC offset of the record the deadline is measured from, which
    is the ward's own clock.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a UTC offset")
    name = _profile_name(unit, profile)
    plan = _plan(checklist, name)
    records, by_step = _index(plan, unit, steps)
    ctx = _Ctx(unit, by_step, records, None, now, False, name)
    items: list[DueItem] = []
    windowed: set[str] = set()
    for rule, spec, conds in plan.windows:
        chosen = _window_records(ctx, spec, conds)
        if chosen is None or not chosen[0]:
            continue
        _, open_ = _window_pairs(spec, *chosen)
        for start in open_:
            deadline = start.at + spec.max if spec.max is not None else None
            earliest = start.at + spec.min if spec.min is not None else None
            title = checklist.steps[spec.end].title
            parts = []
            if earliest is not None and earliest > now:
                parts.append(f"not before {_clock(earliest, now)}")
            if deadline is not None:
                if deadline >= now:
                    parts.append(
                        f"by {_clock(deadline, now)} ({format_duration(deadline - now)} left)"
                    )
                else:
                    parts.append(
                        f"by {_clock(deadline, now)} (overdue by {format_duration(now - deadline)})"
                    )
            if not parts:
                continue
            measured = f"{spec.limit_text} from {spec.start} at {_clock(start.at, now)}"
            items.append(
                DueItem(
                    unit.id,
                    spec.end,
                    rule.id,
                    deadline,
                    earliest,
                    f"{title} ({spec.end}) {' and '.join(parts)}: {measured}; {rule.source}.",
                )
            )
            windowed.add(spec.end)
    for rule, spec, conds in plan.periodic:
        chosen = _window_records(ctx, spec, conds)
        if chosen is None or not chosen[0]:
            continue
        starts, ends = chosen
        anchor = starts[-1].at
        for number, begin, end in _periods(spec, anchor):
            if not begin <= now < end:
                continue
            if not any(begin <= r.at < end for r in ends):
                title = checklist.steps[spec.end].title
                items.append(
                    DueItem(
                        unit.id,
                        spec.end,
                        rule.id,
                        end,
                        None,
                        f"{title} ({spec.end}) by {_clock(end, now)} "
                        f"({format_duration(end - now)} left): period {number} of {spec.periods}, "
                        f"{spec.limit_text} from {spec.start} at {_clock(anchor, now)}; {rule.source}.",
                    )
                )
            windowed.add(spec.end)
    for rule, step, cond in plan.done_rules:
        if step.id in by_step or step.id in windowed:
            continue
        if cond is not None and not cond(ctx, ()):
            continue
        if all(p in by_step for p in plan.predecessors.get(step.id, ())):
            items.append(
                DueItem(
                    unit.id, step.id, rule.id, None, None, f"{step.title} ({step.id}) is due next."
                )
            )
    order = {sid: i for i, sid in enumerate(checklist.steps)}
    far = datetime.max.replace(tzinfo=now.tzinfo)
    items.sort(key=lambda d: (d.by is None, d.by or far, order[d.step]))
    return items
