"""The rule shapes (order, window, every, field, storage): their specs and how each is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from qms.checklists.language.model import FieldRef, Rule, _num, _show
from qms.checklists.quantities import format_duration, format_quantity
from qms.checklists.yamlnodes import LList, LMap

if TYPE_CHECKING:
    from qms.checklists.language.reader import _ChecklistBuilder

WINDOW_PAIRS = {
    "last_start": "each `to` record is measured from the latest `from` record before it",
    "in_turn": "the first `from` is measured to the first `to` after it, the second to the next, and so on (bags)",
    "first_end": "each `from` record is measured to the first `to` record after it",
    "first_start": "each `to` record is measured from the first `from` record of the unit",
}
RULE_SHAPES = ("order", "window", "every", "field", "storage")
FIELD_TESTS = (
    "min",
    "max",
    "one_of",
    "not_one_of",
    "must_be",
    "equals_field",
    "at_most_field",
    "at_least_field",
)
WINDOW_KEYS = ("from", "to", "min", "max", "pair", "require_from")
EVERY_KEYS = ("step", "from", "interval", "for")
STORAGE_KEYS = ("min", "max", "tolerate")
TOLERATE_KEYS = ("up_to", "for", "mkt_max")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    steps: tuple[str, ...]

    @property
    def limit_text(self) -> str:
        return " before ".join(self.steps)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    start: str
    end: str
    min: timedelta | None
    max: timedelta | None
    pair: str
    require_from: bool = False

    @property
    def limit_text(self) -> str:
        # The findings contract (docs/interchange.md): a plain maximum reads "30m".
        if self.min is not None and self.max is not None:
            return f"{format_duration(self.min)}–{format_duration(self.max)}"
        if self.max is not None:
            return format_duration(self.max)
        return f"≥ {format_duration(self.min or timedelta(0))}"


@dataclass(frozen=True, slots=True)
class EverySpec:
    """A record of step `end` in every `interval` after the last `start`, for `span`.

    E.g. daily CRS/ICANS assessment for 7 days after the infusion. Named start/end like a
    window so that `when` filters on the two steps work the same way.
    """

    start: str
    end: str
    interval: timedelta
    span: timedelta

    @property
    def periods(self) -> int:
        return -(-self.span // self.interval)  # ceiling: a last, shorter period counts

    @property
    def limit_text(self) -> str:
        return f"every {format_duration(self.interval)} for {format_duration(self.span)}"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    ref: FieldRef
    unit: str | None
    min: float | None
    max: float | None
    one_of: tuple[Any, ...] | None
    not_one_of: tuple[Any, ...] | None
    must_be: Any
    has_must_be: bool
    compare: str | None  # equals, at_most, at_least
    other: FieldRef | None

    @property
    def limit_text(self) -> str:
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"{_num(self.min)}–{format_quantity(self.max, self.unit)}")
        elif self.min is not None:
            parts.append(f"≥ {format_quantity(self.min, self.unit)}")
        elif self.max is not None:
            parts.append(f"≤ {format_quantity(self.max, self.unit)}")
        if self.one_of is not None:
            parts.append("one of " + ", ".join(_show(v) for v in self.one_of))
        if self.not_one_of is not None:
            parts.append("not " + ", ".join(_show(v) for v in self.not_one_of))
        if self.has_must_be:
            parts.append(_show(self.must_be))
        if self.compare is not None and self.other is not None:
            word = {"equals": "equal to", "at_most": "at most", "at_least": "at least"}[
                self.compare
            ]
            parts.append(f"{word} {self.other.text}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class StorageSpec:
    min: float | None
    max: float | None
    tolerate_up_to: float | None
    tolerate_for: timedelta | None
    mkt_max: float | None

    @property
    def limit_text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)}–{format_quantity(self.max, '°C')}"
        if self.max is not None:
            return f"≤ {format_quantity(self.max, '°C')}"
        return f"≥ {format_quantity(self.min or 0.0, '°C')}"


def parse_order(b: _ChecklistBuilder, value: Any, line: int, where: str) -> OrderSpec | None:
    if not isinstance(value, LList) or len(value) < 2:
        b.r.err(
            line,
            f"order of {where} must list at least two steps",
            "e.g. order: [identity_check, thaw_start]",
        )
        return None
    steps = [
        b.step_ref(v, vl, f"order of {where}") for v, vl in zip(value, value.lines, strict=True)
    ]
    if len(set(value)) != len(value):
        b.r.err(line, f"order of {where} names a step twice", "name each step once")
        return None
    if any(s is None for s in steps):
        return None
    return OrderSpec(tuple(s for s in steps if s is not None))


def parse_window(b: _ChecklistBuilder, value: Any, line: int, where: str) -> WindowSpec | None:
    body = b.r.mapping(value, line, f"window of {where}")
    if body is None:
        return None
    b.r.keys(body, WINDOW_KEYS, f"window of {where}")
    start = b.step_ref(body.get("from"), body.lines.get("from", line), f"window of {where} (from)")
    end = b.step_ref(body.get("to"), body.lines.get("to", line), f"window of {where} (to)")
    low = b.duration(body["min"], body.lines["min"], f"min of {where}") if "min" in body else None
    high = b.duration(body["max"], body.lines["max"], f"max of {where}") if "max" in body else None
    if "min" not in body and "max" not in body:
        b.r.err(line, f"window of {where} has neither min nor max", "give max: 30m and/or min: 9d")
    for value_, key in ((low, "min"), (high, "max")):
        if value_ is not None and value_ < timedelta(0):
            b.r.err(
                body.lines[key],
                f"{key} of {where} is negative",
                "windows are measured forward from `from`; swap from and to",
            )
    if low is not None and high is not None and low > high:
        b.r.err(
            body.lines["min"],
            f"window of {where} is impossible: min {format_duration(low)} > max {format_duration(high)}",
            "min must not exceed max",
        )
    if start is not None and start == end:
        b.r.err(
            line,
            f"window of {where} runs from {start} to itself",
            "from and to must be different steps",
        )
    pair = body.get("pair", "last_start")
    if pair not in WINDOW_PAIRS:
        b.r.err(
            body.lines["pair"],
            f"pair {pair!r} of {where} is not known",
            "allowed: " + ", ".join(WINDOW_PAIRS),
        )
    require_from = b.r.flag(body, "require_from", f"window of {where}", False)
    if start is None or end is None or start == end or (low is None and high is None):
        return None
    return WindowSpec(start, end, low, high, pair, require_from)


def parse_every(b: _ChecklistBuilder, value: Any, line: int, where: str) -> EverySpec | None:
    body = b.r.mapping(value, line, f"every of {where}")
    if body is None:
        return None
    b.r.keys(body, EVERY_KEYS, f"every of {where}")
    step = b.step_ref(body.get("step"), body.lines.get("step", line), f"every of {where} (step)")
    start = b.step_ref(body.get("from"), body.lines.get("from", line), f"every of {where} (from)")
    durations = {}
    for key in ("interval", "for"):
        if key not in body:
            b.r.err(
                line,
                f"every of {where} has no {key}",
                "e.g. every: {..., interval: 1d, for: 7d}",
            )
            continue
        found = b.duration(body[key], body.lines[key], f"{key} of {where}")
        if found is not None and found <= timedelta(0):
            b.r.err(body.lines[key], f"{key} of {where} must be longer than zero", "e.g. 1d")
            found = None
        durations[key] = found
    interval, span = durations.get("interval"), durations.get("for")
    if interval is not None and span is not None and span < interval:
        b.r.err(
            body.lines["for"],
            f"every of {where} is impossible: for {format_duration(span)} is shorter than "
            f"the interval {format_duration(interval)}",
            "for must be at least one interval",
        )
        return None
    if start is not None and start == step:
        b.r.err(
            line,
            f"every of {where} measures {step} from itself",
            "from and step must be different steps",
        )
        return None
    if step is None or start is None or interval is None or span is None:
        return None
    return EverySpec(start, step, interval, span)


def parse_storage(b: _ChecklistBuilder, value: Any, line: int, where: str) -> StorageSpec | None:
    body = b.r.mapping(value, line, f"storage of {where}")
    if body is None:
        return None
    b.r.keys(body, STORAGE_KEYS, f"storage of {where}")
    for needed, field_name in (("storage_in", "equipment"), ("storage_out", None)):
        if needed not in b.steps:
            b.r.err(
                line,
                f"{where} checks storage but the checklist has no step {needed!r}",
                "add storage_in (with an equipment field) and storage_out steps",
            )
        elif field_name and field_name not in b.steps[needed].fields:
            b.r.err(
                line,
                f"{where} checks storage but step {needed!r} has no {field_name!r} field",
                "add `equipment: {type: equipment}` to storage_in",
            )
    low = (
        b.quantity(body["min"], body.lines["min"], "°C", f"min of {where}")
        if "min" in body
        else None
    )
    high = (
        b.quantity(body["max"], body.lines["max"], "°C", f"max of {where}")
        if "max" in body
        else None
    )
    if low is None and high is None and "min" not in body and "max" not in body:
        b.r.err(line, f"storage of {where} has neither min nor max", "e.g. storage: {max: -130 °C}")
        return None
    if low is not None and high is not None and low > high:
        b.r.err(
            line,
            f"storage of {where} is impossible: min {_num(low)} °C > max {_num(high)} °C",
            "min must not exceed max",
        )
    up_to = for_ = mkt = None
    if "tolerate" in body:
        tol = b.r.mapping(body["tolerate"], body.lines["tolerate"], f"tolerate of {where}")
        if tol is not None:
            b.r.keys(tol, TOLERATE_KEYS, f"tolerate of {where}")
            missing = [k for k in TOLERATE_KEYS if k not in tol]
            if missing:
                b.r.err(
                    tol.line,
                    f"tolerate of {where} lacks {', '.join(missing)}",
                    "give up_to (°C), for (duration) and mkt_max (°C), e.g. USP <659>: {up_to: 15, for: 24h, mkt_max: 8}",
                )
            else:
                up_to = b.quantity(
                    tol["up_to"], tol.lines["up_to"], "°C", f"tolerate.up_to of {where}"
                )
                for_ = b.duration(tol["for"], tol.lines["for"], f"tolerate.for of {where}")
                mkt = b.quantity(
                    tol["mkt_max"], tol.lines["mkt_max"], "°C", f"tolerate.mkt_max of {where}"
                )
                if high is None:
                    b.r.err(
                        tol.line,
                        f"tolerate of {where} needs a storage max",
                        "tolerance applies to readings above max",
                    )
                elif up_to is not None and up_to <= high:
                    b.r.err(
                        tol.lines["up_to"],
                        f"tolerate.up_to of {where} ({_num(up_to)} °C) is not above max ({_num(high)} °C)",
                        "up_to must be above max",
                    )
    if b.r.problems and low is None and high is None:
        return None
    return StorageSpec(low, high, up_to, for_, mkt)


def parse_field_rule(b: _ChecklistBuilder, body: LMap, where: str) -> FieldSpec | None:
    r = b.r
    got = b.field_ref(body["field"], body.lines["field"], where)
    tests = [k for k in FIELD_TESTS if k in body]
    if not tests:
        r.err(
            body.lines["field"],
            f"{where} names a field but no test",
            "add min, max, one_of, not_one_of, must_be, equals_field, at_most_field or at_least_field",
        )
        return None
    if got is None:
        return None
    ref, fdef = got
    unit = fdef.unit if fdef else None
    ftype = fdef.type if fdef else None
    low = high = None
    if "min" in body or "max" in body:
        if ftype not in (None, "number", "temperature"):
            r.err(
                body.lines["min" if "min" in body else "max"],
                f"{where}: min/max need a number or temperature field, {ref.text} is {ftype}",
                "use one_of or must_be",
            )
        else:
            low = (
                b.quantity(body["min"], body.lines["min"], unit, f"min of {where}")
                if "min" in body
                else None
            )
            high = (
                b.quantity(body["max"], body.lines["max"], unit, f"max of {where}")
                if "max" in body
                else None
            )
            if low is not None and high is not None and low > high:
                r.err(
                    body.lines["min"],
                    f"{where} is impossible: min {_num(low)} > max {_num(high)}",
                    "min must not exceed max",
                )
    one_of = not_one_of = None
    for key in ("one_of", "not_one_of"):
        if key in body:
            raw = body[key]
            if not isinstance(raw, LList) or not raw:
                r.err(
                    body.lines[key],
                    f"{key} of {where} must be a non-empty list",
                    f"e.g. {key}: [none]",
                )
                continue
            values = []
            for item in raw:
                resolved, _ = b.value(item, body.lines[key])
                values.append(resolved)
            if fdef is not None and fdef.type == "choice":
                for item in values:
                    if item not in fdef.choices:
                        r.err(
                            body.lines[key],
                            f"{key} of {where} lists {item!r}, which is not a choice of {ref.text}",
                            "choices: " + ", ".join(fdef.choices),
                        )
            if key == "one_of":
                one_of = tuple(values)
            else:
                not_one_of = tuple(values)
    must_be = None
    has_must_be = "must_be" in body
    if has_must_be:
        if ftype in ("number", "temperature"):
            # "4 mL" or $param with a unit: compare in the field's unit, as min/max do.
            must_be = b.quantity(
                body["must_be"], body.lines["must_be"], unit, f"must_be of {where}"
            )
        else:
            must_be, _ = b.value(body["must_be"], body.lines["must_be"])
        if ftype == "yes_no" and not isinstance(must_be, bool):
            r.err(
                body.lines["must_be"],
                f"must_be of {where} must be true or false for the yes/no field {ref.text}",
                "allowed: true, false",
            )
        if ftype == "choice" and fdef is not None and must_be not in fdef.choices:
            r.err(
                body.lines["must_be"],
                f"must_be of {where} is {must_be!r}, not a choice of {ref.text}",
                "choices: " + ", ".join(fdef.choices),
            )
    compare = other = None
    for key, op in (
        ("equals_field", "equals"),
        ("at_most_field", "at_most"),
        ("at_least_field", "at_least"),
    ):
        if key in body:
            if compare is not None:
                r.err(
                    body.lines[key],
                    f"{where} compares with more than one field",
                    "give one of equals_field, at_most_field, at_least_field",
                )
                continue
            got_other = b.field_ref(body[key], body.lines[key], f"{key} of {where}")
            if got_other is not None:
                compare, other = op, got_other[0]
                odef = got_other[1]
                if (
                    op != "equals"
                    and odef is not None
                    and fdef is not None
                    and odef.unit != fdef.unit
                ):
                    r.err(
                        body.lines[key],
                        f"{where} compares {ref.text} ({fdef.unit}) with {other.text} ({odef.unit})",
                        "compare fields with the same unit",
                    )
    return FieldSpec(ref, unit, low, high, one_of, not_one_of, must_be, has_must_be, compare, other)


def check_cycles(b: _ChecklistBuilder, rules: list[Rule]) -> None:
    graph: dict[str, set[str]] = {}
    line_of: dict[tuple[str, str], int] = {}
    for rule in rules:
        if isinstance(rule.spec, OrderSpec):
            seq = rule.spec.steps
            for first, then in zip(seq, seq[1:], strict=False):
                graph.setdefault(first, set()).add(then)
                line_of.setdefault((first, then), rule.line)
    cycle = _find_cycle(graph)
    if cycle:
        b.r.err(
            line_of.get((cycle[0], cycle[1]), 1),
            "the order rules form a cycle: " + " before ".join(cycle),
            "no step can come before itself; remove or reverse one order",
        )


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None
