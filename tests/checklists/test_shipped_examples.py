"""Every rule of every shipped checklist: a compliant example passes, a violation is caught.

Adding a checklist to checklists/ adds its rules here automatically; the test fails until
tests/checklists/examples/<checklist>/ has a compliant file and a violation per rule
(see casebook.py and docs/checklists.md).
"""

from __future__ import annotations

import pytest

from qms.checklists.language import Registry
from tests.checklists.casebook import (
    EXAMPLES_DIR,
    cases,
    compliant_lines,
    findings_for,
    to_interchange,
)

REGISTRY = Registry.from_directory()
CASES = cases(REGISTRY)


@pytest.mark.parametrize("checklist_id", [c.id for c in REGISTRY])
def test_compliant_example_has_no_findings(checklist_id: str) -> None:
    path = EXAMPLES_DIR / checklist_id / "compliant.jsonl"
    assert path.exists(), f"write {path}: units of {checklist_id} that break no rule"
    interchange = to_interchange(compliant_lines(checklist_id), str(path))
    units = [u for u in interchange.units if u.checklist == checklist_id]
    assert units, f"{path} has no unit of checklist {checklist_id}"
    for unit in units:
        assert unit.status == "complete", (
            f"{unit.id}: compliant units are finished, so missing steps count"
        )
        findings = findings_for(REGISTRY, interchange, unit.id)
        assert findings == [], "\n".join(f.message for f in findings)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_has_a_violation_that_is_caught(rule_id: str) -> None:
    case = CASES[rule_id]
    checklist_id, local = rule_id.split(".", 1)
    assert case is not None, (
        f"write tests/checklists/examples/{checklist_id}/violations/{local}.yaml"
    )
    interchange = to_interchange(case.lines, case.source)
    findings = findings_for(REGISTRY, interchange, case.unit, now=case.now, complete=case.complete)
    found = {f.rule for f in findings}
    assert rule_id in found, (
        f"{case.source} ({case.why}) did not break {rule_id}; found: {sorted(found)}"
    )
    unexpected = found - {rule_id} - case.expect
    assert not unexpected, (
        f"{case.source} ({case.why}) also broke {sorted(unexpected)}; declare them in `also:` or narrow the change"
    )
    for finding in findings:
        assert (
            finding.message
            and finding.severity == REGISTRY.get(checklist_id).rule(finding.rule).severity
        )


def test_every_violation_file_names_a_rule() -> None:
    for folder in sorted(EXAMPLES_DIR.glob("*/violations")):
        checklist = REGISTRY.get(folder.parent.name)
        for path in sorted(folder.iterdir()):
            assert path.suffix == ".yaml", f"{path}: violation files are .yaml"
            assert f"{checklist.id}.{path.stem}" in {r.id for r in checklist.rules}, (
                f"{path}: no rule {path.stem} in {checklist.id}"
            )
