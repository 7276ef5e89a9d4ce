"""The checks every step implies (done, role, witness, record integrity) and the profile check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from qms.checklists.engine.context import _Check, _compile_condition, _Ctx, _is_number
from qms.checklists.facts import Finding
from qms.checklists.language import FieldDef, Rule, StepDef
from qms.checklists.quantities import format_duration, format_number, format_quantity

# Clocks on ward devices drift; a record up to this far "in the future" is not flagged.
CLOCK_TOLERANCE = timedelta(minutes=5)


def _compile_profile(rule: Rule, skipped: tuple[str, ...]) -> _Check:
    """The `<checklist>.profile` rule: a unit with no profile leaves some rules unchecked."""

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


def _compile_done(rule: Rule, step: StepDef, successors: tuple[str, ...]) -> _Check:
    """A required step never recorded: missing once the unit is finished or a later step is."""
    sid = step.id
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


def _compile_step_checks(step: StepDef, rules: Mapping[str, Rule]) -> _Check:
    """Who performed and witnessed each record of a step, and whether it is complete."""
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
