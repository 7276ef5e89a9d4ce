"""Windows between two steps (pairs of records, open windows) and `every` (periodic) rules."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from qms.checklists.engine.context import _EPOCH, _Check, _compile_tests, _Cond, _Ctx, _emit
from qms.checklists.facts import StepFacts
from qms.checklists.language import Checklist, Condition, EverySpec, Rule, WindowSpec
from qms.checklists.quantities import format_duration

_T = TypeVar("_T", datetime, timedelta)  # a time, or a distance from one UTC instant
_WindowConds = tuple[_Cond | None, _Cond | None, _Cond | None]


def _window_conditions(when: Condition | None, spec: WindowSpec) -> _WindowConds:
    """Split `when` into (unit gate, filter on `from` records, filter on `to` records).

    A test on a field of the `from` step chooses which `from` records the window measures
    from (e.g. only premedication given for a restart); likewise for `to`. Any other test
    decides whether the window applies to the unit at all.
    """
    if when is None:
        return None, None, None
    tests = when.field_tests
    on_start = [t for t in tests if t.ref is not None and t.ref.step == spec.start]
    on_end = [t for t in tests if t.ref is not None and t.ref.step == spec.end]
    rest = [t for t in tests if t not in on_start and t not in on_end]
    return _compile_tests(rest), _compile_tests(on_start), _compile_tests(on_end)


def _window_records(
    ctx: _Ctx, spec: WindowSpec, conds: _WindowConds
) -> tuple[list[StepFacts], list[StepFacts]] | None:
    gate, start_filter, end_filter = conds
    if gate is not None and not gate(ctx, ()):
        return None
    starts = ctx.by_step.get(spec.start) or []
    ends = ctx.by_step.get(spec.end) or []
    if start_filter is not None:
        starts = [r for r in starts if start_filter(ctx, (r,))]
    if end_filter is not None:
        ends = [r for r in ends if end_filter(ctx, (r,))]
    return starts, ends


def _window_pairs(
    spec: WindowSpec,
    starts: list[StepFacts],
    ends: list[StepFacts],
    when: Mapping[int, timedelta] | None = None,
) -> tuple[list[tuple[StepFacts, StepFacts]], list[StepFacts]]:
    """(from, to) pairs measured, and `from` records still waiting for their `to`.

    `when` gives each record's time as the context has it (ctx.when, cheap to compare);
    without it the records' own times are compared."""
    pairs: list[tuple[StepFacts, StepFacts]] = []
    open_: list[StepFacts] = []
    if not starts:
        return pairs, open_
    if len(starts) == 1 and len(ends) <= 1:
        # The usual case, the same whatever the pairing: one `from` and at most one `to`.
        start = starts[0]
        if ends:
            end = ends[0]
            if (when[id(end)] >= when[id(start)]) if when is not None else end.at >= start.at:
                pairs.append((start, end))
                return pairs, open_
        open_.append(start)
        return pairs, open_
    if when is None:
        st = [r.at for r in starts]
        et = [r.at for r in ends]
    else:
        st = [when[id(r)] for r in starts]
        et = [when[id(r)] for r in ends]
    if spec.pair == "last_start":
        for end, end_at in zip(ends, et, strict=True):
            start = None
            for candidate, at in zip(starts, st, strict=True):
                if at <= end_at:
                    start = candidate
                else:
                    break
            if start is not None:
                pairs.append((start, end))
        last_at = st[-1]
        if not any(e >= last_at for e in et):
            open_.append(starts[-1])
    elif spec.pair == "in_turn":
        waiting: list[StepFacts] = []
        pending = list(starts)
        pending_at = list(st)
        for end, end_at in zip(ends, et, strict=True):
            while pending and pending_at[0] <= end_at:
                waiting.append(pending.pop(0))
                pending_at.pop(0)
            if waiting:
                pairs.append((waiting.pop(0), end))
        open_.extend(waiting + pending)
    elif spec.pair == "first_end":
        for start, start_at in zip(starts, st, strict=True):
            end = next((e for e, at in zip(ends, et, strict=True) if at >= start_at), None)
            if end is None:
                open_.append(start)
            else:
                pairs.append((start, end))
    else:  # first_start
        first_at = st[0]
        later = [e for e, at in zip(ends, et, strict=True) if at >= first_at]
        pairs.extend((starts[0], e) for e in later)
        if not later:
            open_.append(starts[0])
    return pairs, open_


def _periods(spec: EverySpec, anchor: _T) -> Iterator[tuple[int, _T, _T]]:
    """(number from 1, start, end) of each period after the anchor; the last may be shorter."""
    finish = anchor + spec.span
    for k in range(spec.periods):
        begin = anchor + k * spec.interval
        yield k + 1, begin, min(begin + spec.interval, finish)


def _compile_every(rule: Rule, spec: EverySpec, conds: _WindowConds, cl: Checklist) -> _Check:
    steps = (spec.start, spec.end)
    limit = spec.limit_text
    interval = format_duration(spec.interval)
    span = format_duration(spec.span)
    daily = spec.interval == timedelta(days=1)  # "day 4" reads better than "72h–96h"

    def check(ctx: _Ctx) -> None:
        chosen = _window_records(ctx, spec, conds)
        if chosen is None or not chosen[0]:
            return
        starts, ends = chosen
        # Measured from the last `from` record: monitoring follows the last bag.
        # Times as the context's distances from one UTC instant (cheap to compare).
        when = ctx.when
        anchor = when[id(starts[-1])]
        # Only periods that are over are judged: as at `now`, or in full for a finished
        # unit, or otherwise up to the unit's latest record (an audit of a file).
        if ctx.now is not None:
            horizon = ctx.now - _EPOCH
        elif ctx.complete:
            horizon = anchor + spec.span
        else:
            horizon = max(when[id(r)] for r in ctx.records)
        done_at = [when[id(r)] for r in ends]  # in time order, as the records are
        missed = []
        for number, begin, end in _periods(spec, anchor):
            if end > horizon:
                continue
            first = bisect_left(done_at, begin)  # the first record at or after the start
            if first < len(done_at) and done_at[first] < end:
                continue
            missed.append(
                number
                if daily
                else f"{format_duration(begin - anchor)}–{format_duration(end - anchor)}"
            )
        if not missed:
            return
        if daily:
            placed = f"on day{'s' if len(missed) > 1 else ''} {', '.join(map(str, missed))}"
        else:
            placed = f"in the period{'s' if len(missed) > 1 else ''} {', '.join(missed)}"
        params = {
            "rule": rule.id,
            "start": spec.start,
            "end": spec.end,
            "interval": interval,
            "span": span,
            "missed": missed,
            "daily": daily,
        }
        _emit(ctx, cl, rule, steps, "every.missed", params, limit, f"none {placed}", starts[-1:])

    return check


def _compile_window(rule: Rule, spec: WindowSpec, conds: _WindowConds, cl: Checklist) -> _Check:
    start_id, end_id = spec.start, spec.end
    low, high = spec.min, spec.max
    limit = spec.limit_text
    low_text = format_duration(low) if low is not None else None
    high_text = format_duration(high) if high is not None else None
    steps = (start_id, end_id)
    require_from = spec.require_from
    simple = conds == (None, None, None)
    rid = rule.id

    def check(ctx: _Ctx) -> None:
        by_step = ctx.by_step
        if simple:
            if start_id not in by_step:
                if not require_from or end_id not in by_step:
                    return
            starts = by_step.get(start_id) or []
            ends = by_step.get(end_id) or []
        else:
            chosen = _window_records(ctx, spec, conds)
            if chosen is None:
                return
            starts, ends = chosen
        when = ctx.when
        if require_from:
            for end in ends:
                if not starts or when[id(starts[0])] > when[id(end)]:
                    params = {"rule": rid, "start": start_id, "end": end_id}
                    actual = f"no {start_id} before"
                    _emit(ctx, cl, rule, steps, "window.no_start", params, limit, actual, (end,))
        if not starts:
            return
        pairs, open_ = _window_pairs(spec, starts, ends, when)
        for start, end in pairs:
            took = when[id(end)] - when[id(start)]
            if high is not None and took > high:
                code, bound = "window.max_exceeded", {"max": high_text}
            elif low is not None and took < low:
                code, bound = "window.min_not_reached", {"min": low_text}
            else:
                continue
            took_text = format_duration(took)
            params = {"rule": rid, "start": start_id, "end": end_id, "took": took_text, **bound}
            _emit(ctx, cl, rule, steps, code, params, limit, took_text, (start, end))
        for start in open_:
            now = ctx.now
            if now is not None and high is not None and now - start.at > high:
                waited = format_duration(now - start.at)
                params = {
                    "rule": rid,
                    "start": start_id,
                    "end": end_id,
                    "waited": waited,
                    "max": high_text,
                }
                actual = f"not done after {waited}"
                _emit(ctx, cl, rule, steps, "window.overdue", params, limit, actual, (start,))
            elif ctx.complete and ends:
                # The step was done for other records but never after this one, e.g. a
                # second bag thawed and never infused. Never done at all is "missing".
                params = {"rule": rid, "start": start_id, "end": end_id}
                code = "window.never_followed"
                _emit(ctx, cl, rule, steps, code, params, limit, "never done", (start,))

    return check
