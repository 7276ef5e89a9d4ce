"""Findings have identity: a stable code, its parameters and the records they concern.

Every code is produced here by the engine and its words rendered from code + params;
every finding of the shipped examples renders from what its producer supplied.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from qms.checklists.engine import ReadingIndex, evaluate
from qms.checklists.engine.messages import MESSAGES, N_, PARTS, codes, render, render_parts
from qms.checklists.facts import Finding, ReadingFacts, StepFacts, UnitFacts
from qms.checklists.language import Registry, parse_checklist
from tests.checklists.casebook import cases, compliant_lines, findings_for, to_interchange

REGISTRY = Registry.from_directory()
KYMRIAH = REGISTRY.get("kymriah")

# A small checklist for what the shipped ones do not use: comparisons between fields,
# every field type, a 2-8 °C store with a tolerance.
BENCH_YAML = """
id: bench
title: Bench
version: "1"
product: Bench product
sources:
  Bench SOP: Bench standard operating procedure
steps:
  storage_in:
    title: Into the fridge
    roles: [pharmacist]
    severity: major
    source: Bench SOP
    fields:
      equipment: {type: equipment}
  storage_out:
    title: Out of the fridge
    roles: [pharmacist]
    severity: major
    source: Bench SOP
  dilution:
    title: Diluted
    roles: [pharmacist]
    severity: major
    source: Bench SOP
    fields:
      volume_ml: {type: number, unit: mL, range: [0, 500], label: bag volume}
      drawn_ml: {type: number, unit: mL, required: false, label: volume drawn}
      minimum_ml: {type: number, unit: mL, required: false, label: least volume}
      filter: {type: choice, choices: [none, 0.2um], required: false}
      checked: {type: yes_no, required: false}
      expires: {type: datetime, required: false}
      note: {type: text, required: false}
rules:
  drawn_at_most_bag:
    says: No more is drawn than the bag holds.
    severity: major
    source: Bench SOP
    field: dilution.drawn_ml
    at_most_field: dilution.volume_ml
  bag_at_least_minimum:
    says: The bag holds at least the least volume.
    severity: major
    source: Bench SOP
    field: dilution.volume_ml
    at_least_field: dilution.minimum_ml
  fridge:
    says: Kept at 2-8 °C.
    severity: critical
    source: Bench SOP
    storage: {min: 2, max: 8, tolerate: {up_to: 15, for: 24h, mkt_max: 8}}
"""
BENCH = parse_checklist(BENCH_YAML.encode(), "bench.yaml")
T0 = datetime.fromisoformat("2026-10-01T08:00:00+08:00")


def _bench_unit() -> UnitFacts:
    return UnitFacts("B-1", "bench", "SH-01", None, None, None, status="in_progress")


def _bench_step(step: str, hours: float, n: int, **fields) -> StepFacts:
    return StepFacts(
        "B-1", step, T0 + timedelta(hours=hours), "li.na", None, fields, record_id=f"B-1#{n}"
    )


def _kymriah(unit_id: str = "K-US-1"):
    ix = to_interchange(compliant_lines("kymriah"), "kymriah")
    unit = next(u for u in ix.units if u.id == unit_id)
    steps = [
        dataclasses.replace(s, record_id=f"{unit_id}#{n}")
        for n, s in enumerate(ix.steps_of(unit_id), 1)
    ]
    return unit, steps


def _replace(steps, step_id, **changes):
    return [dataclasses.replace(s, **changes) if s.step == step_id else s for s in steps]


def _until(steps, step_id):
    ordered = sorted(steps, key=lambda s: s.at)
    cut = next(i for i, s in enumerate(ordered) if s.step == step_id)
    return ordered[: cut + 1]


def _made_findings() -> list[tuple[Finding, object]]:
    """Findings of every code and every part, made by the engine, with their checklist."""
    out: list[tuple[Finding, object]] = []
    unit, steps = _kymriah()
    # missing_step.later_recorded: identity check skipped, thaw started.
    partial = [s for s in _until(steps, "thaw_start") if s.step != "identity_check"]
    out += [(f, KYMRIAH) for f in evaluate(KYMRIAH, unit, partial, complete=False)]
    # witness.role_not_allowed, and record parts: repeated, missing, unknown, dated late.
    odd = _replace(steps, "identity_check", witness_role="pharmacist")
    odd = _replace(odd, "disposal", fields={"method": "biohazard_waste", "colour": "red"})
    receipt = next(s for s in odd if s.step == "receipt")
    odd += [dataclasses.replace(receipt, record_id="K-US-1#again", fields={})]
    entered = next(s for s in odd if s.step == "thaw_start")
    odd = _replace(odd, "thaw_start", recorded_at=entered.at - timedelta(hours=1))
    last = max(s.at for s in odd)
    odd = _replace(odd, "observation", at=last + timedelta(days=2))
    now = last + timedelta(days=1)
    out += [(f, KYMRIAH) for f in evaluate(KYMRIAH, unit, odd, now=now, complete=False)]
    # window.overdue: thawed 45 minutes ago, not yet infused.
    thawed = _until(steps, "thaw_end")
    late = thawed[-1].at + timedelta(minutes=45)
    out += [(f, KYMRIAH) for f in evaluate(KYMRIAH, unit, thawed, now=late, complete=False)]
    # Field comparisons, every field type's problems, a tolerated store's excursions.
    bench_steps = [
        _bench_step("storage_in", 0, 1, equipment="FR-1"),
        _bench_step("storage_out", 60, 2),
        _bench_step("dilution", 61, 3, volume_ml=100, drawn_ml=120, minimum_ml=150),
        _bench_step(
            "dilution",
            62,
            4,
            volume_ml=900,
            filter="leukodepleting",
            checked="yes",
            expires="tomorrow",
            note=5,
        ),
        _bench_step("dilution", 63, 5, volume_ml="a lot", expires="2026-10-02T08:00:00"),
        _bench_step("dilution", 64, 6, volume_ml=10, expires=3),
        _bench_step("dilution", 65, 7, volume_ml=10, expires=datetime(2026, 10, 2)),
    ]
    temps = [(0, 5), (1, 1), (2, 16), (3, 5), (4, 12), (40, 5)]
    readings = ReadingIndex(
        [ReadingFacts("FR-1", T0 + timedelta(hours=h), float(t)) for h, t in temps]
    )
    out += [(f, BENCH) for f in evaluate(BENCH, _bench_unit(), bench_steps, readings)]
    # Every finding of every shipped example.
    for case in cases(REGISTRY).values():
        if case is None:
            continue
        ix = to_interchange(case.lines, case.source)
        unit_facts = next(u for u in ix.units if u.id == case.unit)
        checklist = REGISTRY.get(unit_facts.checklist, unit_facts.checklist_version)
        found = findings_for(REGISTRY, ix, case.unit, now=case.now, complete=case.complete)
        out += [(f, checklist) for f in found]
    return out


MADE = _made_findings()


def _parts(finding: Finding) -> list[dict]:
    return [*finding.params.get("problems", ()), *finding.params.get("reasons", ())]


@pytest.mark.parametrize("code", codes())
def test_every_code_is_produced_and_rendered(code: str) -> None:
    made = [(f, cl) for f, cl in MADE if f.code == code]
    assert made, f"no test makes a finding of code {code}"
    kind = MESSAGES[code][0]
    for finding, checklist in made:
        # kind "": the finding has its rule's own kind (rule.cannot_be_shown)
        rule_kind = checklist.rule(finding.rule).kind if checklist is not None else None
        assert (
            finding.kind == kind
            or (code == "field.mismatch" and finding.kind == "limit")
            or (kind == "" and finding.kind == rule_kind)
        )
        assert render(code, finding.params, checklist=checklist) == finding.message
        without = render(code, finding.params)
        assert without and "%(" not in without


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_part_of_a_record_problem_or_an_excursion_is_produced(part: str) -> None:
    made = [f for f, _ in MADE for p in _parts(f) if p["code"] == part]
    assert made, f"no test makes a finding with the part {part}"
    for finding in made:
        assert render_parts([p for p in _parts(finding) if p["code"] == part]) in finding.message


def test_every_finding_gives_the_params_its_code_needs_and_is_json() -> None:
    for finding, checklist in MADE:
        needed = MESSAGES[finding.code][1]
        missing = [p for p in needed if p not in finding.params]
        assert not missing, f"{finding.rule} {finding.code} lacks {missing}"
        for part in _parts(finding):
            assert not [p for p in PARTS[part["code"]][0] if p not in part], part
        assert json.loads(json.dumps(finding.params)) == finding.params
        # Every language renders: Chinese titles when the checklist has them, else English.
        render(finding.code, finding.params, checklist=checklist, lang="zh")
        render(finding.code, finding.params, checklist=checklist, gettext=lambda s: "[" + s + "]")


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_DERIVED = ("_title", "_where", "_shown", "_repr", "_number")


def _base(name: str) -> str:
    for suffix in _DERIVED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_template_uses_only_params_its_producers_supply() -> None:
    for code, (_, params, variants) in MESSAGES.items():
        for template in variants.values():
            for name in _PLACEHOLDER.findall(template):
                base = "rule" if name == "says" else _base(name)
                assert base in params, f"{code}: %({name})s is not made from {params}"
    for code, (params, template) in PARTS.items():
        for name in _PLACEHOLDER.findall(template):
            assert _base(name) in params, f"{code}: %({name})s is not made from {params}"


def test_record_ids_name_the_records_a_finding_concerns() -> None:
    unit, steps = _kymriah()
    thaw_end = next(s for s in steps if s.step == "thaw_end")
    infusion_end = next(s for s in steps if s.step == "infusion_end")
    late = _replace(steps, "infusion_end", at=thaw_end.at + timedelta(minutes=45))
    window = next(f for f in evaluate(KYMRIAH, unit, late) if f.code == "window.max_exceeded")
    assert window.record_ids == (thaw_end.record_id, infusion_end.record_id)
    assert window.params["took"] == "45m" and window.params["max"] == "30m"
    assert window.actual == "45m" and window.limit == "30m"
    missing = [s for s in steps if s.step != "disposal"]
    gone = next(f for f in evaluate(KYMRIAH, unit, missing, complete=True))
    assert gone.code == "missing_step.required" and gone.record_ids == ()


def test_to_record_keeps_every_key_but_the_prose_and_from_record_rebuilds_it() -> None:
    for finding, checklist in MADE:
        record = finding.to_record()
        assert "message" not in record
        assert set(record) | {"message"} == set(finding.to_json())
        stored = json.loads(json.dumps(record, ensure_ascii=False))
        assert Finding.from_record(stored, checklist=checklist) == finding
        again = Finding.from_record(stored)
        assert dataclasses.replace(again, message=finding.message) == finding
        assert again.message == render(finding.code, finding.params)


def test_without_the_checklist_steps_and_fields_are_named_by_their_ids() -> None:
    params = {
        "rule": "kymriah.infusion_rate",
        "field": "infusion_start.rate_ml_min",
        "value": 25,
        "unit": "mL/min",
        "min": 10,
        "max": 20,
        "bound": "max",
    }
    assert render("field.out_of_range", params) == (
        "infusion_start: rate ml min (infusion_start.rate_ml_min) was 25 mL/min, "
        "above the maximum of 20 mL/min."
    )
    assert render("field.out_of_range", params, checklist=KYMRIAH) == (
        "Infusion started: infusion rate (infusion_start.rate_ml_min) was 25 mL/min, "
        "above the maximum of 20 mL/min. Infuse at 10 to 20 mL per minute."
    )


def test_gettext_translates_the_template_before_the_params_are_filled_in() -> None:
    catalog = {
        MESSAGES["window.max_exceeded"][2][""]: "%(end_title)s 在 %(start_title)s 之后 %(took)s"
        "（限 %(max)s）。%(says)s"
    }
    params = {
        "rule": "kymriah.thaw_to_infusion",
        "start": "thaw_end",
        "end": "infusion_end",
        "took": "45m",
        "max": "30m",
    }
    text = render("window.max_exceeded", params, gettext=lambda s: catalog.get(s, s))
    assert text == "infusion_end 在 thaw_end 之后 45m（限 30m）。"


def test_a_code_this_version_does_not_know_is_still_shown() -> None:
    assert render("future.kind", {"step": "thaw_end"}) == 'future.kind: {"step": "thaw_end"}'


def test_the_marker_returns_its_text() -> None:
    assert N_("%(x)s left") == "%(x)s left"


def test_the_documentation_lists_every_code_and_part() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "checklists.md"
    text = docs.read_text(encoding="utf-8")
    for code in [*MESSAGES, *PARTS]:
        assert f"| `{code}` |" in text, f"docs/checklists.md does not list {code}"
