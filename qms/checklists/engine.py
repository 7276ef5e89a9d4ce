"""The rule engine: one pure function from a checklist and a unit's records to findings.

The live check on a ward form, the audit run and `qms evaluate` all call `evaluate` (or
`check_step`, which is `evaluate` before and after one new record). A checklist is
compiled once per (checklist, profile) into closures over precomputed tables; a unit is
then indexed once (records by step, in time order) and every closure reads that index.

Time semantics (see docs/checklists.md, "What the engine reports and when"):
- `complete=True`: the unit is finished; every required step never done is missing, and
  a window left open (a thawed bag never infused) is a finding.
- `complete=False`: the unit is in progress; a required step is missing only once a step
  that must come after it (by the order rules) has been recorded.
- `now`: open windows whose maximum has passed by `now` are findings (overdue), storage
  is checked up to `now`, and records dated after `now` are flagged.
Findings never contain clock times, only durations, so that they do not depend on the
time zone the records were written in.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from qms.checklists.facts import DueItem, Finding, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import (
    UNIT_FIELDS,
    Checklist,
    Condition,
    EverySpec,
    FieldDef,
    FieldRef,
    FieldSpec,
    OrderSpec,
    Profile,
    Rule,
    StepDef,
    StorageSpec,
    Test,
    WindowSpec,
)
from qms.checklists.mkt import mean_kinetic_temperature
from qms.checklists.quantities import format_duration, format_number, format_quantity

# Clocks on ward devices drift; a record up to this far "in the future" is not flagged.
CLOCK_TOLERANCE = timedelta(minutes=5)

_Check = Callable[["_Ctx"], None]
_Cond = Callable[["_Ctx", tuple[StepFacts, ...]], bool]


class ReadingIndex:
    """Readings per equipment, sorted once, for many units (audits, `qms evaluate`)."""

    __slots__ = ("_by_equipment",)

    def __init__(self, readings: Mapping[str, Sequence[ReadingFacts]] | Iterable[ReadingFacts]):
        grouped: dict[str, list[ReadingFacts]] = {}
        if isinstance(readings, Mapping):
            for equipment, items in readings.items():
                grouped.setdefault(equipment, []).extend(items)
        else:
            for reading in readings:
                grouped.setdefault(reading.equipment, []).append(reading)
        self._by_equipment: dict[str, tuple[list[datetime], list[float]]] = {}
        for equipment, items in grouped.items():
            items.sort(key=lambda r: (r.at, r.temperature_c))
            self._by_equipment[equipment] = (
                [r.at for r in items],
                [float(r.temperature_c) for r in items],
            )

    def series(self, equipment: str) -> tuple[list[datetime], list[float]] | None:
        return self._by_equipment.get(equipment)


class _Ctx:
    __slots__ = ("unit", "by_step", "records", "readings", "now", "complete", "out", "profile")

    def __init__(self, unit, by_step, records, readings, now, complete, profile):
        self.unit: UnitFacts = unit
        self.by_step: dict[str, list[StepFacts]] = by_step
        self.records: list[StepFacts] = records
        self.readings: ReadingIndex | None = readings
        self.now: datetime | None = now
        self.complete: bool = complete
        self.profile: str | None = profile
        self.out: list[Finding] = []


class _Plan:
    """A checklist compiled for one profile."""

    def __init__(self, checklist: Checklist, profile: str | None):
        self.checklist = checklist
        self.profile = profile
        self.checks: list[_Check] = []
        self.windows: list[tuple[Rule, WindowSpec, _WindowConds]] = []
        self.periodic: list[tuple[Rule, EverySpec, _WindowConds]] = []
        self.step_ids = frozenset(checklist.steps)
        self.profile_rules: list[str] = []
        self.predecessors: dict[str, set[str]] = {}
        self.successors: dict[str, set[str]] = {}
        self.done_rules: list[tuple[Rule, StepDef, _Cond | None]] = []
        self._compile()

    # -- compilation
    def _applies(self, when: Condition | None) -> bool:
        """Profile tests are settled at compile time; field tests are left for run time."""
        if when is None:
            return True
        profiles = when.profiles
        return profiles is None or (self.profile is not None and self.profile in profiles)

    def _compile(self) -> None:
        cl = self.checklist
        for rule in cl.rules:
            if not rule.generated and rule.when is not None and rule.when.profiles is not None:
                self.profile_rules.append(rule.id)
        for step in cl.steps.values():
            if step.when is not None and step.when.profiles is not None:
                self.profile_rules.append(f"{cl.id}.{step.id}.done")
        self._order_graph()
        by_step_rules: dict[str, dict[str, Rule]] = {}
        for rule in cl.rules:
            if rule.generated and rule.step is not None:
                by_step_rules.setdefault(rule.step, {})[rule.id.rsplit(".", 1)[1]] = rule
        for rule in cl.rules:
            if rule.generated:
                if rule.step is None:  # the `<checklist>.profile` rule
                    self.checks.append(self._compile_profile(rule))
                    continue
                suffix = rule.id.rsplit(".", 1)[1]
                step = cl.steps[rule.step]
                if suffix == "done":
                    if self._applies(rule.when):
                        self.done_rules.append((rule, step, _compile_condition(rule.when)))
                        self.checks.append(self._compile_done(rule, step))
                elif suffix == "record":
                    # role, witness and record checks of a step run in one pass over its records
                    self.checks.append(self._compile_step_checks(step, by_step_rules[step.id]))
                continue
            if not self._applies(rule.when):
                continue
            cond = _compile_condition(rule.when)
            spec = rule.spec
            if isinstance(spec, OrderSpec):
                self.checks.append(_compile_order(rule, spec, cl))
            elif isinstance(spec, WindowSpec):
                conds = _window_conditions(rule.when, spec)
                self.windows.append((rule, spec, conds))
                self.checks.append(_compile_window(rule, spec, conds, cl))
            elif isinstance(spec, EverySpec):
                conds = _window_conditions(rule.when, spec)
                self.periodic.append((rule, spec, conds))
                self.checks.append(_compile_every(rule, spec, conds, cl))
            elif isinstance(spec, FieldSpec):
                self.checks.append(_compile_field(rule, spec, cond, cl))
            elif isinstance(spec, StorageSpec):
                self.checks.append(_compile_storage(rule, spec, cond, cl))

    def _order_graph(self) -> None:
        direct: dict[str, set[str]] = {}
        for rule in self.checklist.rules:
            if isinstance(rule.spec, OrderSpec) and self._applies(rule.when):
                seq = rule.spec.steps
                for i, a in enumerate(seq):
                    for b in seq[i + 1 :]:
                        direct.setdefault(a, set()).add(b)
                        self.predecessors.setdefault(b, set()).add(a)
        # Transitive closure: the lint guarantees no cycles, and checklists are small.
        for start in direct:
            seen: set[str] = set()
            stack = list(direct[start])
            while stack:
                nxt = stack.pop()
                if nxt not in seen:
                    seen.add(nxt)
                    stack.extend(direct.get(nxt, ()))
            self.successors[start] = seen

    def _compile_profile(self, rule: Rule) -> _Check:
        skipped = tuple(self.profile_rules)

        def check(ctx: _Ctx) -> None:
            if ctx.profile is None:
                ctx.out.append(
                    Finding(
                        ctx.unit.id,
                        rule.kind,
                        rule.id,
                        rule.severity,
                        (),
                        "The unit names no jurisdiction profile (us, eu, cn), so the rules that depend "
                        f"on it were not checked: {', '.join(skipped)}.",
                        "a profile",
                        "none",
                    )
                )

        return check

    def _compile_done(self, rule: Rule, step: StepDef) -> _Check:
        sid = step.id
        successors = tuple(sorted(self.successors.get(sid, ())))
        cond = _compile_condition(rule.when)
        title = step.title

        def check(ctx: _Ctx) -> None:
            if sid in ctx.by_step:
                return
            if cond is not None and not cond(ctx, ()):
                return
            if ctx.complete:
                later = [s for s in successors if s in ctx.by_step]
                why = (
                    f" although {', '.join(later)} {'was' if len(later) == 1 else 'were'} recorded"
                    if later
                    else ""
                )
                message = f"{title} ({sid}) was never recorded for this finished unit{why}."
            else:
                later = [s for s in successors if s in ctx.by_step]
                if not later:
                    return
                message = f"{title} ({sid}) was not recorded, but {', '.join(later)}, which must come after it, {'was' if len(later) == 1 else 'were'}."
            ctx.out.append(
                Finding(
                    ctx.unit.id,
                    rule.kind,
                    rule.id,
                    rule.severity,
                    (sid,),
                    message,
                    "recorded",
                    "not recorded",
                )
            )

        return check

    def _compile_step_checks(self, step: StepDef, rules: Mapping[str, Rule]) -> _Check:
        sid = step.id
        title = step.title
        role_rule = rules.get("role")
        witness_rule = rules.get("witness")
        record_rule = rules["record"]
        roles = frozenset(step.roles)
        roles_text = ", ".join(step.roles)
        witness_required = step.witness_required
        witness_roles = frozenset(step.witness_roles)
        witness_roles_text = ", ".join(step.witness_roles)
        fields = dict(step.fields)
        validators = {name: _validator(fdef) for name, fdef in fields.items()}
        required = tuple(name for name, fdef in fields.items() if fdef.required)
        repeats = step.repeats
        unit_id_of = _unit_id

        def check(ctx: _Ctx) -> None:
            records = ctx.by_step.get(sid)
            if not records:
                return
            out = ctx.out
            for index, rec in enumerate(records):
                who = rec.by
                if role_rule is not None and rec.by_role is not None and rec.by_role not in roles:
                    out.append(
                        Finding(
                            unit_id_of(ctx),
                            "role",
                            role_rule.id,
                            role_rule.severity,
                            (sid,),
                            f"{title} was performed by {who or 'an unnamed person'} as {rec.by_role}; only {roles_text} may perform it.",
                            roles_text,
                            rec.by_role,
                        )
                    )
                if witness_rule is not None:
                    problem = None
                    actual = None
                    if not rec.witness:
                        if witness_required:
                            problem = f"{title} was not co-signed by a witness; a second, different person ({witness_roles_text or 'any role'}) must co-sign it."
                            actual = "no witness"
                    elif who and rec.witness.strip().casefold() == who.strip().casefold():
                        problem = f"{title} was witnessed by the same person who performed it ({who}); the witness must be a different person."
                        actual = f"same person ({who})"
                    elif (
                        witness_roles
                        and rec.witness_role is not None
                        and rec.witness_role not in witness_roles
                    ):
                        problem = f"{title} was witnessed by {rec.witness} as {rec.witness_role}; only {witness_roles_text} may witness it."
                        actual = f"{rec.witness} as {rec.witness_role}"
                    if problem is not None:
                        limit = (
                            f"a different person ({witness_roles_text})"
                            if witness_roles_text
                            else "a different person"
                        )
                        out.append(
                            Finding(
                                unit_id_of(ctx),
                                "witness",
                                witness_rule.id,
                                witness_rule.severity,
                                (sid,),
                                problem,
                                limit,
                                actual,
                            )
                        )
                problems = []
                if not who or not str(who).strip():
                    problems.append("no performer recorded")
                if index > 0 and not repeats:
                    problems.append(f"recorded {index + 1} times but the step is done once")
                values = rec.fields
                for name in required:
                    value = values.get(name)
                    if value is None or value == "":
                        problems.append(f"required field {name} is missing")
                for name, value in values.items():
                    validate = validators.get(name)
                    if validate is None:
                        problems.append(f"{name} is not a field of this step")
                    elif value is not None and value != "":
                        wrong = validate(value)
                        if wrong:
                            problems.append(f"{name} {wrong}")
                now = ctx.now
                if now is not None and rec.at > now + CLOCK_TOLERANCE:
                    problems.append(
                        f"dated {format_duration(rec.at - now)} after the time of the check"
                    )
                if rec.recorded_at is not None and rec.recorded_at < rec.at - CLOCK_TOLERANCE:
                    problems.append(
                        f"entered {format_duration(rec.at - rec.recorded_at)} before it happened"
                    )
                if problems:
                    out.append(
                        Finding(
                            unit_id_of(ctx),
                            "record_integrity",
                            record_rule.id,
                            record_rule.severity,
                            (sid,),
                            f"{title} record is not complete or not valid: {'; '.join(problems)}.",
                            "a complete, valid record",
                            "; ".join(problems),
                        )
                    )

        return check


def _unit_id(ctx: _Ctx) -> str:
    return ctx.unit.id


# --------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    # type() rather than isinstance: bool is an int subclass and must not count (hot path).
    kind = type(value)
    return (kind is float and math.isfinite(value)) or kind is int


def _validator(fdef: FieldDef) -> Callable[[Any], str | None]:
    """A function returning what is wrong with a value of this field, or None."""
    ftype = fdef.type
    if ftype in ("number", "temperature"):
        rng = fdef.range
        unit = fdef.unit

        def number(value: Any) -> str | None:
            if not _is_number(value):
                return f"must be a number in {unit}, got {value!r}"
            if rng is not None and not (rng[0] <= value <= rng[1]):
                return f"{format_quantity(value, unit)} is outside the possible range {format_number(rng[0])}–{format_quantity(rng[1], unit)}"
            return None

        return number
    if ftype == "choice":
        choices = frozenset(fdef.choices)
        text = ", ".join(fdef.choices)

        def choice(value: Any) -> str | None:
            return (
                None
                if isinstance(value, str) and value in choices
                else f"{value!r} is not one of {text}"
            )

        return choice
    if ftype == "yes_no":
        return lambda value: (
            None if isinstance(value, bool) else f"must be yes or no (true/false), got {value!r}"
        )
    if ftype == "datetime":

        def moment(value: Any) -> str | None:
            if isinstance(value, datetime):
                return None if value.tzinfo is not None else "has no UTC offset"
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    return f"{value!r} is not an ISO date-time"
                return None if parsed.tzinfo is not None else f"{value!r} has no UTC offset"
            return f"must be a date-time, got {value!r}"

        return moment
    return lambda value: None if isinstance(value, str) else f"must be text, got {value!r}"


def _value_of(ctx: _Ctx, ref: FieldRef, context: tuple[StepFacts, ...]) -> Any:
    if ref.step is None:
        unit = ctx.unit
        if ref.name in UNIT_FIELDS:
            return ctx.profile if ref.name == "profile" else getattr(unit, ref.name)
        return unit.attributes.get(ref.name)
    for rec in context:
        if rec.step == ref.step:
            return rec.fields.get(ref.name)
    records = ctx.by_step.get(ref.step)
    if not records:
        return None
    # Another step's field: the latest record of it counts (e.g. a re-done check).
    return records[-1].fields.get(ref.name)


def _same(a: Any, b: Any) -> bool:
    # true == 1 in Python; in a checklist a yes/no is never a number.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return a == b


def _compile_condition(when: Condition | None) -> _Cond | None:
    if when is None:
        return None
    return _compile_tests(when.field_tests)


def _compile_tests(field_tests: Sequence[Test]) -> _Cond | None:
    if not field_tests:
        return None
    tests = []
    for test in field_tests:
        ref, op, expected = test.ref, test.op, test.value
        assert ref is not None
        if op == "equals":
            tests.append((ref, lambda v, e=expected: v is not None and _same(v, e)))
        elif op == "one_of":
            tests.append((ref, lambda v, e=expected: v is not None and any(_same(v, x) for x in e)))
        elif op == "at_least":
            tests.append((ref, lambda v, e=expected: _is_number(v) and v >= e))
        elif op == "at_most":
            tests.append((ref, lambda v, e=expected: _is_number(v) and v <= e))
        else:  # present
            tests.append((ref, lambda v, e=expected: (v is not None and v != "") == e))

    def cond(ctx: _Ctx, context: tuple[StepFacts, ...]) -> bool:
        return all(ok(_value_of(ctx, ref, context)) for ref, ok in tests)

    return cond


def _show(value: Any, unit: str | None = None) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if _is_number(value):
        return format_quantity(float(value), unit)
    return str(value)


def _title(checklist: Checklist, step: str) -> str:
    return checklist.steps[step].title


# --------------------------------------------------------------------------- order


def _compile_order(rule: Rule, spec: OrderSpec, cl: Checklist) -> _Check:
    """Each record of a step must follow its turn of the earlier step.

    Repeating steps go in turn (bags): the 2nd infusion start follows the 2nd thaw end
    (or the last one, if the earlier step was done fewer times). A step done once
    follows every record of the earlier step: disposal after the last infusion end.
    """
    seq = spec.steps
    titles = {s: _title(cl, s) for s in seq}
    repeats = {s: cl.steps[s].repeats for s in seq}

    def check(ctx: _Ctx) -> None:
        by_step = ctx.by_step
        for j in range(1, len(seq)):
            later = seq[j]
            records = by_step.get(later)
            if not records:
                continue
            # Compare with the nearest earlier step that was recorded at all; steps never
            # recorded are reported once, as missing (and here only if none was recorded).
            pred = next((seq[i] for i in range(j - 1, -1, -1) if seq[i] in by_step), None)
            for k, rec in enumerate(records):
                if pred is None:
                    names = ", ".join(seq[:j])
                    ctx.out.append(
                        Finding(
                            ctx.unit.id,
                            rule.kind,
                            rule.id,
                            rule.severity,
                            (*seq[:j], later),
                            f"{titles[later]} ({later}) was recorded with no {names} recorded before it. {rule.says}",
                            f"{' before '.join(seq[: j + 1])}",
                            f"no {names} before {later}",
                        )
                    )
                    continue
                earlier = by_step[pred]
                target = earlier[min(k, len(earlier) - 1)] if repeats[later] else earlier[-1]
                if target.at <= rec.at:
                    continue
                gap = format_duration(target.at - rec.at)
                ctx.out.append(
                    Finding(
                        ctx.unit.id,
                        rule.kind,
                        rule.id,
                        rule.severity,
                        (pred, later),
                        f"{titles[later]} ({later}) was recorded {gap} before {titles[pred]} ({pred}). {rule.says}",
                        f"{pred} before {later}",
                        f"{pred} {gap} after {later}",
                    )
                )

    return check


# --------------------------------------------------------------------------- windows


def _emit(
    ctx: _Ctx,
    rule: Rule,
    steps: tuple[str, ...],
    message: str,
    limit: str | None,
    actual: str | None,
) -> None:
    """Add one finding of `rule` for the unit being judged."""
    ctx.out.append(
        Finding(ctx.unit.id, rule.kind, rule.id, rule.severity, steps, message, limit, actual)
    )


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
    spec: WindowSpec, starts: list[StepFacts], ends: list[StepFacts]
) -> tuple[list[tuple[StepFacts, StepFacts]], list[StepFacts]]:
    """(from, to) pairs measured, and `from` records still waiting for their `to`."""
    pairs: list[tuple[StepFacts, StepFacts]] = []
    open_: list[StepFacts] = []
    if not starts:
        return pairs, open_
    if spec.pair == "last_start":
        for end in ends:
            start = None
            for candidate in starts:
                if candidate.at <= end.at:
                    start = candidate
                else:
                    break
            if start is not None:
                pairs.append((start, end))
        last = starts[-1]
        if not any(e.at >= last.at for e in ends):
            open_.append(last)
    elif spec.pair == "in_turn":
        waiting: list[StepFacts] = []
        pending = list(starts)
        for end in ends:
            while pending and pending[0].at <= end.at:
                waiting.append(pending.pop(0))
            if waiting:
                pairs.append((waiting.pop(0), end))
        open_.extend(waiting + pending)
    elif spec.pair == "first_end":
        for start in starts:
            end = next((e for e in ends if e.at >= start.at), None)
            if end is None:
                open_.append(start)
            else:
                pairs.append((start, end))
    else:  # first_start
        first = starts[0]
        later = [e for e in ends if e.at >= first.at]
        pairs.extend((first, e) for e in later)
        if not later:
            open_.append(first)
    return pairs, open_


def _periods(spec: EverySpec, anchor: datetime) -> Iterator[tuple[int, datetime, datetime]]:
    """(number from 1, start, end) of each period after the anchor; the last may be shorter."""
    finish = anchor + spec.span
    for k in range(spec.periods):
        begin = anchor + k * spec.interval
        yield k + 1, begin, min(begin + spec.interval, finish)


def _compile_every(rule: Rule, spec: EverySpec, conds: _WindowConds, cl: Checklist) -> _Check:
    start_title, end_title = _title(cl, spec.start), _title(cl, spec.end)
    steps = (spec.start, spec.end)
    limit = spec.limit_text
    interval = format_duration(spec.interval)
    daily = spec.interval == timedelta(days=1)  # "day 4" reads better than "72h–96h"

    def check(ctx: _Ctx) -> None:
        chosen = _window_records(ctx, spec, conds)
        if chosen is None or not chosen[0]:
            return
        starts, ends = chosen
        # Measured from the last `from` record: monitoring follows the last bag.
        anchor = starts[-1].at
        # Only periods that are over are judged: as at `now`, or in full for a finished
        # unit, or otherwise up to the unit's latest record (an audit of a file).
        if ctx.now is not None:
            horizon = ctx.now
        elif ctx.complete:
            horizon = anchor + spec.span
        else:
            horizon = max(r.at for r in ctx.records)
        missed = [
            number
            if daily
            else f"{format_duration(begin - anchor)}–{format_duration(end - anchor)}"
            for number, begin, end in _periods(spec, anchor)
            if end <= horizon and not any(begin <= r.at < end for r in ends)
        ]
        if not missed:
            return
        if daily:
            where = f"day{'s' if len(missed) > 1 else ''} {', '.join(map(str, missed))}"
            placed = f"on {where}"
        else:
            where = ", ".join(missed)
            placed = f"in the period{'s' if len(missed) > 1 else ''} {where}"
        message = (
            f"No {end_title} ({spec.end}) was recorded {placed} after {start_title} "
            f"({spec.start}); one is needed every {interval} for {format_duration(spec.span)}. "
            f"{rule.says}"
        )
        _emit(ctx, rule, steps, message, limit, f"none {placed}")

    return check


def _compile_window(rule: Rule, spec: WindowSpec, conds: _WindowConds, cl: Checklist) -> _Check:
    start_id, end_id = spec.start, spec.end
    low, high = spec.min, spec.max
    limit = spec.limit_text
    start_title, end_title = _title(cl, start_id), _title(cl, end_id)
    steps = (start_id, end_id)
    require_from = spec.require_from
    simple = conds == (None, None, None)

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
        if require_from:
            for end in ends:
                if not starts or starts[0].at > end.at:
                    message = f"{end_title} ({end_id}) was recorded with no {start_title} ({start_id}) before it. {rule.says}"
                    _emit(ctx, rule, steps, message, limit, f"no {start_id} before")
        if not starts:
            return
        pairs, open_ = _window_pairs(spec, starts, ends)
        for start, end in pairs:
            took = end.at - start.at
            if high is not None and took > high:
                message = f"{end_title} ({end_id}) came {format_duration(took)} after {start_title} ({start_id}); the limit is {format_duration(high)}. {rule.says}"
            elif low is not None and took < low:
                message = f"{end_title} ({end_id}) came only {format_duration(took)} after {start_title} ({start_id}); it must be at least {format_duration(low)}. {rule.says}"
            else:
                continue
            _emit(ctx, rule, steps, message, limit, format_duration(took))
        for start in open_:
            now = ctx.now
            if now is not None and high is not None and now - start.at > high:
                waited = format_duration(now - start.at)
                message = f"{end_title} ({end_id}) is not recorded {waited} after {start_title} ({start_id}); the limit is {format_duration(high)}. {rule.says}"
                _emit(ctx, rule, steps, message, limit, f"not done after {waited}")
            elif ctx.complete and ends:
                # The step was done for other records but never after this one, e.g. a
                # second bag thawed and never infused. Never done at all is "missing".
                message = f"{start_title} ({start_id}) was never followed by {end_title} ({end_id}) in this finished unit. {rule.says}"
                _emit(ctx, rule, steps, message, limit, "never done")

    return check


# --------------------------------------------------------------------------- field limits


def _compile_field(rule: Rule, spec: FieldSpec, cond: _Cond | None, cl: Checklist) -> _Check:
    ref = spec.ref
    name = ref.name
    unit = spec.unit
    low, high = spec.min, spec.max
    one_of, not_one_of = spec.one_of, spec.not_one_of
    must_be, has_must_be = spec.must_be, spec.has_must_be
    compare, other = spec.compare, spec.other
    limit = spec.limit_text
    step_id = ref.step
    optional = step_id is not None and not cl.steps[step_id].fields[name].required
    label = cl.steps[step_id].fields[name].label if step_id is not None else name.replace("_", " ")
    where = (
        f"{_title(cl, step_id)}: {label} ({ref.text})"
        if step_id is not None
        else f"The unit's {label} ({ref.text})"
    )
    steps = (step_id,) if step_id is not None else ()
    if other is not None and other.step is not None and other.step != step_id:
        steps = (*steps, other.step)

    def judge(ctx: _Ctx, value: Any, context: tuple[StepFacts, ...]) -> tuple[str, str] | None:
        """(message, actual) if the value breaks the rule."""
        shown = _show(value, unit)
        if low is not None or high is not None:
            if _is_number(value):
                if low is not None and value < low:
                    return (
                        f"{where} was {shown}, below the minimum of {format_quantity(low, unit)}.",
                        shown,
                    )
                if high is not None and value > high:
                    return (
                        f"{where} was {shown}, above the maximum of {format_quantity(high, unit)}.",
                        shown,
                    )
        if one_of is not None and not any(_same(value, x) for x in one_of):
            return f"{where} was {shown}; allowed: {', '.join(_show(x) for x in one_of)}.", shown
        if not_one_of is not None and any(_same(value, x) for x in not_one_of):
            return f"{where} was {shown}, which is not allowed.", shown
        if has_must_be and not _same(value, must_be):
            return f"{where} was {shown}; it must be {_show(must_be)}.", shown
        if compare is not None and other is not None:
            other_value = _value_of(ctx, other, context)
            if other_value is None:
                return None
            if compare == "equals":
                if str(value).strip() != str(other_value).strip():
                    return (
                        f"{where} is {value!r} but {other.text} is {other_value!r}; they must be the same.",
                        f"{value} ≠ {other_value}",
                    )
            elif _is_number(value) and _is_number(other_value):
                if compare == "at_most" and value > other_value:
                    return (
                        f"{where} was {shown}, more than {other.text} ({_show(other_value, unit)}).",
                        shown,
                    )
                if compare == "at_least" and value < other_value:
                    return (
                        f"{where} was {shown}, less than {other.text} ({_show(other_value, unit)}).",
                        shown,
                    )
        return None

    def check(ctx: _Ctx) -> None:
        if step_id is None:
            if cond is not None and not cond(ctx, ()):
                return
            value = _value_of(ctx, ref, ())
            if value is None or value == "":
                if name == "profile":
                    return  # a unit with no profile is the checklist's own `.profile` finding
                # A unit attribute the rule needs was never given at registration (e.g.
                # which product an institutional checklist is used for): not a pass.
                _emit(
                    ctx,
                    rule,
                    steps,
                    f"{where} was not recorded, so the rule cannot be shown to hold. {rule.says}",
                    limit,
                    "not recorded",
                )
                return
            broken = judge(ctx, value, ())
            if broken:
                _emit(ctx, rule, steps, f"{broken[0]} {rule.says}", limit, broken[1])
            return
        records = ctx.by_step.get(step_id)
        if not records:
            return
        for rec in records:
            context = (rec,)
            if cond is not None and not cond(ctx, context):
                continue
            value = rec.fields.get(name)
            if value is None or value == "":
                # A required field's absence is the record rule's finding; an optional
                # field this rule needs (e.g. the EU second tocilizumab dose) is this one's.
                if optional:
                    _emit(
                        ctx,
                        rule,
                        steps,
                        f"{where} was not recorded, so the rule cannot be shown to hold. {rule.says}",
                        limit,
                        "not recorded",
                    )
                continue
            broken = judge(ctx, value, context)
            if broken:
                _emit(ctx, rule, steps, f"{broken[0]} {rule.says}", limit, broken[1])

    return check


# --------------------------------------------------------------------------- storage


def _compile_storage(rule: Rule, spec: StorageSpec, cond: _Cond | None, cl: Checklist) -> _Check:
    low, high = spec.min, spec.max
    up_to, tolerate_for, mkt_max = spec.tolerate_up_to, spec.tolerate_for, spec.mkt_max
    tolerant = up_to is not None and tolerate_for is not None and mkt_max is not None
    limit = spec.limit_text
    if tolerant:
        limit += f" (above {format_number(high or 0)} °C tolerated up to {format_number(up_to)} °C for ≤ {format_duration(tolerate_for)} if MKT ≤ {format_number(mkt_max)} °C)"
    steps = ("storage_in", "storage_out")

    def check(ctx: _Ctx) -> None:
        if ctx.readings is None:
            return
        ins = ctx.by_step.get("storage_in")
        if not ins:
            return
        outs = ctx.by_step.get("storage_out") or []
        for rec in ins:
            if cond is not None and not cond(ctx, (rec,)):
                continue
            equipment = rec.fields.get("equipment")
            if not isinstance(equipment, str):
                continue
            series = ctx.readings.series(equipment)
            if series is None:
                continue
            start = rec.at
            end = next((o.at for o in outs if o.at >= start), None)
            if end is None:
                # Still in storage as far as the records say: up to `now`, else up to the
                # unit's last record (an audit without `now` cannot know more).
                end = ctx.now if ctx.now is not None else max(start, ctx.records[-1].at)
            times, temps = series
            # The reading in effect when the unit went in counts, then every reading until out.
            i0 = max(bisect_right(times, start) - 1, 0)
            i1 = bisect_right(times, end)
            if i0 >= i1 or times[i0] > end:
                continue
            period_temps = temps[i0:i1]
            warmest = max(period_temps)
            coldest = min(period_temps)
            if (high is None or warmest <= high) and (low is None or coldest >= low):
                continue  # the usual case: nothing to weigh
            held = []
            for i in range(i0, i1):
                begin = max(times[i], start)
                stop = min(times[i + 1], end) if i + 1 < len(times) else end
                held.append(max(stop - begin, timedelta(0)))
            stored_for = end - start
            reasons = []
            too_cold = [t for t in period_temps if low is not None and t < low]
            too_warm_time = sum(
                (
                    h
                    for t, h in zip(period_temps, held, strict=True)
                    if high is not None and t > high
                ),
                timedelta(0),
            )
            if too_cold:
                reasons.append(
                    f"read as low as {format_quantity(coldest, '°C')}, below {format_quantity(low, '°C')}"
                )
            if high is not None and warmest > high:
                if not tolerant:
                    reasons.append(
                        f"read up to {format_quantity(warmest, '°C')}, above {format_quantity(high, '°C')}, for {format_duration(too_warm_time)}"
                    )
                else:
                    if warmest > up_to:
                        reasons.append(
                            f"read up to {format_quantity(warmest, '°C')}, above the tolerated {format_quantity(up_to, '°C')}"
                        )
                    if too_warm_time > tolerate_for:
                        reasons.append(
                            f"spent {format_duration(too_warm_time)} above {format_quantity(high, '°C')}, more than the tolerated {format_duration(tolerate_for)}"
                        )
                    weights = [h.total_seconds() for h in held]
                    mkt = mean_kinetic_temperature(period_temps, weights)
                    if mkt > mkt_max + 1e-9:
                        reasons.append(
                            f"had a mean kinetic temperature of {format_number(round(mkt, 2))} °C, above {format_quantity(mkt_max, '°C')}"
                        )
            if not reasons:
                continue
            actual_parts = [f"max {format_quantity(warmest, '°C')}"] if high is not None else []
            if low is not None:
                actual_parts.append(f"min {format_quantity(coldest, '°C')}")
            message = (
                f"While the unit was stored in {equipment} ({format_duration(stored_for)}), the equipment "
                + "; ".join(reasons)
                + f". {rule.says}"
            )
            _emit(ctx, rule, steps, message, limit, ", ".join(actual_parts))

    return check


# --------------------------------------------------------------------------- entry points

_PLANS: dict[tuple[str, str | None], _Plan] = {}


def _plan(checklist: Checklist, profile: str | None) -> _Plan:
    key = (checklist.digest, profile)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 512:  # many site overrides over a long-running process
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(checklist, profile)
    return plan


def effective_records(steps: Iterable[StepFacts]) -> list[StepFacts]:
    """The records that count: each corrected record is replaced by its latest correction.

    A record corrected twice has two corrections pointing at it (a correction of a
    correction targets the same original); the later one, by entry time and then by record
    number, is what counts, whatever order the records are given in.
    """
    steps = list(steps)
    latest: dict[str, StepFacts] = {}
    for step in steps:
        if step.corrects is None:
            continue
        kept = latest.get(step.corrects)
        if kept is None or _entry_order(step) > _entry_order(kept):
            latest[step.corrects] = step
    if not latest:
        return steps
    originals = [s for s in steps if s.corrects is None]
    present = {s.record_id for s in originals}
    # A correction whose original is not in the input still counts (a partial extract).
    orphans = [c for target, c in latest.items() if target not in present]
    return [
        latest.get(s.record_id, s) if s.record_id is not None else s for s in originals
    ] + orphans


def _entry_order(step: StepFacts) -> tuple:
    # Record ids end in their number within the unit ("U-1#12"): compare it as a number.
    number = (step.record_id or "").rpartition("#")[2]
    return (
        step.recorded_at or datetime.min.replace(tzinfo=UTC),
        int(number) if number.isdigit() else -1,
        step.record_id or "",
    )


def _sort_key(rec: StepFacts) -> tuple:
    return (rec.at, rec.step, rec.record_id or "", rec.by or "", rec.witness or "")


def _index(
    plan: _Plan, unit: UnitFacts, steps: Sequence[StepFacts]
) -> tuple[list[StepFacts], dict[str, list[StepFacts]]]:
    records = effective_records(steps)
    known = plan.step_ids
    unit_id = unit.id
    for rec in records:
        if rec.unit != unit_id or rec.step not in known or rec.at.tzinfo is None:
            if rec.unit != unit_id:
                raise ValueError(
                    f"record of step {rec.step!r} belongs to unit {rec.unit!r}, not {unit_id!r}"
                )
            if rec.step not in known:
                raise ValueError(
                    f"step {rec.step!r} is not part of checklist {plan.checklist.id!r} version {plan.checklist.version}"
                )
            raise ValueError(f"record of step {rec.step!r} has a time without a UTC offset")
    records.sort(key=_sort_key)
    by_step: dict[str, list[StepFacts]] = {}
    previous = None
    tie = False
    for rec in records:
        if previous is not None and previous.at == rec.at and previous.step == rec.step:
            tie = tie or _sort_key(previous) == _sort_key(rec)
        previous = rec
        bucket = by_step.get(rec.step)
        if bucket is None:
            by_step[rec.step] = [rec]
        else:
            bucket.append(rec)
    if tie:
        # Input order must never change a finding: break the rare remaining ties by content.
        records.sort(
            key=lambda r: (_sort_key(r), json.dumps(dict(r.fields), sort_keys=True, default=str))
        )
        by_step = {}
        for rec in records:
            by_step.setdefault(rec.step, []).append(rec)
    return records, by_step


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
    records, by_step = _index(plan, unit, steps)
    done = unit.status == "complete" if complete is None else complete
    ctx = _Ctx(unit, by_step, records, _reading_index(readings), now, done, name)
    for check in plan.checks:
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
