"""Every shipped checklist and profile gives Chinese for every text a user reads."""

from __future__ import annotations

import pytest

from qms.checklists.engine import evaluate
from qms.checklists.engine.messages import render
from qms.checklists.language import Registry
from qms.checklists.language.model import Text
from tests.checklists.casebook import compliant_lines, to_interchange

REGISTRY = Registry.from_directory()


def _shown_texts(checklist):
    yield "title", checklist.title
    yield "product", checklist.product
    if checklist.description:
        yield "description", checklist.description
    for step in checklist.steps.values():
        yield f"{step.id}.title", step.title
        if step.says:
            yield f"{step.id}.says", step.says
        for fdef in step.fields.values():
            yield f"{step.id}.{fdef.name}.label", fdef.label
            for choice in fdef.choices:
                yield f"{step.id}.{fdef.name}: {choice}", fdef.choice_labels.get(choice)
    for rule in checklist.rules:
        if not rule.generated:
            yield f"{rule.id}.says", rule.says


@pytest.mark.parametrize("checklist_id", [c.id for c in REGISTRY])
def test_every_shipped_checklist_gives_chinese_for_every_text_a_user_reads(
    checklist_id: str,
) -> None:
    checklist = REGISTRY.get(checklist_id)
    untranslated = [
        where
        for where, text in _shown_texts(checklist)
        if text is None or not isinstance(text, Text) or "zh" not in text.translations
    ]
    assert not untranslated, f"{checklist.path}: no zh for {untranslated}"


def test_every_shipped_profile_gives_chinese() -> None:
    for profile in REGISTRY.profiles.values():
        assert "zh" in profile.title.translations, profile.path
        assert "zh" in profile.description.translations, profile.path


def test_a_shipped_finding_reads_in_chinese_titles() -> None:
    kymriah = REGISTRY.get("kymriah")
    ix = to_interchange(compliant_lines("kymriah"), "kymriah")
    unit = ix.units[0]
    steps = [s for s in ix.steps_of(unit.id) if s.step != "disposal"]
    finding = evaluate(kymriah, unit, steps, complete=True)[0]
    zh = render(finding.code, finding.params, checklist=kymriah, lang="zh")
    assert kymriah.steps["disposal"].title.get("zh") in zh
    assert zh != finding.message and finding.message.startswith(kymriah.steps["disposal"].title)
