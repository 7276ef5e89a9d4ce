"""The loader and linter: every problem reported as file:line: what is wrong; what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qms.checklists.language import (
    ChecklistError,
    Registry,
    lint,
    load_checklist,
    load_site_overrides,
)
from qms.checklists.quantities import QuantityError, format_duration, parse_duration, parse_quantity

MINIMAL = """\
id: demo
title: Demo product
version: "1.0"
product: Demo
sources:
  Demo PI: Demo prescribing information
parameters:
  limit: 30m
steps:
  thaw_end:
    title: Thaw completed
    roles: [nurse]
    severity: major
    source: Demo PI §2
  infusion_end:
    title: Infusion completed
    roles: [nurse]
    severity: major
    source: Demo PI §2
    fields:
      rate_ml_min: {type: number, unit: mL/min}
rules:
  thaw_to_infusion:
    says: Infuse within 30 minutes of thaw.
    severity: major
    source: Demo PI §2
    window: {from: thaw_end, to: infusion_end, max: $limit}
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ChecklistError) as info:
        load_checklist(write(tmp_path, text))
    return info.value.problems


def test_minimal_checklist_loads_immutable_and_versioned(tmp_path: Path) -> None:
    checklist = load_checklist(write(tmp_path, MINIMAL))
    assert (checklist.id, checklist.version, checklist.title) == ("demo", "1.0", "Demo product")
    assert list(checklist.steps) == ["thaw_end", "infusion_end"]
    rule = checklist.rule("demo.thaw_to_infusion")
    assert (rule.kind, rule.severity, rule.source, rule.limit_text) == (
        "window",
        "major",
        "Demo PI §2",
        "30m",
    )
    assert {r.id for r in checklist.rules} >= {
        "demo.thaw_end.done",
        "demo.infusion_end.role",
        "demo.infusion_end.record",
    }
    with pytest.raises(TypeError):
        checklist.steps["x"] = None  # type: ignore[index]
    with pytest.raises(AttributeError):
        checklist.version = "2"  # type: ignore[misc]
    assert len(checklist.digest) == 64
    changed = load_checklist(write(tmp_path, MINIMAL.replace("30m", "20m"), "other.yaml"))
    assert changed.digest != checklist.digest and changed != checklist


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (
            (
                "    roles: [nurse]\n    severity: major\n    source: Demo PI §2\n  infusion_end",
                "    roles: [nurse]\n    severity: major\n    source: Demo PI §2\n    colour: red\n  infusion_end",
            ),
            15,
            "unknown key 'colour' in step 'thaw_end'; allowed: title",
        ),
        (
            ("from: thaw_end", "from: thaw_ended"),
            27,
            "names unknown step 'thaw_ended' (did you mean 'thaw_end'?)",
        ),
        (
            ("max: $limit", "min: 2h, max: $limit"),
            27,
            "is impossible: min 2h > max 30m; min must not exceed max",
        ),
        (("unit: mL/min", "unit: ml/mn"), 21, "unknown unit 'ml/mn'"),
        (("max: $limit", "max: $limt"), 27, "unknown parameter $limt (did you mean 'limit'?)"),
        (
            (
                "severity: major\n    source: Demo PI §2\n    window",
                "severity: huge\n    source: Demo PI §2\n    window",
            ),
            25,
            "severity 'huge' of rule 'thaw_to_infusion' is not known; allowed: critical, major, minor",
        ),
        (
            ("source: Demo PI §2\n    window", "source: Other label §2\n    window"),
            26,
            "does not start with one of the checklist's sources; start with one of: Demo PI",
        ),
        (
            (
                "roles: [nurse]\n    severity: major\n    source: Demo PI §2\n  infusion_end",
                "roles: [nurse, janitor]\n    severity: major\n    source: Demo PI §2\n  infusion_end",
            ),
            12,
            "unknown role 'janitor' in roles of step 'thaw_end'; allowed: nurse, physician",
        ),
        (('version: "1.0"', "version: 1.0"), 3, "must be quoted text"),
    ],
)
def test_problems_name_file_line_and_what_is_allowed(
    tmp_path: Path, change: tuple[str, str], line: int, expected: str
) -> None:
    old, new = change
    assert old in MINIMAL
    problems = problems_of(tmp_path, MINIMAL.replace(old, new, 1))
    path = tmp_path / "demo.yaml"
    assert any(p.startswith(f"{path}:{line}: ") and expected in p for p in problems), problems


def test_cycle_in_order_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.indent(
        textwrap.dedent("""\
        forward:
          says: Thaw before infusion.
          severity: major
          source: Demo PI §2
          order: [thaw_end, infusion_end]
        backward:
          says: Infusion before thaw.
          severity: major
          source: Demo PI §2
          order: [infusion_end, thaw_end]
        """),
        "  ",
    )
    problems = problems_of(tmp_path, text)
    assert any(
        "the order rules form a cycle: infusion_end before thaw_end before infusion_end" in p
        for p in problems
    ), problems


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL.replace("roles: [nurse]", "roles: [nurses]").replace(
        "max: $limit", "max: 30 minutes"
    )
    problems = problems_of(tmp_path, text)
    assert len([p for p in problems if "unknown role 'nurses'" in p]) == 2
    assert any("is not a duration" in p for p in problems)
    # an unused parameter is a problem too: `limit` is no longer referenced
    assert any("parameter 'limit' is not used" in p for p in problems)


def test_duplicate_keys_and_bad_yaml_are_rejected(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path, MINIMAL.replace("  limit: 30m\n", "  limit: 30m\n  limit: 20m\n")
    )
    assert any(":9: duplicate key 'limit' (first at line 8)" in p for p in problems), problems
    problems = problems_of(tmp_path, MINIMAL.replace("roles: [nurse]", "roles: [nurse", 1))
    assert problems and "not valid YAML" in problems[0]


def test_conditions_check_their_references(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    window:", "    when: {field: infusion_end.rate, at_least: 5}\n    window:"
    )
    problems = problems_of(tmp_path, text)
    assert any(
        "names unknown field 'rate' of step 'infusion_end'; fields of infusion_end: rate_ml_min"
        in p
        for p in problems
    ), problems


def test_lint_reports_every_file_and_unknown_profiles(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    write(tmp_path, "id: us\ntitle: United States\n", "profiles/us.yaml")
    write(
        tmp_path, MINIMAL.replace("    window:", "    when: {profile: usa}\n    window:"), "a.yaml"
    )
    write(
        tmp_path,
        MINIMAL.replace("id: demo", "id: other").replace("severity: major", "severity: big", 1),
        "b.yaml",
    )
    problems, checklists, profiles = lint(tmp_path)
    assert profiles == 1 and checklists == 0
    assert any("a.yaml:27: unknown profile 'usa'" in p and "profiles: us" in p for p in problems), (
        problems
    )
    assert any("b.yaml:13: severity 'big'" in p for p in problems), problems


def test_shipped_checklists_lint_clean() -> None:
    problems, checklists, profiles = lint()
    assert problems == []
    assert checklists >= 3 and profiles == 3


def test_site_overrides_change_parameters_and_digest(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "demo.yaml")
    site = write(tmp_path, "site: SH-01\nparameters:\n  demo: {limit: 20m}\n", "site.yaml")
    plain = Registry.from_directory(tmp_path / "demo.yaml")
    local = Registry.from_directory(tmp_path / "demo.yaml", site_overrides=site)
    assert local.get("demo").rule("demo.thaw_to_infusion").spec.max.total_seconds() == 20 * 60
    assert local.get("demo").site == "SH-01"
    assert local.get("demo").digest != plain.get("demo").digest
    assert load_site_overrides(site).parameters["demo"]["limit"] == "20m"
    bad = write(tmp_path, "parameters:\n  demo: {limit: 20}\n", "bad.yaml")
    with pytest.raises(ChecklistError) as info:
        Registry.from_directory(tmp_path / "demo.yaml", site_overrides=bad)
    assert any(
        "is not the same kind of value as the default '30m'" in p for p in info.value.problems
    )


def test_registry_keeps_versions(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "demo-1.yaml")
    write(tmp_path, MINIMAL.replace('"1.0"', '"1.10"').replace("30m", "25m"), "demo-2.yaml")
    registry = Registry.from_directory(tmp_path)
    assert registry.versions("demo") == ("1.0", "1.10")
    assert registry.get("demo").version == "1.10"  # natural order, not text order
    assert registry.get("demo", "1.0").rule("demo.thaw_to_infusion").limit_text == "30m"
    with pytest.raises(KeyError, match="no version '2.0'"):
        registry.get("demo", "2.0")


def test_quantities() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert (
        format_duration(parse_duration("8d")) == "8d"
        and format_duration(parse_duration("48h")) == "48h"
    )
    assert parse_quantity("20 mL/min", "mL/min") == 20 and parse_quantity("-120 °C", "°C") == -120
    with pytest.raises(QuantityError, match="is in mL/h but the field is in mL/min"):
        parse_quantity("20 mL/h", "mL/min")
    with pytest.raises(QuantityError):
        parse_duration("30 minutes")


def test_must_be_with_a_unit_compares_numbers_in_the_field_unit(tmp_path: Path) -> None:
    # A quantity parameter ("4 mL") on a number field once never matched any record.
    from datetime import UTC, datetime

    from qms.checklists.engine import evaluate
    from qms.checklists.facts import StepFacts, UnitFacts

    text = MINIMAL.replace("  limit: 30m\n", "  limit: 30m\n  diluent: 4 mL\n").replace(
        "      rate_ml_min: {type: number, unit: mL/min}\n",
        "      rate_ml_min: {type: number, unit: mL/min}\n      volume_ml: {type: number, unit: mL}\n",
    ) + (
        "  diluent_volume:\n"
        "    says: Reconstitute with 4 mL.\n"
        "    severity: major\n"
        "    source: Demo PI §2\n"
        "    field: infusion_end.volume_ml\n"
        "    must_be: $diluent\n"
    )
    checklist = load_checklist(write(tmp_path, text))
    unit = UnitFacts("U-1", "demo", "SH-01", None, None, None, {}, status="complete")
    at = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)

    def findings(volume: float) -> list[str]:
        steps = [
            StepFacts("U-1", "thaw_end", at, "a", None, {}),
            StepFacts(
                "U-1", "infusion_end", at, "a", None, {"rate_ml_min": 10, "volume_ml": volume}
            ),
        ]
        return [f.rule for f in evaluate(checklist, unit, steps)]

    assert findings(4) == []
    assert findings(4.5) == ["demo.diluent_volume"]
    bad_unit = text.replace("diluent: 4 mL", "diluent: 4 mg")
    assert any("must_be" in p for p in problems_of(tmp_path, bad_unit))


@pytest.mark.parametrize(
    ("every", "problem"),
    [
        (
            "{step: infusion_end, from: thaw_end, interval: 1d, for: 12h}",
            "shorter than the interval",
        ),
        ("{step: thaw_end, from: thaw_end, interval: 1d, for: 7d}", "from itself"),
        ("{step: infusion_end, from: thaw_end, for: 7d}", "has no interval"),
        ("{step: infusion_end, from: thaw_end, interval: 0m, for: 7d}", "longer than zero"),
        ("{step: observation, from: thaw_end, interval: 1d, for: 7d}", "observation"),
    ],
)
def test_every_rules_are_checked(tmp_path: Path, every: str, problem: str) -> None:
    text = MINIMAL + (
        "  daily:\n"
        "    says: Daily.\n"
        "    severity: major\n"
        "    source: Demo PI §2\n"
        f"    every: {every}\n"
    )
    problems = problems_of(tmp_path, text)
    assert any(problem in p for p in problems), problems
