"""The checks every step implies (done, role, witness, record integrity) and the profile check."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from qms.checklists.engine.context import (
    _Check,
    _compile_condition,
    _Ctx,
    _emit,
    _is_number,
    _jsonable,
)
from qms.checklists.engine.messages import render_parts
from qms.checklists.language import Checklist, FieldDef, Rule, StepDef
from qms.checklists.quantities import format_duration
from qms.core.clock import CLOCK_SKEW

# Clocks on ward devices drift: the tolerance the record service accepts at entry.
CLOCK_TOLERANCE = CLOCK_SKEW


def _compile_profile(rule: Rule, skipped: tuple[str, ...], cl: Checklist) -> _Check:
    """The `<checklist>.profile` rule: a unit with no profile leaves some rules unchecked."""
    params = {"rules": list(skipped)}

    def check(ctx: _Ctx) -> None:
        if ctx.profile is None:
            _emit(ctx, cl, rule, (), "profile.missing", dict(params), "a profile", "none")

    return check


def _compile_done(rule: Rule, step: StepDef, successors: tuple[str, ...], cl: Checklist) -> _Check:
    """A required step never recorded: missing once the unit is finished or a later step is."""
    sid = step.id
    cond = _compile_condition(rule.when)

    def check(ctx: _Ctx) -> None:
        if sid in ctx.by_step:
            return
        if cond is not None and not cond(ctx, ()):
            return
        later = [s for s in successors if s in ctx.by_step]
        if ctx.complete:
            code = "missing_step.required"
        elif later:
            code = "missing_step.later_recorded"
        else:
            return
        params = {"step": sid, "later": later}
        _emit(ctx, cl, rule, (sid,), code, params, "recorded", "not recorded")

    return check


def _compile_step_checks(step: StepDef, rules: Mapping[str, Rule], cl: Checklist) -> _Check:
    """Who performed and witnessed each record of a step, and whether it is complete."""
    sid = step.id
    role_rule = rules.get("role")
    witness_rule = rules.get("witness")
    record_rule = rules["record"]
    roles = frozenset(step.roles)
    roles_text = ", ".join(step.roles)
    witness_required = step.witness_required
    witness_roles = frozenset(step.witness_roles)
    witness_roles_text = ", ".join(step.witness_roles)
    witness_limit = (
        f"a different person ({witness_roles_text})" if witness_roles_text else "a different person"
    )
    fields = dict(step.fields)
    fast, validators = _field_tables(step)
    required = tuple(name for name, fdef in fields.items() if fdef.required)
    required_set = frozenset(required)
    field_count = len(fields)
    repeats = step.repeats
    steps = (sid,)

    check_roles = role_rule is not None
    check_witness = witness_rule is not None

    # evaluate() calls this only when a record of the step fails its quick test (the
    # generated `_compile_clean`, planning.py `_Runs`): this loop says what is wrong.
    def check(ctx: _Ctx) -> None:
        records = ctx.by_step.get(sid)
        if not records:
            return
        now = ctx.now
        for index, rec in enumerate(records):
            who = rec.by
            if check_roles:
                by_role = rec.by_role
                if by_role is not None and by_role not in roles:
                    params = {"step": sid, "by": who, "role": by_role, "allowed": list(step.roles)}
                    _emit(
                        ctx,
                        cl,
                        role_rule,
                        steps,
                        "role.not_allowed",
                        params,
                        roles_text,
                        by_role,
                        (rec,),
                    )
            if check_witness:
                witness = rec.witness
                code = None
                if not witness:
                    if witness_required:
                        code, actual = "witness.missing", "no witness"
                        params = {"step": sid, "roles": list(step.witness_roles)}
                elif who and witness.strip().casefold() == who.strip().casefold():
                    code, actual = "witness.same_person", f"same person ({who})"
                    params = {"step": sid, "by": who}
                elif (
                    witness_roles
                    and rec.witness_role is not None
                    and rec.witness_role not in witness_roles
                ):
                    code = "witness.role_not_allowed"
                    actual = f"{witness} as {rec.witness_role}"
                    params = {
                        "step": sid,
                        "witness": witness,
                        "role": rec.witness_role,
                        "allowed": list(step.witness_roles),
                    }
                if code is not None:
                    _emit(ctx, cl, witness_rule, steps, code, params, witness_limit, actual, (rec,))
            problems: list[dict[str, Any]] | None = None
            if not who or (who.isspace() if type(who) is str else not str(who).strip()):
                problems = [{"code": "record.no_performer"}]
            if index > 0 and not repeats:
                problems = problems or []
                problems.append({"code": "record.repeated", "count": index + 1})
            values = rec.fields
            blank: set[str] | None = None
            others: list[dict[str, Any]] | None = None
            for name, value in values.items():
                known = fast.get(name)
                if known is not None:
                    how, accepted = known
                    if how == 0:
                        if type(value) in accepted and value != "":
                            continue
                    elif how == 1:
                        if type(value) is str and value in accepted:
                            continue
                    else:
                        kind = type(value)
                        # value - value is 0.0 only for a finite decimal (not inf, not NaN)
                        if (kind is int or (kind is float and value - value == 0.0)) and (
                            accepted[0] <= value <= accepted[1]
                        ):
                            continue
                validate = validators.get(name)
                if validate is None:
                    others = others or []
                    others.append({"code": "record.unknown_field", "field": name})
                elif value is None or value == "":
                    blank = blank or set()
                    blank.add(name)
                else:
                    wrong = validate(value)
                    if wrong:
                        others = others or []
                        others.append(wrong)
            # Every field of the step there and valid (the usual case): none is missing.
            if blank is not None or (
                (others is not None or len(values) != field_count)
                and not values.keys() >= required_set
            ):
                for name in required:
                    if name not in values or (blank is not None and name in blank):
                        problems = problems or []
                        problems.append({"code": "record.field_missing", "field": name})
            if others is not None:
                problems = problems or []
                problems.extend(others)
            if now is not None and rec.at > now + CLOCK_TOLERANCE:
                ahead = format_duration(rec.at - now)
                problems = problems or []
                problems.append({"code": "record.dated_after_check", "ahead": ahead})
            recorded_at = rec.recorded_at
            if recorded_at is not None and recorded_at < rec.at - CLOCK_TOLERANCE:
                early = format_duration(rec.at - recorded_at)
                problems = problems or []
                problems.append({"code": "record.entered_before", "early": early})
            if problems:
                _emit(
                    ctx,
                    cl,
                    record_rule,
                    steps,
                    "record_integrity.incomplete",
                    {"step": sid, "problems": problems},
                    "a complete, valid record",
                    render_parts(problems),
                    (rec,),
                )

    return check


def _field_tables(
    step: StepDef,
) -> tuple[dict[str, tuple[int, Any]], dict[str, Callable[[Any], _Problem | None]]]:
    """(quick test, validator) of each field of a step, as the record check reads them."""
    fields = dict(step.fields)
    validators = {name: _validator(name, fdef) for name, fdef in fields.items()}
    # Values valid by their type alone (text, yes/no, a whole number without a range) or
    # by being one of the words: accepted without calling the validator (the hot path).
    quick: dict[str, frozenset[type]] = {}
    words: dict[str, frozenset[str]] = {}
    for name, fdef in fields.items():
        if fdef.type in ("number", "temperature"):
            if fdef.range is None:
                quick[name] = frozenset({int})
        elif fdef.type == "choice":
            words[name] = frozenset(fdef.choices)
        elif fdef.type == "yes_no":
            quick[name] = frozenset({bool})
        elif fdef.type != "datetime":
            quick[name] = frozenset({str})
    # One look-up per value: (0, accepted types) for a value valid by its type if not
    # empty, (1, the words) for a choice, (2, (min, max)) for a number (a whole number,
    # or a finite decimal, within the range if there is one).
    fast: dict[str, tuple[int, Any]] = {}
    for name, fdef in fields.items():
        if name in quick:
            fast[name] = (0, quick[name])
        elif name in words:
            fast[name] = (1, words[name])
        elif fdef.type in ("number", "temperature"):
            fast[name] = (2, fdef.range if fdef.range is not None else (-math.inf, math.inf))
    return fast, validators


_Problem = dict[str, Any]
_ABSENT = object()


def _compile_clean(
    step: StepDef,
    check_roles: bool,
    check_witness: bool,
    also: Sequence[tuple[str, str, Mapping[str, Any]]] = (),
) -> Callable[[Any, datetime | None], bool]:
    """A function telling whether one record of `step` breaks none of its step checks
    (`_compile_step_checks`): the same tests as that loop, written out for this step's
    fields (no table look-up, no loop over the values), and True only when the loop would
    find nothing. `latest` is the check's `now` plus the clock tolerance, or None.

    `also` adds quick tests of field rules on this step (fields.py, `_quick_pass`):
    (field, expression on `value`, the names it reads), each passed too for True.

    Generated source: the step's values (roles, words, ranges, validators) are names in
    the function's namespace, never text in its source; field names appear as literals
    through repr().
    """
    fast, validators = _field_tables(step)
    space: dict[str, Any] = {
        "ABSENT": _ABSENT,
        "TOLERANCE": CLOCK_TOLERANCE,
        "ROLES": frozenset(step.roles),
        "WITNESS_ROLES": frozenset(step.witness_roles),
    }
    lines = ["def clean(rec, latest):", "    who = rec.by"]
    if check_roles:
        lines += [
            "    role = rec.by_role",
            "    if role is not None and role not in ROLES:",
            "        return False",
        ]
    if check_witness:
        lines += ["    witness = rec.witness", "    if witness:"]
        lines += [
            "        if who and witness.strip().casefold() == who.strip().casefold():",
            "            return False",
        ]
        if step.witness_roles:
            lines += [
                "        role = rec.witness_role",
                "        if role is not None and role not in WITNESS_ROLES:",
                "            return False",
            ]
        if step.witness_required:
            lines += ["    else:", "        return False"]
    lines += [
        "    if not who or (who.isspace() if type(who) is str else not str(who).strip()):",
        "        return False",
        "    values = rec.fields",
    ]
    # Two ways through the values: every field there (the usual case: one look-up each),
    # or any other set of keys (`fields`: each field looked up, then any other key).
    general = ["def fields(values):", "    known = 0"]
    every = ["    if len(values) == COUNT:", "        try:"]
    space["COUNT"] = len(step.fields)
    for k, (name, fdef) in enumerate(step.fields.items()):
        space[f"VALID_{k}"] = validators[name]
        how, accepted = fast.get(name, (None, None))
        if how == 0:
            if len(accepted) == 1:
                (kind,) = accepted
                space[f"TYPE_{k}"] = kind
                passes = f"type(value) is TYPE_{k}"
            else:
                space[f"TYPES_{k}"] = accepted
                passes = f"type(value) in TYPES_{k}"
            if str in accepted:
                passes += " and value != ''"
        elif how == 1:
            space[f"WORDS_{k}"] = accepted
            passes = f"type(value) is str and value in WORDS_{k}"
        elif how == 2:
            space[f"LOW_{k}"], space[f"HIGH_{k}"] = accepted
            passes = (
                "(type(value) is int or (type(value) is float and value - value == 0.0))"
                f" and LOW_{k} <= value <= HIGH_{k}"
            )
        else:
            passes = "False"
        # As the loop: a value failing the quick test is blank (a problem if required) or
        # handed to the field's validator.
        blank = "return False" if fdef.required else "pass"
        test = [
            f"if not ({passes}):",
            "    if value is None or value == '':",
            f"        {blank}",
            f"    elif VALID_{k}(value) is not None:",
            "        return False",
        ]
        general += [f"    value = values.get({name!r}, ABSENT)", "    if value is not ABSENT:"]
        general += ["        known += 1"] + [f"        {line}" for line in test]
        if fdef.required:
            general += ["    else:", "        return False"]
        every += [f"            value = values[{name!r}]"] + [
            f"            {line}" for line in test
        ]
    general.append("    return known == len(values)")  # no field the step does not have
    if step.fields:
        every += [
            "        except KeyError:",  # as many keys, not all of them fields of the step
            "            if not fields(values):",
            "                return False",
            "    elif not fields(values):",
            "        return False",
        ]
    else:
        every = ["    if len(values):", "        return False"]
    lines += every
    lines += [
        "    if latest is not None and rec.at > latest:",
        "        return False",
        "    recorded_at = rec.recorded_at",
        "    if recorded_at is not None and recorded_at < rec.at - TOLERANCE:",
        "        return False",
    ]
    for j, (name, expression, names) in enumerate(also):
        renamed = {key: f"{key}_ALSO_{j}" for key in names}
        space.update({renamed[key]: value for key, value in names.items()})
        lines += [
            f"    value = values.get({name!r})",
            f"    if not ({expression.format(**renamed)}):",
            "        return False",
        ]
    lines.append("    return True")
    # Compiled for each plan, never shared between plans: the interpreter specialises a
    # code object's global look-ups for one namespace (shared, they missed every time:
    # 8 % more instructions in the bench).
    source = "\n".join([*general, "", *lines])
    exec(compile(source, f"<clean {step.id}>", "exec"), space)  # noqa: S102
    return space["clean"]


def _validator(name: str, fdef: FieldDef) -> Callable[[Any], _Problem | None]:
    """A function returning what is wrong with a value of this field (a problem), or None."""
    ftype = fdef.type
    if ftype in ("number", "temperature"):
        rng = fdef.range
        unit = fdef.unit

        def number(value: Any) -> _Problem | None:
            if not _is_number(value):
                return {
                    "code": "record.not_a_number",
                    "field": name,
                    "value": _jsonable(value),
                    "unit": unit,
                }
            if rng is not None and not (rng[0] <= value <= rng[1]):
                return {
                    "code": "record.impossible_value",
                    "field": name,
                    "value": value,
                    "unit": unit,
                    "min": rng[0],
                    "max": rng[1],
                }
            return None

        return number
    if ftype == "choice":
        choices = frozenset(fdef.choices)
        listed = list(fdef.choices)

        def choice(value: Any) -> _Problem | None:
            if isinstance(value, str) and value in choices:
                return None
            return {
                "code": "record.not_a_choice",
                "field": name,
                "value": _jsonable(value),
                "choices": listed,
            }

        return choice
    if ftype == "yes_no":
        return lambda value: (
            None
            if isinstance(value, bool)
            else {"code": "record.not_yes_no", "field": name, "value": _jsonable(value)}
        )
    if ftype == "datetime":

        def moment(value: Any) -> _Problem | None:
            if isinstance(value, datetime):
                return (
                    None
                    if value.tzinfo is not None
                    else {"code": "record.no_offset", "field": name}
                )
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    return {"code": "record.not_iso_time", "field": name, "value": value}
                if parsed.tzinfo is not None:
                    return None
                return {"code": "record.time_without_offset", "field": name, "value": value}
            return {"code": "record.not_a_time", "field": name, "value": _jsonable(value)}

        return moment
    return lambda value: (
        None
        if isinstance(value, str)
        else {"code": "record.not_text", "field": name, "value": _jsonable(value)}
    )
