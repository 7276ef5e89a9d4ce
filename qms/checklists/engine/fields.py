"""Field rules: a recorded value (or a unit attribute) against its limit or another field."""

from __future__ import annotations

from typing import Any, NamedTuple

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
    quick_range, quick_words, quick_must, quick_not_words, plain_one_of, plain_not_one_of = (
        _quick_flags(spec, cond)
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
            if quick_range:
                # The usual case, decided here: a number within the bounds breaks nothing.
                value = rec.fields.get(name)
                kind = type(value)
                if (kind is int or kind is float) and not (
                    (low is not None and value < low) or (high is not None and value > high)
                ):
                    continue
            elif quick_words:
                value = rec.fields.get(name)
                if type(value) is str and value in plain_one_of:
                    continue
            elif quick_must:
                value = rec.fields.get(name)
                if value is must_be or (type(value) is str and value == must_be):
                    continue
            elif quick_not_words:
                value = rec.fields.get(name)
                if type(value) is str and value != "" and value not in plain_not_one_of:
                    continue
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


class _Quick(NamedTuple):
    """Which test a value of each record passes for the rule to find nothing (see
    `_compile_field`'s record loop), with what it needs."""

    range: bool
    words: bool
    must: bool
    not_words: bool
    plain_one_of: frozenset[str] | None
    plain_not_one_of: frozenset[str] | None


def _quick_flags(spec: FieldSpec, cond: _Cond | None) -> _Quick:
    low, high = spec.min, spec.max
    one_of, not_one_of = spec.one_of, spec.not_one_of
    must_be, has_must_be = spec.must_be, spec.has_must_be
    compare = spec.compare
    # A list of words (the usual one_of) is tested as a set; numbers and yes/no keep
    # `_same` (1 == 1.0, but a yes/no is never a number).
    plain_one_of = (
        frozenset(one_of) if one_of is not None and all(type(x) is str for x in one_of) else None
    )
    # Rules with a single test and no condition: a value that passes it is passed in the
    # record loop without calling `judge`.
    single = not_one_of is None and not has_must_be and compare is None and cond is None
    quick_range = single and one_of is None and (low is not None or high is not None)
    quick_words = (
        single
        and plain_one_of is not None
        and "" not in plain_one_of  # an empty value is "not recorded", not a word
        and low is None
        and high is None
    )
    # must_be alone, a yes/no or a word: the value itself (a yes/no is never a number).
    quick_must = (
        has_must_be
        and type(must_be) in (bool, str)
        and must_be != ""
        and one_of is None
        and not_one_of is None
        and compare is None
        and cond is None
        and low is None
        and high is None
    )
    plain_not_one_of = (
        frozenset(not_one_of)
        if not_one_of is not None and all(type(x) is str for x in not_one_of)
        else None
    )
    quick_not_words = (
        plain_not_one_of is not None
        and one_of is None
        and not has_must_be
        and compare is None
        and cond is None
        and low is None
        and high is None
    )

    return _Quick(
        quick_range, quick_words, quick_must, quick_not_words, plain_one_of, plain_not_one_of
    )


def _quick_pass(spec: FieldSpec, cond: _Cond | None) -> tuple[str, str, dict[str, Any]] | None:
    """The record loop's quick test of a rule on a step's field, as source for a generated
    function (steps.py, `_compile_clean`): (field, expression on `value`, the names it
    reads). A record passing it is one the rule finds nothing in; None when the rule has
    no quick test (a condition, another field, several tests)."""
    if spec.ref.step is None:
        return None
    quick = _quick_flags(spec, cond)
    low, high = spec.min, spec.max
    if quick.range:
        tests = ["(type(value) is int or type(value) is float)"]
        names: dict[str, Any] = {}
        # `not value < low`, as the loop has it: a NaN passes there too.
        if low is not None:
            tests.append("not value < {LOW}")
            names["LOW"] = low
        if high is not None:
            tests.append("not value > {HIGH}")
            names["HIGH"] = high
        return spec.ref.name, " and ".join(tests), names
    if quick.words:
        return (
            spec.ref.name,
            "type(value) is str and value in {WORDS}",
            {"WORDS": quick.plain_one_of},
        )
    if quick.must:
        return (
            spec.ref.name,
            "value is {MUST} or (type(value) is str and value == {MUST})",
            {"MUST": spec.must_be},
        )
    if quick.not_words:
        return (
            spec.ref.name,
            "type(value) is str and value != '' and value not in {NOT_WORDS}",
            {"NOT_WORDS": quick.plain_not_one_of},
        )
    return None
