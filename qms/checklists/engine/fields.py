"""Field rules: a recorded value (or a unit attribute) against its limit or another field."""

from __future__ import annotations

from typing import Any

from qms.checklists.engine.context import (
    _Check,
    _Cond,
    _Ctx,
    _emit,
    _is_number,
    _jsonable,
    _same,
    _show,
    _value_of,
)
from qms.checklists.facts import StepFacts
from qms.checklists.language import Checklist, FieldSpec, Rule


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
    field = ref.text
    base = {"rule": rule.id, "field": field}
    steps = (step_id,) if step_id is not None else ()
    if other is not None and other.step is not None and other.step != step_id:
        steps = (*steps, other.step)
    allowed = [_jsonable(x) for x in one_of] if one_of is not None else None
    # A list of words (the usual one_of) is tested as a set; numbers and yes/no keep
    # `_same` (1 == 1.0, but a yes/no is never a number).
    plain_one_of = (
        frozenset(one_of) if one_of is not None and all(type(x) is str for x in one_of) else None
    )
    bounds = {"unit": unit, "min": low, "max": high}

    def compared(value: Any, other_value: Any, *, with_unit: bool = False) -> dict[str, Any]:
        assert other is not None
        out: dict[str, Any] = {
            "value": _jsonable(value),
            "other": other.text,
            "other_value": _jsonable(other_value),
        }
        if with_unit:
            out["unit"] = unit
        return out

    def judge(
        ctx: _Ctx, value: Any, context: tuple[StepFacts, ...]
    ) -> tuple[str, dict[str, Any], str] | None:
        """(code, params, actual) if the value breaks the rule."""
        if low is not None or high is not None:
            if _is_number(value):
                if low is not None and value < low:
                    params = {**bounds, "value": value, "bound": "min"}
                    return "field.out_of_range", params, _show(value, unit)
                if high is not None and value > high:
                    params = {**bounds, "value": value, "bound": "max"}
                    return "field.out_of_range", params, _show(value, unit)
        if one_of is not None and not (
            (type(value) is str and value in plain_one_of)
            if plain_one_of is not None
            else any(_same(value, x) for x in one_of)
        ):
            params = {"value": _jsonable(value), "unit": unit, "allowed": allowed}
            return "field.not_one_of", params, _show(value, unit)
        if not_one_of is not None and any(_same(value, x) for x in not_one_of):
            params = {"value": _jsonable(value), "unit": unit}
            return "field.not_allowed", params, _show(value, unit)
        if has_must_be and not _same(value, must_be):
            params = {"value": _jsonable(value), "unit": unit, "expected": _jsonable(must_be)}
            return "field.must_be", params, _show(value, unit)
        if compare is not None and other is not None:
            other_value = _value_of(ctx, other, context)
            if other_value is None:
                return None
            if compare == "equals":
                if str(value).strip() != str(other_value).strip():
                    return (
                        "field.mismatch",
                        compared(value, other_value),
                        f"{value} ≠ {other_value}",
                    )
            elif _is_number(value) and _is_number(other_value):
                if compare == "at_most" and value > other_value:
                    return (
                        "field.above_other",
                        compared(value, other_value, with_unit=True),
                        _show(value, unit),
                    )
                if compare == "at_least" and value < other_value:
                    return (
                        "field.below_other",
                        compared(value, other_value, with_unit=True),
                        _show(value, unit),
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
                code = "field.not_recorded"
                _emit(ctx, cl, rule, steps, code, dict(base), limit, "not recorded")
                return
            broken = judge(ctx, value, ())
            if broken:
                code, params, actual = broken
                _emit(ctx, cl, rule, steps, code, {**base, **params}, limit, actual)
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
                    code = "field.not_recorded"
                    _emit(ctx, cl, rule, steps, code, dict(base), limit, "not recorded", context)
                continue
            broken = judge(ctx, value, context)
            if broken:
                code, params, actual = broken
                _emit(ctx, cl, rule, steps, code, {**base, **params}, limit, actual, context)

    return check
