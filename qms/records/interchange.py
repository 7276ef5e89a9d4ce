"""The interchange file (JSON Lines, docs/interchange.md): a pure reader and writer, no database.

One object a line: `unit`, `step`, `equipment`, `reading`. Times carry a UTC offset.
Every bad line is reported, each as "source:line: what is wrong", so that a file from
another site can be fixed in one pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any

from qms.checklists.facts import (
    UNIT_STATUSES,
    EquipmentFacts,
    ReadingFacts,
    StepFacts,
    UnitFacts,
)

if TYPE_CHECKING:
    from qms.checklists.language import Registry

UNIT_KEYS = {
    "type": True,
    "id": True,
    "checklist": True,
    "site": True,
    "profile": False,
    "coi_id": False,
    "patient": False,
    "attributes": False,
    "checklist_version": False,
    "status": False,
}
STEP_KEYS = {
    "type": True,
    "unit": True,
    "step": True,
    "at": True,
    "by": False,
    "witness": False,
    "fields": False,
    "by_role": False,
    "witness_role": False,
    "record_id": False,
    "corrects": False,
    "reason": False,
    "recorded_at": False,
    "recorded_by": False,
}
EQUIPMENT_KEYS = {"type": True, "id": True, "kind": True, "site": True}
READING_KEYS = {"type": True, "equipment": True, "at": True, "temperature_c": True}
TYPES = {"unit": UNIT_KEYS, "step": STEP_KEYS, "equipment": EQUIPMENT_KEYS, "reading": READING_KEYS}


class InterchangeError(Exception):
    """Bad lines in an interchange file; `problems` has one "source:line: message" each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass
class Interchange:
    units: list[UnitFacts] = field(default_factory=list)
    steps: list[StepFacts] = field(default_factory=list)
    equipment: list[EquipmentFacts] = field(default_factory=list)
    readings: list[ReadingFacts] = field(default_factory=list)
    source: str = "<input>"
    # The line each item was read from, by the item's identity (facts are plain values,
    # so two equal readings on two lines stay two items with two lines).
    _lines: dict[int, int] = field(default_factory=dict, repr=False)

    def line_of(self, item: object) -> int | None:
        return self._lines.get(id(item))

    def steps_of(self, unit_id: str) -> list[StepFacts]:
        return [s for s in self.steps if s.unit == unit_id]

    def readings_by_equipment(self) -> dict[str, list[ReadingFacts]]:
        out: dict[str, list[ReadingFacts]] = {}
        for reading in self.readings:
            out.setdefault(reading.equipment, []).append(reading)
        return out


# The shape of every id in the file (units, records, steps, people, sites, equipment): no
# spaces, no markup, as the database columns hold them on SQLite and PostgreSQL alike.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#/!@+-]*\Z")
ID_SHAPE = "letters, digits and . _ : # / ! @ + - (starting with a letter or digit)"
# The longest value each key may hold: the width of its column.
MAX_LENGTH = {
    ("unit", "id"): 64,
    ("unit", "checklist"): 64,
    ("unit", "site"): 32,
    ("unit", "profile"): 32,
    ("unit", "coi_id"): 64,
    ("unit", "patient"): 64,
    ("unit", "checklist_version"): 32,
    ("unit", "status"): 16,
    ("step", "unit"): 64,
    ("step", "step"): 64,
    ("step", "by"): 64,
    ("step", "witness"): 64,
    ("step", "by_role"): 32,
    ("step", "witness_role"): 32,
    ("step", "record_id"): 96,
    ("step", "corrects"): 96,
    ("step", "recorded_by"): 64,
    ("equipment", "id"): 64,
    ("equipment", "kind"): 32,
    ("equipment", "site"): 32,
    ("reading", "equipment"): 64,
}
# Free text (a reason, a text field) and the values inside fields and attributes.
MAX_TEXT = 4000
MAX_DEPTH = 16  # of lists and objects inside fields and attributes
MAX_EXACT_INTEGER = 2**53  # beyond it a number is not kept exactly (JSON readers, floats)
MAX_PROBLEMS_SHOWN = 50


def shown_problems(problems: list[str], limit: int = MAX_PROBLEMS_SHOWN) -> list[str]:
    """The first `limit` problems, and a line counting the rest: what a command prints."""
    if len(problems) <= limit:
        return list(problems)
    rest = len(problems) - limit
    return [*problems[:limit], f"… and {rest} more problem{'s' if rest != 1 else ''}"]


def _bad_text(value: str) -> str | None:
    """Why a text cannot be stored as it is, or None."""
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


# One offset object per UTC offset, shared by every time read: the engine compares and
# subtracts record times, and two aware times whose tzinfo is the same object do that
# on their clock fields alone (42 ns), where distinct objects are each asked for their
# offset (about 540 ns). `fromisoformat` makes a new object for every time it parses.
_ZONES: dict[timezone, timezone] = {}
_MAX_ZONES = 4096  # offsets in real files are few; a hostile file cannot grow it without end


def _shared_zone(moment: datetime) -> datetime:
    zone = moment.tzinfo
    shared = _ZONES.get(zone)  # type: ignore[arg-type]
    if shared is None:
        if type(zone) is timezone and len(_ZONES) < _MAX_ZONES:
            _ZONES[zone] = zone
        return moment
    return moment if shared is zone else moment.replace(tzinfo=shared)


def _time(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an ISO 8601 date-time text, got {_shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{key} {_shown(value)} is not an ISO 8601 date-time (e.g. 2026-10-02T09:30:00+08:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value!r} has no UTC offset; write e.g. {value}+08:00 or {value}Z")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{key} {value!r} is outside the years 1 to 9999 in UTC") from None
    return _shared_zone(moment)


def _shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: short, whatever its size."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return f"a number of {len(str(abs(value)))} digits"
    text = json.dumps(value, ensure_ascii=True) if not isinstance(value, dict | list) else None
    if text is None:
        return "a JSON object" if isinstance(value, dict) else "a JSON list"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(obj: Mapping[str, Any], key: str, *, required: bool, kind: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be non-empty text, got {_shown(value)}")
    bad = _bad_text(value)
    if bad:
        raise ValueError(f"{key} {bad}")
    limit = MAX_LENGTH.get((kind, key), MAX_TEXT)
    if len(value) > limit:
        raise ValueError(f"{key} is {len(value)} characters long; at most {limit}")
    # The patient reference's own shape is the importer's to judge (it says "never a name").
    if (kind, key) in MAX_LENGTH and key != "patient" and not ID_RE.match(value):
        raise ValueError(f"{key} {_shown(value)} may use only {ID_SHAPE}")
    return value


def _check_value(value: Any, where: str, depth: int = 1) -> None:
    """A value inside fields or attributes: text, a number kept exactly, true/false,
    null, or lists and objects of these, not nested too deep."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        bad = _bad_text(value)
        if bad:
            raise ValueError(f"{where} {bad}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"{where} is {len(value)} characters long; at most {MAX_TEXT}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_EXACT_INTEGER:
            raise ValueError(f"{where} is {_shown(value)}: too large to be kept exactly")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is a number too large to be kept")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for name, item in value.items():
            bad = _bad_text(name)
            if bad:
                raise ValueError(f"a key of {where} {bad}")
            _check_value(item, f"{where}.{name}", depth + 1)


def _object(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a JSON object, got {_shown(value)}")
    _check_value(value, key)
    return value


def _parse_line(obj: Any) -> UnitFacts | StepFacts | EquipmentFacts | ReadingFacts:
    if not isinstance(obj, dict):
        raise ValueError("each line must be one JSON object")
    kind = obj.get("type")
    if kind not in TYPES:
        raise ValueError(f"unknown type {_shown(kind)}; allowed: {', '.join(TYPES)}")
    keys = TYPES[kind]
    unknown = sorted(k for k in obj if k not in keys)
    if unknown:
        raise ValueError(
            f"unknown key {', '.join(unknown)} in a {kind} line; allowed: {', '.join(keys)}"
        )
    missing = [k for k, needed in keys.items() if needed and obj.get(k) is None]
    if missing:
        raise ValueError(f"a {kind} line needs {', '.join(missing)}")
    if kind == "unit":
        status = _text(obj, "status", required=False, kind="unit")
        if status is not None and status not in UNIT_STATUSES:
            raise ValueError(f"unknown status {status!r}; allowed: {', '.join(UNIT_STATUSES)}")
        return UnitFacts(
            id=_text(obj, "id", required=True, kind="unit"),
            checklist=_text(obj, "checklist", required=True, kind="unit"),
            site=_text(obj, "site", required=True, kind="unit"),
            profile=_text(obj, "profile", required=False, kind="unit"),
            coi_id=_text(obj, "coi_id", required=False, kind="unit"),
            patient=_text(obj, "patient", required=False, kind="unit"),
            attributes=_object(obj, "attributes"),
            checklist_version=_text(obj, "checklist_version", required=False, kind="unit"),
            status=status,
        )
    if kind == "step":
        return StepFacts(
            unit=_text(obj, "unit", required=True, kind="step"),
            step=_text(obj, "step", required=True, kind="step"),
            at=_time(obj["at"], "at"),
            by=_text(obj, "by", required=False, kind="step"),
            witness=_text(obj, "witness", required=False, kind="step"),
            fields=_object(obj, "fields"),
            by_role=_text(obj, "by_role", required=False, kind="step"),
            witness_role=_text(obj, "witness_role", required=False, kind="step"),
            record_id=_text(obj, "record_id", required=False, kind="step"),
            corrects=_text(obj, "corrects", required=False, kind="step"),
            reason=_text(obj, "reason", required=False, kind="step"),
            recorded_at=_time(obj["recorded_at"], "recorded_at")
            if obj.get("recorded_at") is not None
            else None,
            recorded_by=_text(obj, "recorded_by", required=False, kind="step"),
        )
    if kind == "equipment":
        return EquipmentFacts(
            id=_text(obj, "id", required=True, kind="equipment"),
            kind=_text(obj, "kind", required=True, kind="equipment"),
            site=_text(obj, "site", required=True, kind="equipment"),
        )
    temperature = obj["temperature_c"]
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
    ):
        raise ValueError(f"temperature_c must be a number, got {_shown(temperature)}")
    return ReadingFacts(
        equipment=_text(obj, "equipment", required=True, kind="reading"),
        at=_time(obj["at"], "at"),
        temperature_c=float(temperature),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_interchange(lines: Iterable[str], *, source: str = "<input>") -> Interchange:
    """Read every line; raise InterchangeError listing all bad lines. Blank lines are skipped."""
    result = Interchange(source=source)
    problems: list[tuple[int, str]] = []
    unit_lines: dict[str, int] = {}
    equipment_lines: dict[str, int] = {}
    record_lines: dict[str, int] = {}
    for number, raw in _numbered(lines, source):
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            problems.append(
                (number, f"{source}:{number}: bad JSON: {exc.msg} at column {exc.colno}")
            )
            continue
        except RecursionError:
            problems.append(
                (number, f"{source}:{number}: nested too deeply (at most {MAX_DEPTH} levels)")
            )
            continue
        except ValueError as exc:  # also a number of more digits than Python reads
            problems.append((number, f"{source}:{number}: bad JSON: {str(exc).splitlines()[0]}"))
            continue
        try:
            item = _parse_line(obj)
        except ValueError as exc:
            problems.append((number, f"{source}:{number}: {exc}"))
            continue
        result._lines[id(item)] = number
        if isinstance(item, UnitFacts):
            if item.id in unit_lines:
                problems.append(
                    (
                        number,
                        f"{source}:{number}: unit {item.id!r} is already defined at line {unit_lines[item.id]}",
                    )
                )
                continue
            unit_lines[item.id] = number
            result.units.append(item)
        elif isinstance(item, StepFacts):
            if item.record_id is not None:
                if item.record_id in record_lines:
                    problems.append(
                        (
                            number,
                            f"{source}:{number}: record_id {item.record_id!r} is already used at line {record_lines[item.record_id]}",
                        )
                    )
                    continue
                record_lines[item.record_id] = number
            result.steps.append(item)
        elif isinstance(item, EquipmentFacts):
            if item.id in equipment_lines:
                problems.append(
                    (
                        number,
                        f"{source}:{number}: equipment {item.id!r} is already defined at line {equipment_lines[item.id]}",
                    )
                )
                continue
            equipment_lines[item.id] = number
            result.equipment.append(item)
        else:
            result.readings.append(item)
    # References may point forward (a file need not list units first).
    for step in result.steps:
        if step.unit not in unit_lines:
            problems.append(
                _at(
                    source,
                    result.line_of(step),
                    f"unknown unit {step.unit!r}; define it with a unit line",
                )
            )
        if step.corrects is not None and step.corrects not in record_lines:
            problems.append(
                _at(source, result.line_of(step), f"corrects unknown record_id {step.corrects!r}")
            )
    for reading in result.readings:
        if reading.equipment not in equipment_lines:
            problems.append(
                _at(
                    source,
                    result.line_of(reading),
                    f"unknown equipment {reading.equipment!r}; define it with an equipment line",
                )
            )
    if problems:
        problems.sort(key=lambda p: p[0])
        raise InterchangeError([text for _, text in problems])
    return result


def _numbered(lines: Iterable[str], source: str) -> Iterator[tuple[int, str]]:
    """The lines with their numbers; a file that is not UTF-8 text is one clear problem."""
    iterator = iter(lines)
    number = 0
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise InterchangeError(
                [
                    f"{source}: the file is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                    f"after line {number} cannot be read); save it as UTF-8 JSON Lines"
                ]
            ) from None
        number += 1
        yield number, raw


def _at(source: str, line: int | None, message: str) -> tuple[int, str]:
    return (line or 0, f"{source}:{line}: {message}")


def validate_against(interchange: Interchange, registry: Registry) -> list[str]:
    """Problems that need the checklists: unknown checklist, version, profile, or step."""
    problems: list[tuple[int, str]] = []
    source = interchange.source
    checklist_of: dict[str, Any] = {}
    for unit in interchange.units:
        line = interchange.line_of(unit) or 0
        try:
            checklist_of[unit.id] = registry.get(unit.checklist, unit.checklist_version)
        except KeyError as exc:
            problems.append((line, f"{source}:{line}: unit {unit.id!r}: {exc.args[0]}"))
        if unit.profile is not None and unit.profile not in registry.profiles:
            problems.append(
                (
                    line,
                    f"{source}:{line}: unit {unit.id!r}: unknown profile {unit.profile!r}; profiles: {', '.join(sorted(registry.profiles))}",
                )
            )
    for step in interchange.steps:
        line = interchange.line_of(step) or 0
        checklist = checklist_of.get(step.unit)
        if checklist is not None and step.step not in checklist.steps:
            problems.append(
                (
                    line,
                    f"{source}:{line}: unknown step {step.step!r} for unit {step.unit!r} (checklist {checklist.id} {checklist.version}); steps: {', '.join(checklist.steps)}",
                )
            )
    problems.sort(key=lambda p: p[0])
    return [p for _, p in problems]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"time {moment} has no UTC offset; the interchange format needs one")
    return moment.isoformat()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _dump(obj: dict[str, Any]) -> str:
    return (
        json.dumps(
            {k: v for k, v in obj.items() if v is not None}, ensure_ascii=False, allow_nan=False
        )
        + "\n"
    )


def write_interchange(
    units: Iterable[UnitFacts],
    steps: Iterable[StepFacts],
    equipment: Iterable[EquipmentFacts] = (),
    readings: Iterable[ReadingFacts] = (),
) -> Iterator[str]:
    """One JSON object per line, each ending in "\\n": units, equipment, steps, readings."""
    for unit in units:
        yield _dump(
            {
                "type": "unit",
                "id": unit.id,
                "checklist": unit.checklist,
                "checklist_version": unit.checklist_version,
                "site": unit.site,
                "profile": unit.profile,
                "coi_id": unit.coi_id,
                "patient": unit.patient,
                "status": unit.status,
                "attributes": _json_value(dict(unit.attributes)) if unit.attributes else None,
            }
        )
    for item in equipment:
        yield _dump({"type": "equipment", "id": item.id, "kind": item.kind, "site": item.site})
    for step in steps:
        yield _dump(
            {
                "type": "step",
                "unit": step.unit,
                "step": step.step,
                "at": _iso(step.at),
                "by": step.by,
                "by_role": step.by_role,
                "witness": step.witness,
                "witness_role": step.witness_role,
                "fields": _json_value(dict(step.fields)),
                "record_id": step.record_id,
                "corrects": step.corrects,
                "reason": step.reason,
                "recorded_at": _iso(step.recorded_at) if step.recorded_at is not None else None,
                "recorded_by": step.recorded_by,
            }
        )
    for reading in readings:
        yield _dump(
            {
                "type": "reading",
                "equipment": reading.equipment,
                "at": _iso(reading.at),
                "temperature_c": reading.temperature_c,
            }
        )
