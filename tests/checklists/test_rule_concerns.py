"""The rules a step implies say what they concern; the engine reads that, not their ids."""

from __future__ import annotations

import dataclasses

from qms.checklists.engine import evaluate
from qms.checklists.language import Registry
from tests.checklists.casebook import compliant_lines, to_interchange

REGISTRY = Registry.from_directory()


def test_every_generated_rule_names_what_it_concerns() -> None:
    for checklist in REGISTRY:
        for rule in checklist.rules:
            if rule.generated:
                assert rule.concerns in ("done", "role", "witness", "record", "profile"), rule.id
                assert (rule.concerns == "profile") == (rule.step is None), rule.id
            else:
                assert rule.concerns is None, rule.id


def test_findings_follow_the_concerns_field_whatever_the_rule_ids() -> None:
    kymriah = REGISTRY.get("kymriah")
    ix = to_interchange(compliant_lines("kymriah"), "kymriah")
    unit = ix.units[0]
    steps = [s for s in ix.steps_of(unit.id) if s.step != "disposal"]
    steps = [
        dataclasses.replace(s, witness=s.by) if s.step == "identity_check" else s for s in steps
    ]
    steps.append(dataclasses.replace(steps[0], by=None, record_id="extra"))
    before = evaluate(kymriah, unit, steps, complete=True)
    assert {f.kind for f in before} >= {"missing_step", "witness", "record_integrity"}
    # The same checklist with its implied rules renamed: no id ends in .done, .witness...
    renamed = {r.id: f"renamed.r{n}" for n, r in enumerate(kymriah.rules) if r.generated}
    rules = tuple(
        dataclasses.replace(r, id=renamed[r.id], name=renamed[r.id]) if r.generated else r
        for r in kymriah.rules
    )
    other = dataclasses.replace(
        kymriah,
        rules=rules,
        digest="renamed-" + kymriah.digest,
        _rule_index={r.id: r for r in rules},
    )
    after = evaluate(other, unit, steps, complete=True)
    assert [dataclasses.replace(f, rule=renamed.get(f.rule, f.rule)) for f in before] == after
