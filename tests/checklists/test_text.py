"""Checklist text in two languages: a plain string (English) or {en: ..., zh: ...}."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from qms.checklists.engine.messages import render
from qms.checklists.language import ChecklistError, load_checklist, load_profile
from qms.checklists.language.model import Text, in_language

BILINGUAL = """\
id: demo
title:
  en: Demo product
  zh: 演示产品
version: "1.0"
product: {en: Demo, zh: 演示}
description:
  en: >
    One unit is one demo infusion.
  zh: >
    一个单元即一次演示输注。
sources:
  Demo PI: Demo prescribing information
steps:
  thaw_end:
    title: {en: Thaw completed, zh: 解冻完成}
    says: {en: Note the time., zh: 记录时间。}
    roles: [nurse]
    severity: major
    source: Demo PI §2
  infusion_end:
    title: Infusion completed
    roles: [nurse]
    severity: major
    source: Demo PI §2
    fields:
      rate_ml_min: {type: number, unit: mL/min, label: {en: infusion rate, zh: 输注速度}}
      doses: {type: number, unit: {en: doses, zh: 剂}, required: false}
      filter:
        type: choice
        label: {en: in-line filter, zh: 输液滤器}
        choices:
          - none: {en: no filter, zh: 无滤器}
          - leukodepleting: {en: leukodepleting filter, zh: 白细胞滤器}
          - 0.2um
rules:
  thaw_to_infusion:
    says:
      en: Infuse within 30 minutes of thaw.
      zh: 解冻后30分钟内输注。
    severity: major
    source: Demo PI §2
    window: {from: thaw_end, to: infusion_end, max: 30m}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ChecklistError) as err:
        load_checklist(_write(tmp_path, text))
    return err.value.problems


def test_text_is_its_english_and_gives_each_language() -> None:
    text = Text("Thaw completed", {"zh": "解冻完成"})
    assert text == "Thaw completed" and f"{text}" == "Thaw completed"
    assert text.get("zh") == text.get("zh_CN") == text.get("zh-Hans") == "解冻完成"
    assert text.get("en") == text.get(None) == text.get("fr") == "Thaw completed"
    assert Text("only English").get("zh") == "only English"
    assert in_language(text, "zh") == "解冻完成" and in_language("plain", "zh") == "plain"
    again = pickle.loads(pickle.dumps(text))
    assert again.get("zh") == "解冻完成"


def test_every_text_may_be_given_in_english_and_chinese(tmp_path: Path) -> None:
    checklist = load_checklist(_write(tmp_path, BILINGUAL))
    assert checklist.title == "Demo product" and checklist.title.get("zh") == "演示产品"
    assert checklist.product.get("zh") == "演示"
    assert checklist.description.get("zh") == "一个单元即一次演示输注。"
    thaw = checklist.steps["thaw_end"]
    assert (thaw.title.get("zh"), thaw.says.get("zh")) == ("解冻完成", "记录时间。")
    infusion = checklist.steps["infusion_end"]
    assert infusion.title.get("zh") == "Infusion completed"  # English when none given
    rate = infusion.fields["rate_ml_min"]
    assert (rate.label, rate.label.get("zh"), rate.unit) == ("infusion rate", "输注速度", "mL/min")
    doses = infusion.fields["doses"]
    assert doses.unit == "doses" and doses.unit_text.get("zh") == "剂"
    assert doses.label.get("zh") == "doses"
    choice = infusion.fields["filter"]
    assert choice.choices == ("none", "leukodepleting", "0.2um")
    assert choice.choice_label("leukodepleting", "zh") == "白细胞滤器"
    assert choice.choice_label("none") == "no filter"
    assert choice.choice_label("0.2um", "zh") == "0.2um"
    assert checklist.rule("demo.thaw_to_infusion").says.get("zh") == "解冻后30分钟内输注。"


def test_a_translation_changes_the_digest_but_not_the_rules_digest(tmp_path: Path) -> None:
    both = load_checklist(_write(tmp_path, BILINGUAL))
    reworded = BILINGUAL.replace("解冻完成", "解冻结束").replace("in-line filter", "filter")
    other = load_checklist(_write(tmp_path, reworded))
    assert other.digest != both.digest and other.rules_digest == both.rules_digest
    stricter = load_checklist(_write(tmp_path, BILINGUAL.replace("max: 30m", "max: 20m")))
    assert stricter.rules_digest != both.rules_digest


def test_findings_read_in_the_readers_language(tmp_path: Path) -> None:
    checklist = load_checklist(_write(tmp_path, BILINGUAL))
    params = {
        "rule": "demo.thaw_to_infusion",
        "start": "thaw_end",
        "end": "infusion_end",
        "took": "45m",
        "max": "30m",
    }
    zh = render("window.max_exceeded", params, checklist=checklist, lang="zh")
    assert zh.startswith("Infusion completed (infusion_end) came 45m after 解冻完成 (thaw_end)")
    assert zh.endswith("解冻后30分钟内输注。")
    en = render("window.max_exceeded", params, checklist=checklist)
    assert "Thaw completed (thaw_end)" in en and en.endswith("Infuse within 30 minutes of thaw.")
    field = {
        "rule": "demo.thaw_to_infusion",
        "field": "infusion_end.rate_ml_min",
        "value": 25,
        "unit": "mL/min",
        "min": None,
        "max": 20,
        "bound": "max",
    }
    text = render("field.out_of_range", field, checklist=checklist, lang="zh")
    assert text.startswith("Infusion completed: 输注速度 (infusion_end.rate_ml_min) was 25 mL/min")


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        (
            "  zh: 演示产品\n",
            "  fr: Produit\n",
            4,
            "'title' of the checklist gives language 'fr'; allowed languages: en, zh",
        ),
        (
            "  en: Demo product\n",
            "",
            3,
            "'title' of the checklist gives no English (en); give `en:` (required)",
        ),
        (
            "{en: Thaw completed, zh: 解冻完成}",
            "{en: Thaw completed, zh: ''}",
            16,
            "the zh text of 'title' of step 'thaw_end' is empty; write the words",
        ),
        (
            "label: {en: infusion rate, zh: 输注速度}",
            "label: {en: infusion rate, zn: 输注速度}",
            27,
            "'label' of field 'rate_ml_min' of step 'infusion_end' gives language 'zn'; "
            "allowed languages: en, zh",
        ),
        (
            "unit: {en: doses, zh: 剂}",
            "unit: {en: pills, zh: 片}",
            28,
            "unknown unit 'pills'",
        ),
        (
            "          - none: {en: no filter, zh: 无滤器}\n",
            "          - none: {en: no filter, de: kein Filter}\n",
            33,
            "the words of choice 'none' gives language 'de'",
        ),
    ],
)
def test_lint_names_the_line_of_a_bad_translation(
    tmp_path: Path, old: str, new: str, line: int, expected: str
) -> None:
    assert old in BILINGUAL
    problems = _problems(tmp_path, BILINGUAL.replace(old, new, 1))
    path = tmp_path / "demo.yaml"
    assert any(p.startswith(f"{path}:{line}: ") and expected in p for p in problems), problems


def test_a_profile_may_be_bilingual(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    path = folder / "cn.yaml"
    path.write_text("id: cn\ntitle: {en: China, zh: 中国}\n", encoding="utf-8")
    assert load_profile(path).title.get("zh") == "中国"
    path.write_text("id: cn\ntitle: {zh: 中国}\n", encoding="utf-8")
    with pytest.raises(ChecklistError, match=r"cn.yaml:2: 'title' of the profile gives no English"):
        load_profile(path)
