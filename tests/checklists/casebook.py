"""Worked examples of every shipped checklist: one compliant file, one violation per rule.

Layout (docs/checklists.md, "Examples and tests"):

    tests/checklists/examples/<checklist>/compliant.jsonl       units with no findings at all
    tests/checklists/examples/<checklist>/violations/<rule>.yaml   compliant + one change

A violation file names the rule by its local name (`thaw_to_infusion`, or for a step's
own rules `identity_check.witness`) and changes the compliant file:

    why: The bag was infused 45 minutes after thaw completion.
    unit: K-US-1                 # which unit of compliant.jsonl (default: the first)
    also: [other_rule]           # other rules the change is expected to break too
    now: "2026-10-02T10:00:00+08:00"   # evaluate at this time (default: none)
    complete: false              # default: the unit's status
    change:
      - step: infusion_end       # change the first (or nth: 2) record of this step
        set: {at: "2026-10-02T09:57:00+08:00"}
        fields: {volume_ml: 40}  # merged; null removes a field
      - step: disposal
        remove: true
      - add: {step: thaw_start, at: "...", by: li.na, by_role: nurse, fields: {}}
      - unit: {profile: eu}

The rules every step implies (`<step>.done`, `.role`, `.witness`, `.record`, and the
checklist's `profile` rule) get a violation derived mechanically from the compliant
file when no file is written for them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from qms.checklists.engine import ReadingIndex, evaluate
from qms.checklists.facts import Finding
from qms.checklists.language import (
    ROLES,
    Checklist,
    EverySpec,
    FieldSpec,
    OrderSpec,
    Registry,
    WindowSpec,
)
from qms.records.interchange import Interchange, read_interchange, validate_against

EXAMPLES_DIR = Path(__file__).parent / "examples"
PATCH_KEYS = {"why", "unit", "also", "now", "complete", "change"}


@dataclass
class Case:
    checklist: str
    rule: str  # full id
    source: str  # the file, or "derived from compliant.jsonl"
    lines: list[dict[str, Any]]
    unit: str
    expect: frozenset[str]  # rules allowed besides `rule`
    now: datetime | None
    complete: bool | None
    why: str


def compliant_lines(checklist_id: str) -> list[dict[str, Any]]:
    path = EXAMPLES_DIR / checklist_id / "compliant.jsonl"
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def to_interchange(lines: list[dict[str, Any]], source: str) -> Interchange:
    return read_interchange([json.dumps(line) for line in lines], source=source)


def findings_for(
    registry: Registry,
    interchange: Interchange,
    unit_id: str,
    *,
    now: datetime | None = None,
    complete: bool | None = None,
) -> list[Finding]:
    problems = validate_against(interchange, registry)
    assert not problems, problems
    unit = next(u for u in interchange.units if u.id == unit_id)
    checklist = registry.get(unit.checklist, unit.checklist_version)
    readings = ReadingIndex(interchange.readings)
    return evaluate(
        checklist, unit, interchange.steps_of(unit_id), readings, now=now, complete=complete
    )


def _record(
    lines: list[dict[str, Any]], unit: str, step: str, nth: int, where: str
) -> dict[str, Any]:
    matches = [
        line
        for line in lines
        if line.get("type") == "step" and line["unit"] == unit and line["step"] == step
    ]
    if len(matches) < nth:
        raise AssertionError(f"{where}: unit {unit} has {len(matches)} {step} records, not {nth}")
    return matches[nth - 1]


def apply_change(
    lines: list[dict[str, Any]], unit: str, change: dict[str, Any], where: str
) -> None:
    if "add" in change:
        line = {"type": "step", "unit": unit, **change["add"]}
        if line["type"] != "step":
            line.pop("unit")
        lines.append(line)
        return
    if "unit" in change:
        target = next(line for line in lines if line.get("type") == "unit" and line["id"] == unit)
        for key, value in change["unit"].items():
            if key == "attributes":
                target.setdefault("attributes", {}).update(value)
            elif value is None:
                target.pop(key, None)
            else:
                target[key] = value
        return
    if "step" not in change:
        raise AssertionError(f"{where}: a change is one of step:, add:, unit: ({change})")
    record = _record(lines, unit, change["step"], change.get("nth", 1), where)
    if change.get("remove"):
        lines.remove(record)
        return
    for key, value in change.get("set", {}).items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    for key, value in change.get("fields", {}).items():
        if value is None:
            record.setdefault("fields", {}).pop(key, None)
        else:
            record.setdefault("fields", {})[key] = value
    unknown = set(change) - {"step", "nth", "set", "fields", "remove"}
    if unknown:
        raise AssertionError(f"{where}: unknown keys {sorted(unknown)} in a step change")


def _units(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("type") == "unit"]


def file_case(checklist: Checklist, path: Path) -> Case:
    patch = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = str(path)
    unknown = set(patch) - PATCH_KEYS
    if unknown:
        raise AssertionError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(PATCH_KEYS)}"
        )
    if not patch.get("why"):
        raise AssertionError(f"{where}: say `why:` the change breaks the rule")
    lines = copy.deepcopy(compliant_lines(checklist.id))
    unit = patch.get("unit") or _units(lines)[0]["id"]
    for change in patch.get("change") or []:
        apply_change(lines, unit, change, where)
    local = path.stem
    also = frozenset(
        a if a.startswith(checklist.id + ".") else f"{checklist.id}.{a}"
        for a in patch.get("also") or []
    )
    now = datetime.fromisoformat(patch["now"]) if patch.get("now") else None
    return Case(
        checklist.id,
        f"{checklist.id}.{local}",
        where,
        lines,
        unit,
        also,
        now,
        patch.get("complete"),
        patch["why"],
    )


def _related_rules(checklist: Checklist, step: str) -> frozenset[str]:
    """Rules that a step's absence may also break: orders and windows through it,
    comparisons that read one of its fields, and rules (or steps) whose conditions read one
    of its fields, which then cannot be shown to hold."""
    out = set()
    for rule in checklist.rules:
        if rule.when is not None and any(t.ref.step == step for t in rule.when.field_tests):
            out.add(rule.id)
        spec = rule.spec
        if isinstance(spec, OrderSpec) and step in spec.steps:
            out.add(rule.id)
        elif isinstance(spec, WindowSpec | EverySpec) and step in (spec.start, spec.end):
            out.add(rule.id)
        elif isinstance(spec, FieldSpec) and spec.other is not None and spec.other.step == step:
            out.add(rule.id)
    return frozenset(out)


def derived_case(checklist: Checklist, rule_id: str) -> Case | None:
    """A mechanical violation of a rule a step implies, or None if it cannot be derived."""
    rule = checklist.rule(rule_id)
    base = compliant_lines(checklist.id)
    source = f"derived from examples/{checklist.id}/compliant.jsonl"
    if rule.step is None and rule.name == "profile":
        lines = copy.deepcopy(base)
        unit = _units(lines)[0]
        unit.pop("profile", None)
        return Case(
            checklist.id,
            rule_id,
            source,
            lines,
            unit["id"],
            frozenset(),
            None,
            None,
            "the unit names no profile",
        )
    step = checklist.steps[rule.step]
    suffix = rule.name.rsplit(".", 1)[1]
    for unit in _units(base):
        lines = copy.deepcopy(base)
        records = [
            line
            for line in lines
            if line.get("type") == "step" and line["unit"] == unit["id"] and line["step"] == step.id
        ]
        if not records:
            continue
        first = records[0]
        if suffix == "done":
            for record in records:
                lines.remove(record)
            why = f"{step.id} is never recorded"
            also = _related_rules(checklist, step.id)
        elif suffix == "role":
            first["by_role"] = next(r for r in ROLES if r not in step.roles)
            why, also = f"{step.id} performed by a {first['by_role']}", frozenset()
        elif suffix == "witness":
            if step.witness_required:
                first.pop("witness", None)
                first.pop("witness_role", None)
                why = f"{step.id} has no witness"
            else:
                first["witness"] = first["by"]
                why = f"{step.id} witnessed by its performer"
            also = frozenset()
        elif suffix == "record":
            first.pop("by", None)
            why, also = f"{step.id} has no performer", frozenset()
        else:
            return None
        return Case(checklist.id, rule_id, source, lines, unit["id"], also, None, None, why)
    return None


def cases(registry: Registry) -> dict[str, Case | None]:
    """Every rule of every checklist -> its violation case (None: none written)."""
    out: dict[str, Case | None] = {}
    for checklist in registry:
        folder = EXAMPLES_DIR / checklist.id / "violations"
        for rule in checklist.rules:
            path = folder / f"{rule.name}.yaml"
            if path.exists():
                out[rule.id] = file_case(checklist, path)
            elif rule.generated:
                out[rule.id] = derived_case(checklist, rule.id)
            else:
                out[rule.id] = None
    return out
