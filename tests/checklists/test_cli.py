"""`qms checklist lint` and `qms evaluate`, driven through click's runner (no database)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from qms.checklists.cli import checklist_group, commands, evaluate_command
from qms.paths import CHECKLISTS_DIR
from tests.checklists.casebook import EXAMPLES_DIR

COMPLIANT = EXAMPLES_DIR / "kymriah" / "compliant.jsonl"


def test_commands_are_exported() -> None:
    assert {c.name for c in commands} == {"checklist", "evaluate"}


def test_lint_shipped_checklists_passes() -> None:
    result = CliRunner().invoke(checklist_group, ["lint"])
    assert result.exit_code == 0, result.output
    # The current versions and the archived ones (checklists/archive/) are linted alike.
    shipped = len(list(CHECKLISTS_DIR.glob("*.yaml"))) + len(
        list((CHECKLISTS_DIR / "archive").glob("*.yaml"))
    )
    profiles = len(list((CHECKLISTS_DIR / "profiles").glob("*.yaml")))
    assert shipped >= 3 and profiles == 3
    assert f"{shipped} checklists and {profiles} profiles, no problems" in result.output


def test_lint_prints_every_problem_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'id: bad\ntitle: Bad\nversion: "1"\nproduct: Bad\nsources: {A: a}\nsteps:\n  x:\n    title: X\n    roles: [cook]\n    severity: major\n    source: A\n    colour: red\n'
    )
    result = CliRunner().invoke(checklist_group, ["lint", str(bad)])
    assert result.exit_code != 0
    assert f"{bad}:9: unknown role 'cook'" in result.output
    assert f"{bad}:12: unknown key 'colour'" in result.output
    assert "2 problems found" in result.output


def test_evaluate_json_has_the_design_shape(tmp_path: Path) -> None:
    text = COMPLIANT.read_text().replace('"rate_ml_min": 15', '"rate_ml_min": 25', 1)
    path = tmp_path / "in.jsonl"
    path.write_text(text)
    result = CliRunner().invoke(evaluate_command, [str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["units"] == 3
    assert data["findings"] == [
        {
            "unit": "K-US-1",
            "kind": "limit",
            "rule": "kymriah.infusion_rate",
            "severity": "major",
            "steps": ["infusion_start"],
            "message": "Infusion started: infusion rate (infusion_start.rate_ml_min) was 25 mL/min, above the maximum of 20 mL/min. Infuse at 10 to 20 mL per minute.",
            "limit": "10–20 mL/min",
            "actual": "25 mL/min",
            "code": "field.out_of_range",
            "params": {
                "rule": "kymriah.infusion_rate",
                "field": "infusion_start.rate_ml_min",
                "value": 25,
                "unit": "mL/min",
                "min": 10,
                "max": 20,
                "bound": "max",
            },
            "record_ids": [],
        }
    ]
    assert list(data["findings"][0]) == [
        "unit",
        "kind",
        "rule",
        "severity",
        "steps",
        "message",
        "limit",
        "actual",
        "code",
        "params",
        "record_ids",
    ]


def test_evaluate_profile_option_overrides_the_units_profile() -> None:
    result = CliRunner().invoke(evaluate_command, [str(COMPLIANT), "--profile", "eu"])
    rules = {(f["unit"], f["rule"]) for f in json.loads(result.output)["findings"]}
    # US and Chinese units recorded no time to a second dose, which the EU rule needs.
    assert rules == {
        ("K-US-1", "kymriah.tocilizumab_eu_second_dose"),
        ("K-CN-1", "kymriah.tocilizumab_eu_second_dose"),
    }


def test_evaluate_text_groups_by_unit() -> None:
    result = CliRunner().invoke(
        evaluate_command, [str(COMPLIANT), "--format", "text", "--profile", "eu"]
    )
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "3 units, 2 findings"
    assert "K-EU-1 (kymriah): no findings" in lines
    assert any(
        line.startswith("  MAJOR    limit            kymriah.tocilizumab_eu_second_dose:")
        for line in lines
    )


def test_evaluate_bad_file_names_lines_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = COMPLIANT.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"step": "prescription_check"' in line)
    lines[index] = lines[index].replace('"step": "prescription_check"', '"step": "reconstitution"')
    lines.append("{oops")
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(evaluate_command, [str(path)])
    assert result.exit_code != 0
    assert f"{path}:{len(lines)}: bad JSON" in result.output
    assert "nothing evaluated" in result.output
    lines.pop()
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(evaluate_command, [str(path)])
    assert result.exit_code != 0
    assert f"{path}:{index + 1}: unknown step 'reconstitution' for unit 'K-US-1'" in result.output


def test_evaluate_now_reports_overdue_units(tmp_path: Path) -> None:
    lines = [
        line
        for line in COMPLIANT.read_text().splitlines()
        if '"K-US-1"' in line or line.startswith(('{"type": "equipment"', '{"type": "reading"'))
    ]
    lines = [line.replace('"status": "complete"', '"status": "in_progress"') for line in lines]
    keep = [
        line
        for line in lines
        if not any(
            s in line
            for s in (
                '"premedication"',
                '"infusion_start"',
                '"infusion_end"',
                '"disposal"',
                '"observation"',
                '"discharge"',
            )
        )
    ]
    path = tmp_path / "open.jsonl"
    path.write_text("\n".join(keep) + "\n")
    quiet = json.loads(CliRunner().invoke(evaluate_command, [str(path)]).output)
    assert quiet["findings"] == []
    late = json.loads(
        CliRunner()
        .invoke(evaluate_command, [str(path), "--now", "2026-10-02T10:00:00+08:00"])
        .output
    )
    assert [(f["rule"], f["actual"]) for f in late["findings"]] == [
        ("kymriah.thaw_to_infusion", "not done after 48m")
    ]
    bad = CliRunner().invoke(evaluate_command, [str(path), "--now", "2026-10-02T10:00:00"])
    assert bad.exit_code != 0 and "no UTC offset" in bad.output

    # The ward's question: what is due, and by when?
    due = json.loads(
        CliRunner()
        .invoke(evaluate_command, [str(path), "--now", "2026-10-02T09:20:00+08:00", "--due"])
        .output
    )
    deadline = next(item for item in due["due"] if item["step"] == "infusion_end")
    assert deadline["by"] == "2026-10-02T09:42:00+08:00"
    assert "by 09:42" in deadline["message"]
    text = CliRunner().invoke(
        evaluate_command,
        [str(path), "--now", "2026-10-02T09:20:00+08:00", "--due", "--format", "text"],
    )
    assert "DUE" in text.output and "by 09:42" in text.output
    without_now = CliRunner().invoke(evaluate_command, [str(path), "--due"])
    assert without_now.exit_code != 0 and "give --now" in without_now.output


def _prefixed(lines: list[dict], prefix: str) -> list[dict]:
    """The same records under ids of their own, so that products can share one file."""
    out = []
    for line in lines:
        line = json.loads(json.dumps(line))
        if line["type"] == "unit":
            line["id"] = prefix + line["id"]
        elif line["type"] == "step":
            line["unit"] = prefix + line["unit"]
            if isinstance(line.get("fields", {}).get("equipment"), str):
                line["fields"]["equipment"] = prefix + line["fields"]["equipment"]
        elif line["type"] == "equipment":
            line["id"] = prefix + line["id"]
        elif line["type"] == "reading":
            line["equipment"] = prefix + line["equipment"]
        out.append(line)
    return out


def test_evaluate_a_file_of_every_product_finds_exactly_the_violations(tmp_path: Path) -> None:
    from qms.checklists.language import Registry
    from tests.checklists.casebook import compliant_lines, file_case

    registry = Registry.from_directory()
    broken = {
        "kymriah": "thaw_to_infusion",
        "blincyto": "bag_hold_room",
        "besponsa": "cytotoxic_waste",
    }
    lines: list[dict] = []
    required: set[tuple[str, str]] = set()
    allowed: set[tuple[str, str]] = set()
    for checklist in registry:
        prefix = f"{checklist.id.upper()}-"
        if checklist.id in broken:
            path = EXAMPLES_DIR / checklist.id / "violations" / f"{broken[checklist.id]}.yaml"
            case = file_case(checklist, path)
            product_lines = case.lines
            required.add((prefix + case.unit, case.rule))
            allowed.update((prefix + case.unit, rule) for rule in case.expect)
        else:
            product_lines = compliant_lines(checklist.id)
        lines.extend(_prefixed(product_lines, prefix))
    assert len({line["checklist"] for line in lines if line["type"] == "unit"}) == 11
    path = tmp_path / "all-products.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))

    result = CliRunner().invoke(evaluate_command, [str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["units"] == sum(1 for line in lines if line["type"] == "unit")
    found = {(f["unit"], f["rule"]) for f in report["findings"]}
    # Each broken product is caught, and nothing leaks into the other products' units.
    assert required <= found <= required | allowed
