"""Due items: what can be done for a unit now, in the checklist's order, with its deadline.

A step is due when the checklist wants it (its done rule applies), it is not yet
recorded, and everything the checklist puts before it is: the earlier steps of its
order rules and the start of every window that ends with it (an observation "within
24 h of the end of infusion" cannot be done before the infusion ends). A running
window or period gives the item its deadline. Items with a deadline come first,
soonest first; the rest follow in the checklist's order of steps.

An item is a code and parameters, like a finding: `render_due` makes its words in the
reader's language, with times shown by the caller (the site's zone, the locale).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from qms.checklists.engine.context import _Ctx
from qms.checklists.engine.messages import N_, _in_language, _Renderer
from qms.checklists.engine.planning import _plan
from qms.checklists.engine.records import _index
from qms.checklists.engine.run import _profile_name
from qms.checklists.engine.windows import _periods, _window_pairs, _window_records
from qms.checklists.facts import DueItem, StepFacts, UnitFacts
from qms.checklists.language import Checklist, Profile
from qms.checklists.quantities import format_duration

# code -> template. Times (`by`, `not_before`, `start_at`) are ISO strings in params and
# shown by the caller's clock; `left` and `late` are seconds.
DUE_MESSAGES: dict[str, str] = {
    "due.next": N_("%(step_title)s is due next."),
    "due.window.by": N_(
        "%(step_title)s by %(by)s (%(left)s left): %(limit)s from %(start_title)s at %(start_at)s."
    ),
    "due.window.overdue": N_(
        "%(step_title)s by %(by)s (overdue by %(late)s): %(limit)s from %(start_title)s "
        "at %(start_at)s."
    ),
    "due.window.not_before": N_(
        "%(step_title)s not before %(not_before)s: %(limit)s from %(start_title)s at %(start_at)s."
    ),
    "due.window.between": N_(
        "%(step_title)s not before %(not_before)s and by %(by)s (%(left)s left): %(limit)s "
        "from %(start_title)s at %(start_at)s."
    ),
    "due.every": N_(
        "%(step_title)s by %(by)s (%(left)s left): period %(number)s of %(periods)s, "
        "%(limit)s from %(start_title)s at %(start_at)s."
    ),
}
_SOURCE = N_("%(text)s Source: %(source)s.")


def _ward_clock(now: datetime) -> Callable[[datetime], str]:
    """Times in the offset of the record they come from (the ward's clock); the date only
    when it is not today's."""

    def clock(moment: datetime) -> str:
        local_now = now.astimezone(moment.tzinfo)
        if moment.date() == local_now.date():
            return moment.strftime("%H:%M")
        return moment.strftime("%Y-%m-%d %H:%M")

    return clock


def render_due(
    item: DueItem,
    *,
    checklist: Any = None,
    lang: str = "en",
    gettext: Callable[[str], str] | None = None,
    clock: Callable[[datetime], str] | None = None,
    source: bool = False,
) -> str:
    """A due item's words: its code's template, translated by `gettext`, filled in.

    `clock` shows a time (default: the ward's clock of the record, HH:MM today); with a
    checklist, steps are shown by their titles in `lang`; `source` adds the rule's source.
    """
    return _render(item.code, item.params, checklist, lang, gettext, clock, source)


def _render(
    code: str,
    params: Mapping[str, Any],
    checklist: Any,
    lang: str,
    gettext: Callable[[str], str] | None,
    clock: Callable[[datetime], str] | None,
    source: bool,
) -> str:
    translate = gettext or (lambda text: text)
    renderer = _Renderer(checklist, lang, gettext)
    if clock is None:
        clock = _ward_clock(datetime.fromisoformat(params["now"]))
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key in ("by", "not_before", "start_at") and value is not None:
            values[key] = clock(datetime.fromisoformat(value))
        elif key in ("left", "late"):
            values[key] = format_duration(timedelta(seconds=value))
        elif key in ("step", "start"):
            values[f"{key}_title"] = renderer.step_title(value)
        else:
            values[key] = value
    text = translate(DUE_MESSAGES[code]) % values
    if source and params.get("source"):
        return translate(_SOURCE) % {"text": text, "source": params["source"]}
    return text


def _item(
    unit: UnitFacts,
    step: str,
    rule: str | None,
    by: datetime | None,
    not_before: datetime | None,
    code: str,
    params: dict[str, Any],
    checklist: Checklist,
) -> DueItem:
    message = _render(code, params, None, "en", None, None, False)
    return DueItem(unit.id, step, rule, by, not_before, message, code, params)


def due_next(
    checklist: Checklist,
    unit: UnitFacts,
    steps: Sequence[StepFacts],
    *,
    profile: Profile | str | None = None,
    now: datetime,
) -> list[DueItem]:
    """What can be done for a unit now: deadlines first (soonest first), then checklist order.

    The English `message` shows times in the UTC offset of the record the deadline is
    measured from, which is the ward's own clock.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a UTC offset")
    name = _profile_name(unit, profile)
    plan = _plan(checklist, name)
    records, by_step = _index(plan, unit, steps)
    ctx = _Ctx(unit, by_step, records, None, now, False, name)
    items: list[DueItem] = []
    windowed: set[str] = set()
    # The starts of the windows ending at a step come before it, like an order rule's.
    window_starts: dict[str, set[str]] = {}
    for _rule, spec, _ in (*plan.windows, *plan.periodic):
        window_starts.setdefault(spec.end, set()).add(spec.start)
    for rule, spec, conds in plan.windows:
        chosen = _window_records(ctx, spec, conds)
        if chosen is None or not chosen[0]:
            continue
        _, open_ = _window_pairs(spec, *chosen)
        for start in open_:
            deadline = start.at + spec.max if spec.max is not None else None
            earliest = start.at + spec.min if spec.min is not None else None
            params: dict[str, Any] = {
                "step": spec.end,
                "start": spec.start,
                "start_at": start.at.isoformat(),
                "limit": spec.limit_text,
                "rule": rule.id,
                "source": rule.source,
                "now": now.isoformat(),
            }
            waiting = earliest is not None and earliest > now
            if waiting:
                params["not_before"] = earliest.isoformat()
            if deadline is not None:
                params["by"] = deadline.isoformat()
                if deadline >= now:
                    params["left"] = int((deadline - now).total_seconds())
                    code = "due.window.between" if waiting else "due.window.by"
                else:
                    params["late"] = int((now - deadline).total_seconds())
                    code = "due.window.overdue"
            elif waiting:
                code = "due.window.not_before"
            else:
                continue
            items.append(
                _item(unit, spec.end, rule.id, deadline, earliest, code, params, checklist)
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
                params = {
                    "step": spec.end,
                    "start": spec.start,
                    "start_at": anchor.isoformat(),
                    "by": end.isoformat(),
                    "left": int((end - now).total_seconds()),
                    "number": number,
                    "periods": spec.periods,
                    "limit": spec.limit_text,
                    "rule": rule.id,
                    "source": rule.source,
                    "now": now.isoformat(),
                }
                items.append(
                    _item(unit, spec.end, rule.id, end, None, "due.every", params, checklist)
                )
            windowed.add(spec.end)
    for rule, step, cond in plan.done_rules:
        if step.id in by_step or step.id in windowed:
            continue
        if cond is not None and not cond(ctx, ()):
            continue
        before = plan.predecessors.get(step.id, set()) | window_starts.get(step.id, set())
        if all(p in by_step for p in before):
            params = {"step": step.id, "rule": rule.id, "source": step.source}
            params["now"] = now.isoformat()
            items.append(_item(unit, step.id, rule.id, None, None, "due.next", params, checklist))
    order = {sid: i for i, sid in enumerate(checklist.steps)}
    far = datetime.max.replace(tzinfo=now.tzinfo)
    items.sort(key=lambda d: (d.by is None, d.by or far, order[d.step]))
    return items


def step_title(checklist: Checklist, step: str, lang: str) -> str:
    """A step's title in the reader's language (`lang` is a checklist text key)."""
    return _in_language(checklist.steps[step].title, lang)
