"""What a person may enter in each type of checklist field, checked before anything is stored.

Values arrive typed from code and as text from forms and scanners; both are accepted
when they mean one thing ("15" for 15 mL/min, "yes" for yes). Scanned identifiers are
parsed by qms.identifiers, the same parser as `qms identify`, and stored normalised so
that comparisons between fields (bag against wristband, bag against the unit) are exact.
A value that is of the right type but outside a limit is not refused here: that is the
rule engine's finding, recorded with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from qms.checklists.language.model import in_language
from qms.core.errors import Invalid
from qms.core.i18n import _, checklist_text_key
from qms.identifiers import IdentifierError, expect
from qms.identifiers.messages import worded

# Checklist identifier schemes and the identifier kinds they accept.
SCHEME_KINDS = {"din": "isbt128_din", "coi": "isbt128_coi", "gs1": "gs1"}
YES = frozenset({"yes", "y", "true", "1", "on", "是"})
NO = frozenset({"no", "n", "false", "0", "off", "否"})


class FieldValueError(ValueError):
    pass


def said(problem) -> str:
    """A label's problem (`qms.identifiers.messages.Said`) in the reader's language."""
    return worded(problem, _)


def step_title(step_def) -> str:
    """A step as a message names it: its checklist title in the reader's language."""
    return in_language(step_def.title, checklist_text_key()) if step_def.title else step_def.id


def field_label(step_def, name: str) -> str:
    """A field as a message names it: its checklist label in the reader's language (never
    its id; a field without a label is named from its id in words)."""
    fdef = step_def.fields.get(name)
    if fdef is not None and fdef.label:
        return in_language(fdef.label, checklist_text_key())
    return name.replace("_", " ")


def parse_field_values(
    step_def, values: Mapping[str, Any], *, equipment_exists: Callable[[str], bool]
) -> dict[str, Any]:
    """Each value as its field's type, or one Invalid naming every bad field."""
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in values.items():
        field = step_def.fields[name]
        try:
            parsed[name] = _parse(field, value, equipment_exists)
        except FieldValueError as exc:
            problems.append(
                _("%(label)s %(problem)s", label=field_label(step_def, name), problem=exc)
            )
    if problems:
        raise Invalid(
            _(
                "%(title)s: %(problems)s. Nothing was recorded.",
                title=step_title(step_def),
                problems=_("; ").join(problems),
            )
        )
    return parsed


def _parse(field, value: Any, equipment_exists: Callable[[str], bool]) -> Any:
    kind = field.type
    if kind in ("number", "temperature"):
        return _number(value, "°C" if kind == "temperature" else field.unit)
    if kind == "yes_no":
        return _yes_no(value)
    if kind == "datetime":
        return _datetime(value)
    text = _text(value)
    if kind == "choice":
        if text not in field.choices:
            raise FieldValueError(
                _(
                    "must be one of %(choices)s, not %(value)s",
                    choices=_(", ").join(field.choices),
                    value=repr(text),
                )
            )
        return text
    if kind == "identifier":
        wanted = SCHEME_KINDS.get(field.scheme or "any")
        if wanted is None:
            return text
        try:
            return expect(text, wanted).normalised
        except IdentifierError as exc:
            raise FieldValueError(_("is not valid: %(problem)s", problem=said(exc.said))) from None
    if kind == "equipment":
        if not equipment_exists(text):
            raise FieldValueError(
                _(
                    "names %(value)s, which is not storage equipment in use at this site",
                    value=repr(text),
                )
            )
        return text
    return text  # text, person


def _number(value: Any, unit: str | None) -> int | float:
    if isinstance(value, bool):
        raise FieldValueError(_not_a_number(unit, _("yes/no")))
    if isinstance(value, str):
        cleaned = value.strip().replace("−", "-").replace(",", ".")
        if unit and cleaned.lower().endswith(unit.lower()):
            cleaned = cleaned[: -len(unit)].strip()
        try:
            value = float(cleaned)
        except ValueError:
            raise FieldValueError(_not_a_number(unit, repr(value))) from None
    if not isinstance(value, int | float) or isinstance(value, float) and not math.isfinite(value):
        raise FieldValueError(_not_a_number(unit, repr(value)))
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _not_a_number(unit: str | None, value: str) -> str:
    if unit:
        return _("must be a number in %(unit)s, not %(value)s", unit=unit, value=value)
    return _("must be a number, not %(value)s", value=value)


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in YES | NO:
        return value.strip().lower() in YES
    raise FieldValueError(_("must be yes or no, not %(value)s", value=repr(value)))


def _datetime(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(_text(value))
        except ValueError:
            raise FieldValueError(
                _(
                    "must be a date and time such as 2026-10-02T09:30+08:00, not %(value)s",
                    value=repr(value),
                )
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FieldValueError(
            _("needs its UTC offset (e.g. +08:00): a time without one is ambiguous")
        )
    return moment.isoformat()


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldValueError(_("must be text, not %(value)s", value=repr(value)))
    text = str(value).strip()
    if not text:
        raise FieldValueError(_("is empty"))
    return text
