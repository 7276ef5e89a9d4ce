"""The interchange file: every bad line named with its number; writing and reading round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from qms.checklists.facts import EquipmentFacts, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import Registry
from qms.records.interchange import (
    InterchangeError,
    read_interchange,
    validate_against,
    write_interchange,
)

UNIT = '{"type": "unit", "id": "U-1", "checklist": "kymriah", "site": "SH-01", "profile": "us", "coi_id": "CHG123426ABC123", "patient": "P-0042", "attributes": {"age_years": 34}}'
STEP = '{"type": "step", "unit": "U-1", "step": "thaw_end", "at": "2026-10-02T09:30:00+08:00", "by": "li.na", "witness": "wang.wei", "fields": {"temperature_c": 21}}'
EQUIPMENT = '{"type": "equipment", "id": "LN2-01", "kind": "ln2_vapour", "site": "SH-01"}'
READING = '{"type": "reading", "equipment": "LN2-01", "at": "2026-10-02T08:00:00+08:00", "temperature_c": -151}'


def test_reads_the_design_example() -> None:
    ix = read_interchange([UNIT, STEP, EQUIPMENT, READING], source="f.jsonl")
    assert ix.units[0] == UnitFacts(
        "U-1", "kymriah", "SH-01", "us", "CHG123426ABC123", "P-0042", {"age_years": 34}
    )
    step = ix.steps[0]
    assert step.at == datetime(2026, 10, 2, 1, 30, tzinfo=UTC) and step.witness == "wang.wei"
    assert ix.readings[0].temperature_c == -151.0
    assert [
        ix.line_of(ix.units[0]),
        ix.line_of(step),
        ix.line_of(ix.equipment[0]),
        ix.line_of(ix.readings[0]),
    ] == [1, 2, 3, 4]


def test_times_keep_their_offset_and_share_one_offset_object_per_offset() -> None:
    lines = [UNIT]
    for k, offset in enumerate(["+08:00", "+08:00", "-05:30", "Z", "+08:00", "-05:30"]):
        lines.append(STEP.replace("2026-10-02T09:30:00+08:00", f"2026-10-02T09:3{k}:00{offset}"))
    ix = read_interchange(lines, source="f.jsonl")
    shown = [s.at.isoformat() for s in ix.steps]
    assert shown == [
        "2026-10-02T09:30:00+08:00",
        "2026-10-02T09:31:00+08:00",
        "2026-10-02T09:32:00-05:30",
        "2026-10-02T09:33:00+00:00",
        "2026-10-02T09:34:00+08:00",
        "2026-10-02T09:35:00-05:30",
    ]
    # What the engine's cheap subtraction relies on (engine/records.py, `distances`).
    zones = [s.at.tzinfo for s in ix.steps]
    assert zones[0] is zones[1] is zones[4] and zones[2] is zones[5]
    assert ix.steps[1].at - ix.steps[0].at == timedelta(minutes=1)
    assert ix.steps[2].at - ix.steps[0].at == timedelta(hours=13, minutes=32)


def test_every_bad_line_is_reported_with_its_number() -> None:
    lines = [
        UNIT,
        "",
        '{"type": "stepp", "unit": "U-1"}',
        STEP.replace("+08:00", ""),
        STEP.replace('"U-1"', '"U-9"'),
        "{not json",
        READING.replace("LN2-01", "LN2-99"),
        STEP.replace('"by"', '"performed_by"'),
        READING.replace("-151", '"cold"'),
        UNIT,
    ]
    with pytest.raises(InterchangeError) as info:
        read_interchange(lines, source="in.jsonl")
    problems = info.value.problems
    assert problems == [
        'in.jsonl:3: unknown type "stepp"; allowed: unit, step, equipment, reading',
        "in.jsonl:4: at '2026-10-02T09:30:00' has no UTC offset; write e.g. 2026-10-02T09:30:00+08:00 or 2026-10-02T09:30:00Z",
        "in.jsonl:5: unknown unit 'U-9'; define it with a unit line",
        "in.jsonl:6: bad JSON: Expecting property name enclosed in double quotes at column 2",
        "in.jsonl:7: unknown equipment 'LN2-99'; define it with an equipment line",
        "in.jsonl:8: unknown key performed_by in a step line; allowed: type, unit, step, at, by, witness, fields, by_role, witness_role, record_id, corrects, reason, recorded_at, recorded_by",
        'in.jsonl:9: temperature_c must be a number, got "cold"',
        "in.jsonl:10: unit 'U-1' is already defined at line 1",
    ]


def test_nan_and_non_objects_are_bad_json() -> None:
    with pytest.raises(InterchangeError) as info:
        read_interchange([READING.replace("-151", "NaN"), "[1, 2]"])
    assert info.value.problems[0].startswith("<input>:1: bad JSON")
    assert info.value.problems[1] == "<input>:2: each line must be one JSON object"


def test_validate_against_the_checklists() -> None:
    registry = Registry.from_directory()
    lines = [
        UNIT,
        UNIT.replace('"U-1"', '"U-2"').replace('"kymriah"', '"kymria"'),
        UNIT.replace('"U-1"', '"U-3"').replace('"us"', '"uk"'),
        STEP.replace("thaw_end", "reconstitution"),
        STEP,
    ]
    problems = validate_against(read_interchange(lines, source="f"), registry)
    assert problems[0].startswith("f:2: unit 'U-2': unknown checklist 'kymria'")
    assert problems[1].startswith("f:3: unit 'U-3': unknown profile 'uk'")
    assert problems[2].startswith(
        "f:4: unknown step 'reconstitution' for unit 'U-1' (checklist kymriah 2026.3); steps: prescription_check"
    )
    assert len(problems) == 3


def test_write_then_read_round_trips() -> None:
    zone = timezone(timedelta(hours=8))
    unit = UnitFacts(
        "U-1", "kymriah", "SH-01", "us", "CH1", "P-1", {"age_years": 34}, "2026.1", "complete"
    )
    steps = [
        StepFacts(
            "U-1",
            "thaw_end",
            datetime(2026, 10, 2, 9, 30, tzinfo=zone),
            "li.na",
            "wang.wei",
            {"temperature_c": 37},
            "nurse",
            "nurse",
            "R-1",
        ),
        StepFacts(
            "U-1",
            "thaw_end",
            datetime(2026, 10, 2, 9, 31, tzinfo=zone),
            "li.na",
            None,
            {"temperature_c": 36},
            record_id="R-2",
            corrects="R-1",
            reason="time",
        ),
    ]
    equipment = [EquipmentFacts("LN2-01", "ln2_vapour", "SH-01")]
    readings = [ReadingFacts("LN2-01", datetime(2026, 10, 2, 8, 0, tzinfo=zone), -151.5)]
    lines = list(write_interchange([unit], steps, equipment, readings))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert json.loads(lines[2])["at"] == "2026-10-02T09:30:00+08:00"
    back = read_interchange(lines)
    assert (
        back.units == [unit]
        and back.steps == steps
        and back.equipment == equipment
        and back.readings == readings
    )


def test_writer_refuses_times_without_offset() -> None:
    step = StepFacts("U-1", "thaw_end", datetime(2026, 10, 2, 9, 30), "li.na", None, {})
    with pytest.raises(ValueError, match="no UTC offset"):
        list(write_interchange([], [step]))
