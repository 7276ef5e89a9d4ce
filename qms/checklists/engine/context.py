"""What every check reads: a unit's records by step, its readings, and the `when` tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from qms.checklists.engine.messages import render
from qms.checklists.facts import Finding, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import UNIT_FIELDS, Checklist, Condition, FieldRef, Rule, Test
from qms.checklists.quantities import format_quantity

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
        self._by_equipment: dict[str, tuple[list[timedelta], list[float]]] = {}
        for equipment, items in grouped.items():
            items.sort(key=lambda r: (r.at, r.temperature_c))
            self._by_equipment[equipment] = (
                [r.at - _EPOCH for r in items],
                [float(r.temperature_c) for r in items],
            )

    def series(self, equipment: str) -> tuple[list[timedelta], list[float]] | None:
        """(times, temperatures) in time order; times as distances from one UTC instant,
        as the context's `when` has them (cheap to compare and to bisect)."""
        return self._by_equipment.get(equipment)


class _Ctx:
    __slots__ = (
        "unit",
        "by_step",
        "records",
        "readings",
        "now",
        "complete",
        "out",
        "profile",
        "unknown",
        "world",
        "when",
        "recorded",
    )

    def __init__(
        self, unit, by_step, records, readings, now, complete, profile, when=None, recorded=None
    ):
        self.unit: UnitFacts = unit
        self.by_step: dict[str, list[StepFacts]] = by_step
        self.records: list[StepFacts] = records
        self.readings: ReadingIndex | None = readings
        self.now: datetime | None = now
        self.complete: bool = complete
        self.profile: str | None = profile
        self.out: list[Finding] = []
        # While a rule with conditions is judged (judging.py in the engine, `_worlds`): the
        # condition tests that read a value not recorded ({key: field}), and the outcome
        # assumed for each in the world being tried (absent: the test fails). None when no
        # caller asks: a test on a missing value then simply fails.
        self.unknown: dict[tuple[int, int], str] | None = None
        self.world: dict[tuple[int, int], bool] | None = None
        # Each record's time as a timedelta from one UTC instant, by id() of the record:
        # two of them compare without asking offset objects (an aware datetime does).
        if when is None:
            when = {id(rec): rec.at - _EPOCH for rec in records}
        self.when: dict[int, timedelta] = when
        # The steps recorded at all (the keys of by_step), as a set that is hashed once.
        self.recorded: frozenset[str] = frozenset(by_step) if recorded is None else recorded


def _is_number(value: Any) -> bool:
    # type() rather than isinstance: bool is an int subclass and must not count (hot path).
    kind = type(value)
    return (kind is float and math.isfinite(value)) or kind is int


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


def _read_from(ctx: _Ctx, ref: FieldRef, context: tuple[StepFacts, ...]) -> int:
    """Which record `_value_of` reads `ref` from (its id(); 0 for the unit or no record)."""
    if ref.step is None:
        return 0
    for rec in context:
        if rec.step == ref.step:
            return id(rec)
    records = ctx.by_step.get(ref.step)
    return id(records[-1]) if records else 0


def _same(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:  # the usual case: two words
        return a == b
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
        # `present` is decided whatever is recorded; the others cannot be decided on a
        # value that was not recorded (see `_worlds` in judging).
        decided = op == "present"
        if op == "equals":
            if type(expected) is str:  # a word: a recorded word is compared directly
                ok = lambda v, e=expected: (  # noqa: E731
                    v == e if type(v) is str else v is not None and _same(v, e)
                )
            else:
                ok = lambda v, e=expected: v is not None and _same(v, e)  # noqa: E731
            tests.append((ref, ok, decided))
        elif op == "one_of":
            if all(type(x) is str for x in expected):  # words: a recorded word is looked up
                ok = lambda v, e=expected, w=frozenset(expected): (  # noqa: E731
                    v in w if type(v) is str else v is not None and any(_same(v, x) for x in e)
                )
            else:
                ok = lambda v, e=expected: v is not None and any(_same(v, x) for x in e)  # noqa: E731
            tests.append((ref, ok, decided))
        elif op == "at_least":
            tests.append((ref, lambda v, e=expected: _is_number(v) and v >= e, decided))
        elif op == "at_most":
            tests.append((ref, lambda v, e=expected: _is_number(v) and v <= e, decided))
        else:  # present
            tests.append((ref, lambda v, e=expected: (v is not None and v != "") == e, decided))
    tests = [(ref, ref.step, ref.name, ok, decided, id(ok)) for ref, ok, decided in tests]

    def cond(ctx: _Ctx, context: tuple[StepFacts, ...]) -> bool:
        for ref, step, name, ok, decided, tag in tests:
            if step is not None and context and context[0].step == step:
                value = context[0].fields.get(name)  # the usual case: the record judged
            else:
                value = _value_of(ctx, ref, context)
            if value is None or value == "":
                if not decided:
                    unknown = ctx.unknown
                    if unknown is None:
                        return False
                    # Not recorded: the test holds only in the worlds that assume it does.
                    key = (tag, _read_from(ctx, ref, context))
                    unknown[key] = ref.text
                    world = ctx.world
                    if world is None or not world.get(key, False):
                        return False
                    continue
            if not ok(value):
                return False
        return True

    return cond


def _show(value: Any, unit: str | None = None) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if _is_number(value):
        return format_quantity(float(value), unit)
    return str(value)


def _record_ids(records: Iterable[StepFacts]) -> tuple[str, ...]:
    """The ids of the records a finding concerns, once each, in the order given."""
    return tuple(dict.fromkeys(r.record_id for r in records if r.record_id is not None))


def _jsonable(value: Any) -> Any:
    """A field value as a finding parameter: JSON as it is, anything else as its text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _emit(
    ctx: _Ctx,
    cl: Checklist,
    rule: Rule,
    steps: tuple[str, ...],
    code: str,
    params: dict[str, Any],
    limit: str | None,
    actual: str | None,
    records: Iterable[StepFacts] = (),
) -> None:
    """Add one finding of `rule` for the unit being judged; its words come from code + params."""
    ctx.out.append(
        Finding(
            ctx.unit.id,
            rule.kind,
            rule.id,
            rule.severity,
            steps,
            render(code, params, checklist=cl),
            limit,
            actual,
            code,
            params,
            _record_ids(records),
        )
    )
