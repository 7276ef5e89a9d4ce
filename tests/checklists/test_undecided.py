"""The engine judges what can be judged when a value a rule's condition reads was not recorded.

Decided when the outcome does not depend on the missing value; otherwise a finding of the
rule itself says it "cannot be shown to hold", naming the missing field, with what its
strictest case would be. And no rule is silently skipped because a field is missing.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qms.checklists.engine import ReadingIndex, evaluate
from qms.checklists.engine.messages import render
from qms.checklists.facts import Finding
from qms.checklists.language import FieldSpec, Registry, StorageSpec
from tests.checklists.casebook import (
    apply_change,
    cases,
    compliant_lines,
    findings_for,
    to_interchange,
)

REGISTRY = Registry.from_directory()


def judge(checklist: str, unit: str, *changes: dict[str, Any]) -> list[Finding]:
    lines = copy.deepcopy(compliant_lines(checklist))
    for change in changes:
        apply_change(lines, unit, change, "test")
    return findings_for(REGISTRY, to_interchange(lines, "test"), unit)


def of(findings: list[Finding], *rules: str) -> list[Finding]:
    return [f for f in findings if f.rule in rules]


BREYANZI_2H = ("breyanzi.storage_to_administration_cd8", "breyanzi.storage_to_administration_cd4")
NO_COMPONENT = {"step": "infusion_end", "fields": {"component": None}}


def test_a_record_without_its_component_within_2_hours_is_decided() -> None:
    later = {"step": "infusion_end", "set": {"at": "2026-10-16T10:15:00+08:00"}}
    findings = judge("breyanzi", "B-US-1", NO_COMPONENT, later)
    # Within 2 hours whichever component it was: neither rule reports anything...
    assert of(findings, *BREYANZI_2H) == []
    # ...and the missing component itself is the record's finding.
    assert "breyanzi.infusion_end.record" in {f.rule for f in findings}


def test_a_record_without_its_component_after_2h15m_cannot_be_shown_to_hold() -> None:
    # B-US-1 leaves frozen storage at 08:30 (+08:00); its first infusion now ends 10:45.
    late = {"step": "infusion_end", "set": {"at": "2026-10-16T10:45:00+08:00"}}
    with_component = judge("breyanzi", "B-US-1", late)
    assert [(f.code, f.actual) for f in of(with_component, *BREYANZI_2H)] == [
        ("window.max_exceeded", "2h15m")
    ]
    # Without the component, either rule could be the one broken: each says so.
    findings = of(judge("breyanzi", "B-US-1", NO_COMPONENT, late), *BREYANZI_2H)
    assert [f.rule for f in findings] == list(BREYANZI_2H)
    for undecided in findings:
        assert undecided.code == "rule.cannot_be_shown" and undecided.severity == "major"
        assert undecided.params["missing"] == ["infusion_end.component"]
        assert undecided.params["would"]["code"] == "window.max_exceeded"
        assert undecided.params["would"]["params"]["took"] == "2h15m"
        assert "cannot be shown to hold" in undecided.message
        assert "component (CD8 or CD4) (infusion_end.component)" in undecided.message
        assert "came 2h15m after" in undecided.message and "the limit is 2h" in undecided.message


def test_a_hold_time_chosen_by_a_missing_storage_is_judged_against_the_strictest_limit() -> None:
    no_storage = {"step": "bag_prepared", "fields": {"bag_storage": None}}
    # B-3's preservative-free bag ran 69h30m from preparation: within 8 days in a fridge,
    # beyond the 48 hours at room temperature.
    findings = judge("blincyto", "B-3", no_storage)
    holds = of(findings, "blincyto.bag_hold_room", "blincyto.bag_hold_refrigerated")
    assert [(f.rule, f.code) for f in holds] == [("blincyto.bag_hold_room", "rule.cannot_be_shown")]
    assert holds[0].limit == "48h"
    assert "In its strictest case" in holds[0].message and "48h" in holds[0].message
    assert "blincyto.bag_prepared.record" in {f.rule for f in findings}
    # B-1's bag ran 31 hours: within either limit, decided.
    assert of(judge("blincyto", "B-1", no_storage), "blincyto.bag_hold_room") == []


def test_a_field_rule_gated_by_a_missing_value_is_decided_when_the_value_passes() -> None:
    # Blincyto's adult dexamethasone dose rules depend on the diagnosis and the age.
    no_age = {"step": "prescription_check", "fields": {"age_years": None}}
    findings = judge("blincyto", "B-1", no_age)
    # 20 mg of dexamethasone is right for a relapsed adult and within the children's 20 mg
    # cap; only the children's dose per m2 (not recorded) cannot be shown to hold.
    rules = {f.rule: f.code for f in findings}
    assert rules.get("blincyto.premedication_dose") is None
    assert rules.get("blincyto.premedication_dose_child_cap") is None
    assert rules["blincyto.premedication_dose_child"] == "rule.cannot_be_shown"
    assert rules["blincyto.prescription_check.record"] == "record_integrity.incomplete"


def test_a_step_required_by_a_missing_value_cannot_be_shown_to_be_done() -> None:
    checklist = REGISTRY.get("besponsa")
    findings = judge(
        "besponsa",
        "BE-2",
        {"step": "dilution", "fields": {"bag_storage": None}},
        {"step": "bag_equilibration", "remove": True},
    )
    undecided = [f for f in findings if f.rule == "besponsa.bag_equilibration.done"]
    assert [f.code for f in undecided] == ["rule.cannot_be_shown"]
    assert undecided[0].params["would"]["code"] == "missing_step.required"
    zh = render(undecided[0].code, undecided[0].params, checklist=checklist, lang="zh")
    assert "冷藏输液袋取出复温至室温" in zh  # the step's Chinese title, in the nested finding


# --- the property: no rule is silently skipped when a field is missing
VIOLATIONS = [c for c in cases(REGISTRY).values() if c is not None]


def _uses(checklist, rule_id: str, step: str, name: str) -> bool:
    """Whether a rule reads `step.name` in what it judges (not only in its conditions)."""
    rule = checklist.rule(rule_id)
    if rule.generated:
        return rule.step == step and rule.name.endswith(".record")
    spec = rule.spec
    if isinstance(spec, FieldSpec):
        return any(
            ref is not None and (ref.step, ref.name) == (step, name)
            for ref in (spec.ref, spec.other)
        )
    if isinstance(spec, StorageSpec):
        return (step, name) == ("storage_in", "equipment")
    return False


def _conditions_of(checklist, rule_id: str) -> set[tuple[str, str]]:
    rule = checklist.rule(rule_id)
    if rule.when is None:
        return set()
    return {(t.ref.step, t.ref.name) for t in rule.when.field_tests if t.ref.step is not None}


PARSED = [
    (case, to_interchange(case.lines, case.source).steps_of(case.unit)) for case in VIOLATIONS
]


def _findings(case, steps) -> set[str]:
    interchange = to_interchange(case.lines, case.source)
    unit = next(u for u in interchange.units if u.id == case.unit)
    checklist = REGISTRY.get(unit.checklist)
    readings = ReadingIndex(interchange.readings)
    found = evaluate(checklist, unit, steps, readings, now=case.now, complete=case.complete)
    return {f.rule for f in found}


def _removals() -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    """(case, record, field) for every field of every violation example: first those that
    the condition of a rule the example breaks reads (where a rule would be silenced),
    then all the others."""
    read, other = [], []
    for n, (case, steps) in enumerate(PARSED):
        checklist = REGISTRY.get(case.checklist)
        conditioned = set()
        for rule_id in _findings(case, steps):
            conditioned |= _conditions_of(checklist, rule_id)
        for i, step in enumerate(steps):
            for name in sorted(step.fields):
                (read if (step.step, name) in conditioned else other).append((n, i, name))
    return read, other


READ, OTHER = _removals()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.sampled_from(READ), st.sampled_from(OTHER)))
def test_removing_one_field_never_silences_a_rule_that_does_not_judge_it(removal) -> None:
    n, index, name = removal
    case, steps = PARSED[n]
    steps = list(steps)
    record = steps[index]
    fewer = {k: v for k, v in record.fields.items() if k != name}
    removed = [*steps[:index], dataclasses.replace(record, fields=fewer), *steps[index + 1 :]]
    checklist = REGISTRY.get(case.checklist)
    before = _findings(case, steps)
    after = _findings(case, removed)
    # A rule that does not judge the field (it may read it in a condition) keeps its
    # finding: as it was, or as "cannot be shown to hold".
    silenced = {r for r in before - after if not _uses(checklist, r, record.step, name)}
    assert not silenced, f"{case.source}: removing {record.step}.{name} silenced {silenced}"
