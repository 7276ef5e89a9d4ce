"""Finding messages: one English template per code, rendered from the code and its parameters.

A finding is stored as a code and parameters (ids and values, never display text); its
words are made here, when it is shown, in the reader's language. Each template is
written once, wrapped in `N_()` so that `pybabel extract -k N_` collects it; `render`
passes it through `gettext` when one is given, then fills in the parameters.

A placeholder names a parameter, or something shown from one (made only when asked):
- step ids (`step`, `start`, `end`, `earlier`, `later`): `<name>_title` is the step's
  title in the reader's language when a checklist is given, else the id.
- field references (`field`, `other`: `step.field`, `unit.name`): `field_where` reads
  "Step title: field label (step.field)" or "The unit's label (unit.name)".
- `rule`: the rule id; `says` is that rule's own words, when a checklist is given.
- a list is shown joined by ", "; `<name>_shown` shows each value (yes/no, numbers).
- `<name>_shown` of a number is it with its unit: `params["unit"]` for `value`, `min`,
  `max`, `other_value`; °C for names ending in `_c`; none otherwise. `<name>_number`
  is the bare number and `<name>_repr` the value as written in a record ('P-1').
- `problems` and `reasons` are lists of parts, each `{"code": ..., <params>}`, rendered
  with the same rules and joined by "; ".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from qms.checklists.quantities import format_number, format_quantity


def N_(text: str) -> str:
    """Mark a template for extraction into the translation catalog; return it unchanged."""
    return text


# code -> (kind, params every producer supplies, {variant: template})
# A variant is chosen by _VARIANTS[code](params); "" when the code has one template.
MESSAGES: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "profile.missing": (
        "record_integrity",
        ("rules",),
        {
            "": N_(
                "The unit names no jurisdiction profile (us, eu, cn), so the rules that depend "
                "on it were not checked: %(rules)s."
            )
        },
    ),
    "missing_step.required": (
        "missing_step",
        ("step", "later"),
        {
            "": N_("%(step_title)s (%(step)s) was never recorded for this finished unit."),
            "one": N_(
                "%(step_title)s (%(step)s) was never recorded for this finished unit "
                "although %(later)s was recorded."
            ),
            "many": N_(
                "%(step_title)s (%(step)s) was never recorded for this finished unit "
                "although %(later)s were recorded."
            ),
        },
    ),
    "missing_step.later_recorded": (
        "missing_step",
        ("step", "later"),
        {
            "one": N_(
                "%(step_title)s (%(step)s) was not recorded, but %(later)s, which must come "
                "after it, was."
            ),
            "many": N_(
                "%(step_title)s (%(step)s) was not recorded, but %(later)s, which must come "
                "after it, were."
            ),
        },
    ),
    "role.not_allowed": (
        "role",
        ("step", "by", "role", "allowed"),
        {
            "": N_(
                "%(step_title)s was performed by %(by)s as %(role)s; only %(allowed)s may "
                "perform it."
            ),
            "unnamed": N_(
                "%(step_title)s was performed by an unnamed person as %(role)s; only "
                "%(allowed)s may perform it."
            ),
        },
    ),
    "witness.missing": (
        "witness",
        ("step", "roles"),
        {
            "": N_(
                "%(step_title)s was not co-signed by a witness; a second, different person "
                "(%(roles)s) must co-sign it."
            ),
            "any": N_(
                "%(step_title)s was not co-signed by a witness; a second, different person "
                "(any role) must co-sign it."
            ),
        },
    ),
    "witness.same_person": (
        "witness",
        ("step", "by"),
        {
            "": N_(
                "%(step_title)s was witnessed by the same person who performed it (%(by)s); "
                "the witness must be a different person."
            )
        },
    ),
    "witness.role_not_allowed": (
        "witness",
        ("step", "witness", "role", "allowed"),
        {
            "": N_(
                "%(step_title)s was witnessed by %(witness)s as %(role)s; only %(allowed)s "
                "may witness it."
            )
        },
    ),
    "record_integrity.incomplete": (
        "record_integrity",
        ("step", "problems"),
        {"": N_("%(step_title)s record is not complete or not valid: %(problems)s.")},
    ),
    "order.no_earlier": (
        "order",
        ("rule", "before", "later"),
        {
            "": N_(
                "%(later_title)s (%(later)s) was recorded with no %(before)s recorded before "
                "it. %(says)s"
            )
        },
    ),
    "order.before": (
        "order",
        ("rule", "earlier", "later", "gap"),
        {
            "": N_(
                "%(later_title)s (%(later)s) was recorded %(gap)s before %(earlier_title)s "
                "(%(earlier)s). %(says)s"
            )
        },
    ),
    "window.no_start": (
        "window",
        ("rule", "start", "end"),
        {
            "": N_(
                "%(end_title)s (%(end)s) was recorded with no %(start_title)s (%(start)s) "
                "before it. %(says)s"
            )
        },
    ),
    "window.max_exceeded": (
        "window",
        ("rule", "start", "end", "took", "max"),
        {
            "": N_(
                "%(end_title)s (%(end)s) came %(took)s after %(start_title)s (%(start)s); "
                "the limit is %(max)s. %(says)s"
            )
        },
    ),
    "window.min_not_reached": (
        "window",
        ("rule", "start", "end", "took", "min"),
        {
            "": N_(
                "%(end_title)s (%(end)s) came only %(took)s after %(start_title)s (%(start)s); "
                "it must be at least %(min)s. %(says)s"
            )
        },
    ),
    "window.overdue": (
        "window",
        ("rule", "start", "end", "waited", "max"),
        {
            "": N_(
                "%(end_title)s (%(end)s) is not recorded %(waited)s after %(start_title)s "
                "(%(start)s); the limit is %(max)s. %(says)s"
            )
        },
    ),
    "window.never_followed": (
        "window",
        ("rule", "start", "end"),
        {
            "": N_(
                "%(start_title)s (%(start)s) was never followed by %(end_title)s (%(end)s) in "
                "this finished unit. %(says)s"
            )
        },
    ),
    "every.missed": (
        "window",
        ("rule", "start", "end", "interval", "span", "missed", "daily"),
        {
            "day": N_(
                "No %(end_title)s (%(end)s) was recorded on day %(missed)s after "
                "%(start_title)s (%(start)s); one is needed every %(interval)s for %(span)s. "
                "%(says)s"
            ),
            "days": N_(
                "No %(end_title)s (%(end)s) was recorded on days %(missed)s after "
                "%(start_title)s (%(start)s); one is needed every %(interval)s for %(span)s. "
                "%(says)s"
            ),
            "period": N_(
                "No %(end_title)s (%(end)s) was recorded in the period %(missed)s after "
                "%(start_title)s (%(start)s); one is needed every %(interval)s for %(span)s. "
                "%(says)s"
            ),
            "periods": N_(
                "No %(end_title)s (%(end)s) was recorded in the periods %(missed)s after "
                "%(start_title)s (%(start)s); one is needed every %(interval)s for %(span)s. "
                "%(says)s"
            ),
        },
    ),
    "field.not_recorded": (
        "limit",
        ("rule", "field"),
        {"": N_("%(field_where)s was not recorded, so the rule cannot be shown to hold. %(says)s")},
    ),
    "field.out_of_range": (
        "limit",
        ("rule", "field", "value", "unit", "min", "max", "bound"),
        {
            "min": N_(
                "%(field_where)s was %(value_shown)s, below the minimum of %(min_shown)s. %(says)s"
            ),
            "max": N_(
                "%(field_where)s was %(value_shown)s, above the maximum of %(max_shown)s. %(says)s"
            ),
        },
    ),
    "field.not_one_of": (
        "limit",
        ("rule", "field", "value", "unit", "allowed"),
        {"": N_("%(field_where)s was %(value_shown)s; allowed: %(allowed_shown)s. %(says)s")},
    ),
    "field.not_allowed": (
        "limit",
        ("rule", "field", "value", "unit"),
        {"": N_("%(field_where)s was %(value_shown)s, which is not allowed. %(says)s")},
    ),
    "field.must_be": (
        "limit",
        ("rule", "field", "value", "unit", "expected"),
        {"": N_("%(field_where)s was %(value_shown)s; it must be %(expected_shown)s. %(says)s")},
    ),
    "field.mismatch": (
        "identity",
        ("rule", "field", "value", "other", "other_value"),
        {
            "": N_(
                "%(field_where)s is %(value_repr)s but %(other)s is %(other_value_repr)s; "
                "they must be the same. %(says)s"
            )
        },
    ),
    "field.above_other": (
        "limit",
        ("rule", "field", "value", "unit", "other", "other_value"),
        {
            "": N_(
                "%(field_where)s was %(value_shown)s, more than %(other)s "
                "(%(other_value_shown)s). %(says)s"
            )
        },
    ),
    "field.below_other": (
        "limit",
        ("rule", "field", "value", "unit", "other", "other_value"),
        {
            "": N_(
                "%(field_where)s was %(value_shown)s, less than %(other)s "
                "(%(other_value_shown)s). %(says)s"
            )
        },
    ),
    "storage.excursion": (
        "excursion",
        ("rule", "equipment", "stored_for", "reasons"),
        {
            "": N_(
                "While the unit was stored in %(equipment)s (%(stored_for)s), the equipment "
                "%(reasons)s. %(says)s"
            )
        },
    ),
    # The kind is the rule's own (any kind): "" here. `would` is the finding of the
    # rule's strictest world, {"code", "params"}, rendered in the same language.
    "rule.cannot_be_shown": (
        "",
        ("rule", "missing", "would"),
        {
            "": N_(
                "%(missing_where)s was not recorded, and whether the rule holds depends on "
                "it, so it cannot be shown to hold. In its strictest case: %(would)s"
            )
        },
    ),
}

# The parts of a record_integrity.incomplete (`problems`) and a storage.excursion
# (`reasons`): code -> (params, template).
PARTS: dict[str, tuple[tuple[str, ...], str]] = {
    "record.no_performer": ((), N_("no performer recorded")),
    "record.repeated": (("count",), N_("recorded %(count)s times but the step is done once")),
    "record.field_missing": (("field",), N_("required field %(field)s is missing")),
    "record.unknown_field": (("field",), N_("%(field)s is not a field of this step")),
    "record.not_a_number": (
        ("field", "value", "unit"),
        N_("%(field)s must be a number in %(unit)s, got %(value_repr)s"),
    ),
    "record.impossible_value": (
        ("field", "value", "unit", "min", "max"),
        N_("%(field)s %(value_shown)s is outside the possible range %(min_number)s–%(max_shown)s"),
    ),
    "record.not_a_choice": (
        ("field", "value", "choices"),
        N_("%(field)s %(value_repr)s is not one of %(choices)s"),
    ),
    "record.not_yes_no": (
        ("field", "value"),
        N_("%(field)s must be yes or no (true/false), got %(value_repr)s"),
    ),
    "record.no_offset": (("field",), N_("%(field)s has no UTC offset")),
    "record.time_without_offset": (
        ("field", "value"),
        N_("%(field)s %(value_repr)s has no UTC offset"),
    ),
    "record.not_iso_time": (
        ("field", "value"),
        N_("%(field)s %(value_repr)s is not an ISO date-time"),
    ),
    "record.not_a_time": (
        ("field", "value"),
        N_("%(field)s must be a date-time, got %(value_repr)s"),
    ),
    "record.not_text": (("field", "value"), N_("%(field)s must be text, got %(value_repr)s")),
    "record.dated_after_check": (("ahead",), N_("dated %(ahead)s after the time of the check")),
    "record.entered_before": (("early",), N_("entered %(early)s before it happened")),
    "storage.below_min": (
        ("coldest_c", "min_c"),
        N_("read as low as %(coldest_c_shown)s, below %(min_c_shown)s"),
    ),
    "storage.above_max": (
        ("warmest_c", "max_c", "above_for"),
        N_("read up to %(warmest_c_shown)s, above %(max_c_shown)s, for %(above_for)s"),
    ),
    "storage.above_tolerated": (
        ("warmest_c", "up_to_c"),
        N_("read up to %(warmest_c_shown)s, above the tolerated %(up_to_c_shown)s"),
    ),
    "storage.too_long_above": (
        ("above_for", "max_c", "tolerate_for"),
        N_("spent %(above_for)s above %(max_c_shown)s, more than the tolerated %(tolerate_for)s"),
    ),
    "storage.mkt_exceeded": (
        ("mkt_c", "mkt_max_c"),
        N_("had a mean kinetic temperature of %(mkt_c_number)s °C, above %(mkt_max_c_shown)s"),
    ),
}

_YES, _NO = N_("yes"), N_("no")
_STEP_WHERE = N_("%(title)s: %(label)s (%(ref)s)")
_UNIT_WHERE = N_("The unit's %(label)s (%(ref)s)")
_FALLBACK = N_("%(code)s: %(params)s")

_VARIANTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing_step.required": lambda p: (
        "" if not p["later"] else "one" if len(p["later"]) == 1 else "many"
    ),
    "missing_step.later_recorded": lambda p: "one" if len(p["later"]) == 1 else "many",
    "role.not_allowed": lambda p: "" if p["by"] else "unnamed",
    "witness.missing": lambda p: "" if p["roles"] else "any",
    "every.missed": lambda p: (
        ("day" if p["daily"] else "period") + ("s" if len(p["missed"]) > 1 else "")
    ),
    "field.out_of_range": lambda p: p["bound"],
}

UNIT_PARAMS = frozenset({"value", "min", "max", "other_value"})
PART_LISTS = frozenset({"problems", "reasons"})
NESTED = frozenset({"would"})  # a whole finding (code and params) inside another


def codes() -> tuple[str, ...]:
    """Every finding code, in the order of the documentation."""
    return tuple(MESSAGES)


def _identity(text: str) -> str:
    return text


def _is_number(value: Any) -> bool:
    kind = type(value)
    return (kind is float and math.isfinite(value)) or kind is int


def _in_language(text: Any, lang: str) -> str:
    """Checklist text in the reader's language (a plain string is English)."""
    get = getattr(text, "get", None)
    return get(lang) if callable(get) else str(text)


# Step and field ids, marked while a message is made for a reader who is not shown them
# (`refs=False`): "Title (id)" loses its "(id)", a bare id becomes its title or label.
_REF = "\x00"
_REF_IN_BRACKETS = re.compile(" ?[(（]\x00[^\x00]*\x00[)）]")
_REF_BARE = re.compile("\x00([^\x00]*)\x00")
STEP_PARAMS = frozenset({"step", "start", "end", "earlier", "later", "before"})
FIELD_PARAMS = frozenset({"field", "other", "missing"})


class _Renderer:
    __slots__ = ("checklist", "lang", "gettext", "refs")

    def __init__(
        self, checklist: Any, lang: str, gettext: Callable[[str], str] | None, refs: bool = True
    ):
        self.checklist = checklist
        self.lang = lang
        self.gettext = gettext or _identity
        self.refs = refs

    def unref(self, text: str) -> str:
        """The message without the ids marked in it (`refs=False`)."""
        if _REF not in text:
            return text
        return _REF_BARE.sub(lambda m: self.named(m[1]), _REF_IN_BRACKETS.sub("", text))

    def named(self, ref: str) -> str:
        """A step id as its title, a field reference (step.field) as its label."""
        step, dot, name = ref.partition(".")
        if not dot:
            return self.step_title(ref)
        steps = getattr(self.checklist, "steps", None)
        fdef = steps[step].fields.get(name) if steps is not None and step in steps else None
        return _in_language(fdef.label, self.lang) if fdef is not None else name.replace("_", " ")

    def marked(self, value: Any) -> Any:
        if isinstance(value, str):
            return _REF + value + _REF
        if isinstance(value, list | tuple):
            return ", ".join(_REF + str(v) + _REF for v in value)
        return value

    def show(self, value: Any, unit: str | None = None) -> str:
        if value is True:
            return self.gettext(_YES)
        if value is False:
            return self.gettext(_NO)
        if _is_number(value):
            return format_quantity(float(value), unit)
        return str(value)

    def step_title(self, step: str) -> str:
        steps = getattr(self.checklist, "steps", None)
        if steps is None or step not in steps:
            return step
        return _in_language(steps[step].title, self.lang)

    def field_where(self, ref: str) -> str:
        step, _, name = ref.partition(".")
        label = name.replace("_", " ")
        steps = getattr(self.checklist, "steps", None)
        if not self.refs:
            ref = self.marked(ref)
        if step == "unit":
            return self.gettext(_UNIT_WHERE) % {"label": label, "ref": ref}
        title = step
        if steps is not None and step in steps:
            title = _in_language(steps[step].title, self.lang)
            fdef = steps[step].fields.get(name)
            if fdef is not None:
                label = _in_language(fdef.label, self.lang)
        return self.gettext(_STEP_WHERE) % {"title": title, "label": label, "ref": ref}

    def says(self, rule_id: str) -> str:
        if self.checklist is None:
            return ""
        try:
            rule = self.checklist.rule(rule_id)
        except (KeyError, AttributeError):
            return ""
        return _in_language(rule.says, self.lang)

    def derived(self, key: str, value: Any, suffix: str, params: Mapping[str, Any]) -> str:
        """What a placeholder `<key><suffix>` shows of the parameter `key`."""
        if suffix == "_title":
            return self.step_title(value) if isinstance(value, str) else str(value)
        if suffix == "_where":
            if isinstance(value, list | tuple):
                return ", ".join(self.field_where(v) for v in value)
            return self.field_where(value) if isinstance(value, str) else str(value)
        if suffix == "_repr":
            return repr(value)
        if isinstance(value, list | tuple):
            return ", ".join(self.show(v) for v in value)
        if suffix == "_number":
            return format_number(value) if _is_number(value) else str(value)
        unit = params.get("unit") if key in UNIT_PARAMS else "°C" if key.endswith("_c") else None
        return self.show(value, unit)

    def part(self, part: Mapping[str, Any]) -> str:
        code = part.get("code")
        if code not in PARTS:
            return self.gettext(_FALLBACK) % {"code": code, "params": _plain(part)}
        return self.unref(self.gettext(PARTS[code][1]) % _Values(self, part))

    def message(self, code: str, params: Mapping[str, Any]) -> str:
        entry = MESSAGES.get(code)
        if entry is None:
            # A code this version does not know (a record from a newer one): still legible.
            return self.gettext(_FALLBACK) % {"code": code, "params": _plain(params)}
        variants = entry[2]
        choose = _VARIANTS.get(code)
        template = variants[choose(params) if choose is not None else ""]
        return self.unref(self.gettext(template) % _Values(self, params)).strip()


_SUFFIXES = ("_title", "_where", "_shown", "_repr", "_number")


class _Values:
    """The values a template's placeholders name, each made only when the template asks."""

    __slots__ = ("renderer", "params")

    def __init__(self, renderer: _Renderer, params: Mapping[str, Any]):
        self.renderer = renderer
        self.params = params

    def __getitem__(self, name: str) -> Any:
        params = self.params
        if name in params:
            value = params[name]
            if name in PART_LISTS:
                return "; ".join(self.renderer.part(p) for p in value)
            if name in NESTED:
                return self.renderer.message(value["code"], value["params"])
            if not self.renderer.refs and (name in STEP_PARAMS or name in FIELD_PARAMS):
                return self.renderer.marked(value)
            if isinstance(value, list | tuple):
                return ", ".join(str(v) for v in value)
            return "" if value is None else value
        if name == "says" and "rule" in params:
            return self.renderer.says(params["rule"])
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and (key := name[: -len(suffix)]) in params:
                return self.renderer.derived(key, params[key], suffix, params)
        raise KeyError(name)


def _plain(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), ensure_ascii=False, sort_keys=True, default=str)


def render(
    code: str,
    params: Mapping[str, Any],
    *,
    checklist: Any = None,
    lang: str = "en",
    gettext: Callable[[str], str] | None = None,
    refs: bool = True,
) -> str:
    """The words of a finding: its code's template, translated by `gettext`, filled in.

    With a checklist, step and field ids are shown as its titles and labels and the
    rule's own words are added, in `lang`; without one, the ids are shown as they are.
    `refs=False` (pages: people read titles and labels, never ids) leaves out the ids
    shown beside a title ("Thaw completed (thaw_end)") and shows a bare one as its title
    or label. A missing parameter is a KeyError: every producer of a code supplies its params.
    """
    return _Renderer(checklist, lang, gettext, refs).message(code, params)


def render_parts(
    parts: list[Mapping[str, Any]], *, gettext: Callable[[str], str] | None = None
) -> str:
    """The parts of a finding (a record's problems, an excursion's reasons) joined by "; "."""
    renderer = _Renderer(None, "en", gettext)
    return "; ".join(renderer.part(p) for p in parts)
