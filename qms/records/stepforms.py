"""Step forms generated from the checklist: which steps may be recorded now, their inputs, their parsing.

A form never shows a step or field id: titles, labels, units and choice words come from
the checklist in the reader's language. Limits written in the checklist's field rules
("10–20 mL/min") are shown next to the field they concern. Parsing turns what the
browser sent into the values `log_step` takes; the checks stay in the record service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qms.checklists.engine.messages import _in_language
from qms.checklists.facts import DueItem, StepFacts
from qms.checklists.language import Checklist, FieldSpec
from qms.checklists.quantities import format_number, format_quantity
from qms.core.clock import zone_of
from qms.core.errors import Invalid
from qms.core.i18n import _
from qms.records.fields import field_label, step_title

# The HTML input each checklist field type becomes.
INPUT_TYPES = {
    "number": "number",
    "temperature": "number",
    "yes_no": "yes_no",
    "choice": "choice",
    "datetime": "datetime-local",
    "identifier": "scan",
    "equipment": "equipment",
    "person": "person",
    "text": "text",
}
PREFIX = "f-"  # form names of field inputs, apart from performed_at, password, witness...


@dataclass
class FormField:
    name: str  # the input's form name (never shown)
    label: str
    kind: str  # one of INPUT_TYPES' values
    required: bool
    unit: str | None = None
    limits: str | None = None
    low: float | None = None  # a range the live check compares while typing
    high: float | None = None
    scheme: str | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)
    value: str = ""


@dataclass
class StepForm:
    step: str
    title: str
    says: str
    fields: list[FormField]
    witness: bool
    performed_at: str  # datetime-local text, in the site's zone
    due: DueItem | None = None
    reason: str = ""  # refilled after a refusal
    witness_username: str = ""


def limits_of(checklist: Checklist, step: str, name: str, profile: str | None) -> list[FieldSpec]:
    """The numeric limits the checklist's field rules put on `step.name` for this profile."""
    out = []
    for rule in checklist.rules:
        spec = rule.spec
        if not isinstance(spec, FieldSpec) or spec.ref.step != step or spec.ref.name != name:
            continue
        if rule.when is not None and rule.when.profiles is not None:
            if profile is None or profile not in rule.when.profiles:
                continue
        if spec.min is not None or spec.max is not None:
            out.append(spec)
    return out


def _limit_text(low: float | None, high: float | None, unit: str | None) -> str:
    if low is not None and high is not None:
        return f"{format_number(low)}–{format_quantity(high, unit)}"
    if low is not None:
        return f"≥ {format_quantity(low, unit)}"
    return f"≤ {format_quantity(high, unit)}"


def steps_allowed_now(
    checklist: Checklist,
    due: Sequence[DueItem],
    recorded: Iterable[StepFacts],
    role: str,
) -> list[str]:
    """The steps this role may record now: what is due, and repeatable steps already begun
    (another bag, an interruption), in the checklist's order."""
    done = {s.step for s in recorded}
    wanted = {d.step for d in due}
    for sid, step in checklist.steps.items():
        if step.repeats and sid in done:
            wanted.add(sid)
    return [sid for sid, step in checklist.steps.items() if sid in wanted and role in step.roles]


def build_form(
    checklist: Checklist,
    step: str,
    *,
    lang: str,
    profile: str | None,
    zone: str | None,
    now: datetime,
    equipment: Sequence[tuple[str, str]],
    people: Sequence[tuple[str, str]],
    values: Mapping[str, str] | None = None,
    due: DueItem | None = None,
) -> StepForm:
    step_def = checklist.steps[step]
    values = values or {}
    # To the second: a step recorded in the same minute as the one before stays after it.
    local_now = now.astimezone(zone_of(zone)).strftime("%Y-%m-%dT%H:%M:%S")
    fields = []
    for name, fdef in step_def.fields.items():
        kind = INPUT_TYPES.get(fdef.type, "text")
        unit = "°C" if fdef.type == "temperature" else fdef.unit
        unit_text = _in_language(fdef.unit_text, lang) if fdef.unit_text is not None else unit
        low = high = None
        texts = []
        specs = limits_of(checklist, step, name, profile)
        if fdef.range is not None:
            low, high = fdef.range
            texts.append(_limit_text(low, high, unit_text))
        for spec in specs:
            low = spec.min if spec.min is not None else low
            high = spec.max if spec.max is not None else high
            texts.append(_limit_text(spec.min, spec.max, unit_text))
        choices: list[tuple[str, str]] = []
        if kind == "choice":
            choices = [(c, fdef.choice_label(c, lang)) for c in fdef.choices]
        elif kind == "equipment":
            choices = list(equipment)
        elif kind == "person":
            choices = list(people)
        default = ""
        if kind == "datetime-local":
            default = local_now
        fields.append(
            FormField(
                name=PREFIX + name,
                label=_in_language(fdef.label, lang) if fdef.label else name.replace("_", " "),
                kind=kind,
                required=fdef.required,
                unit=unit_text,
                limits="; ".join(dict.fromkeys(texts)) or None,
                low=low,
                high=high,
                scheme=fdef.scheme,
                choices=choices,
                value=values.get(PREFIX + name, default),
            )
        )
    return StepForm(
        step=step,
        title=_in_language(step_def.title, lang),
        says=_in_language(step_def.says, lang) if step_def.says else "",
        fields=fields,
        witness=step_def.witness_required,
        performed_at=values.get("performed_at") or local_now,
        due=due,
        reason=values.get("reason", ""),
        witness_username=values.get("witness_username", ""),
    )


def parse_local_time(text: str | None, zone: str | None, what: str) -> datetime:
    """A datetime-local value typed in the site's zone, as an aware time."""
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise Invalid(
            _("%(what)s: %(value)s is not a date and time.", what=what, value=repr(text))
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_of(zone))
    return moment


def field_values(
    checklist: Checklist,
    step: str,
    form: Mapping[str, str],
    zone: str | None,
    *,
    partial: bool = False,
):
    """The values a form sent, by field name; empty inputs are left out.

    A required field left empty is refused here with its label (unless `partial`: the
    live check judges what is typed so far); types and identifiers are checked by the
    record service, with the same messages as every other path.
    """
    step_def = checklist.steps[step]
    values: dict[str, Any] = {}
    missing = []
    for name, fdef in step_def.fields.items():
        text = (form.get(PREFIX + name) or "").strip()
        if not text:
            if fdef.required:
                missing.append(field_label(step_def, name))
            continue
        if fdef.type == "datetime":
            values[name] = parse_local_time(text, zone, field_label(step_def, name)).isoformat()
        else:
            values[name] = text
    if missing and not partial:
        raise Invalid(
            _(
                "%(title)s: fill in %(fields)s. Nothing was recorded.",
                title=step_title(step_def),
                fields=_(", ").join(missing),
            )
        )
    return values
