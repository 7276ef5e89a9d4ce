"""Hostile interchange files and checklists: one clear line each, a non-zero exit, nothing
written; lengths and id shapes judged with the line number, the same on both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from qms.checklists.cli import checklist_group, evaluate_command
from qms.cli import cli as qms_cli
from qms.core.models import LedgerEntry
from qms.records.interchange import MAX_PROBLEMS_SHOWN
from qms.runtime import Runtime

UNIT = {
    "type": "unit",
    "id": "U-1",
    "checklist": "testcart",
    "site": "SH-01",
    "patient": "P-0042",
    "coi_id": "CHG123426ABC123",
}
STEP = {"type": "step", "unit": "U-1", "step": "receipt", "at": "2026-10-02T09:00:00+08:00"}


def _line(**changes) -> str:
    return json.dumps({**UNIT, **changes})


HOSTILE = {
    "a 400-digit number": (
        [_line(attributes={"age_years": int("9" * 400)})],
        "2: attributes.age_years is a number of 400 digits: too large to be kept exactly",
    ),
    "attributes nested 100,000 deep": (
        ['{"type": "unit", "attributes": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001],
        "2: nested too deeply",
    ),
    "a time in year 1 at +14:00": (
        [_line(), json.dumps({**STEP, "at": "0001-01-01T00:00:00+14:00"})],
        "3: at '0001-01-01T00:00:00+14:00' is outside the years 1 to 9999 in UTC",
    ),
    "a lone surrogate in a reason": (
        [_line(), json.dumps(STEP)[:-1] + ', "reason": "bad \\ud800 text"}'],
        "3: reason holds a lone surrogate",
    ),
    "a NUL in a field": (
        [_line(), json.dumps({**STEP, "fields": {"note": "a\u0000b"}})],
        "3: fields.note holds a NUL character",
    ),
    "a 1 MB chain-of-identity id": (
        [_line(coi_id="C" * 1_000_000)],
        "2: coi_id is 1000000 characters long; at most 64",
    ),
    "markup in a record id": (
        [_line(), json.dumps({**STEP, "record_id": '<img src=x onerror="alert(1)">'})],
        "3: record_id",
    ),
}


@pytest.fixture
def cli(settings, database, registry, make_site):
    make_site("SH-01")
    runtime = Runtime(settings, database=database, registry=registry)

    def run(*args):
        return CliRunner().invoke(qms_cli, list(args), obj=runtime)

    return run


def _write(tmp_path, lines: list[str]):
    path = tmp_path / "hostile.jsonl"
    # A first, good line: the problem is on the line after it.
    path.write_text("\n".join(["", *lines]) + "\n")
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_one_clear_line_on_import_and_nothing_is_written(
    cli, session, tmp_path, case
):
    lines, expected = HOSTILE[case]
    path = _write(tmp_path, lines)
    before = session.exec(select(func.count()).select_from(LedgerEntry)).one()
    result = cli("import", str(path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"hostile.jsonl:{expected}" in result.output
    assert result.output.count("\n") == 2  # the problem, and "nothing was imported"
    assert session.exec(select(func.count()).select_from(LedgerEntry)).one() == before


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_one_clear_line_on_evaluate(tmp_path, case):
    lines, expected = HOSTILE[case]
    path = _write(tmp_path, lines)
    result = CliRunner().invoke(evaluate_command, [str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"hostile.jsonl:{expected}" in result.output
    assert result.output.count("\n") == 2


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"type": "unit", "id": "caf\u00e9"}\n'.encode("latin-1"), "not UTF-8 text"),
        (bytes(range(256)) * 8, "not UTF-8 text"),
    ],
    ids=["latin-1", "binary"],
)
def test_a_file_that_is_not_utf8_is_one_line_on_evaluate(tmp_path, content, why):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(content)
    result = CliRunner().invoke(evaluate_command, [str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert why in result.output and result.output.count("\n") == 2


def test_printed_problems_are_capped_with_a_count_of_the_rest(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{bad\n" * 2_000)
    result = CliRunner().invoke(evaluate_command, [str(path)])
    assert result.exit_code == 1
    printed = result.output.splitlines()
    assert len(printed) == MAX_PROBLEMS_SHOWN + 2
    assert printed[-2] == f"… and {2_000 - MAX_PROBLEMS_SHOWN} more problems"
    assert "2000 bad lines" in printed[-1]


def test_a_checklist_nested_3000_levels_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("id: deep\nsteps:\n  a: " + "[" * 3000 + "]" * 3000 + "\n")
    result = CliRunner().invoke(checklist_group, ["lint", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{path}:1: nested too deeply to be a checklist" in result.output


def test_ids_and_lengths_are_judged_alike_on_both_databases(cli, session, tmp_path, backend):
    before = session.exec(select(func.count()).select_from(LedgerEntry)).one()
    path = _write(
        tmp_path,
        [
            _line(coi_id="C" * 65),
            _line(id="U-2", checklist="<b>testcart</b>"),
            json.dumps(
                {"type": "equipment", "id": "LN2 01", "kind": "ln2_vapour", "site": "SH-01"}
            ),
        ],
    )
    result = cli("import", str(path))
    assert result.exit_code == 1
    assert "hostile.jsonl:2: coi_id is 65 characters long; at most 64" in result.output
    assert 'hostile.jsonl:3: checklist "<b>testcart</b>" may use only letters' in result.output
    assert 'hostile.jsonl:4: id "LN2 01" may use only letters' in result.output
    assert session.exec(select(func.count()).select_from(LedgerEntry)).one() == before
