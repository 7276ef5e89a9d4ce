"""Field rules: a recorded value (or a unit attribute) against its limit or another field."""

from __future__ import annotations

from typing import Any

from qms.checklists.engine.context import (
    _Check,
    _Cond,
    _Ctx,
    _emit,
    _is_number,
    _same,
    _show,
    _title,
    _value_of,
)
from qms.checklists.facts import StepFacts
from qms.checklists.language import Checklist, FieldSpec, Rule
from qms.checklists.quantities import format_quantity


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
