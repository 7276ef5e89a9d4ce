"""`qms identify CODE`: JSON on stdout, exit status 0 for a valid code and 1 otherwise."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qms.identifiers.cli import commands, identify_command


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(identify_command, list(args), input=stdin)


def test_command_is_exported_as_identify():
    assert commands == [identify_command]
    assert identify_command.name == "identify"


def test_valid_din_exits_0_with_json():
    result = run("=G12341765432170")

    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["kind"] == "isbt128_din"
    assert data["valid"] is True
    assert data["raw"] == "=G12341765432170"
    assert data["parts"]["check_character"] == "A"
    assert result.output.startswith('{\n  "kind"')  # indented for people


def test_invalid_din_exits_1_with_the_reason():
    result = run("=G12341765432171")

    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert data["problems"][0].startswith("check character is A but the flag says 71")


def test_gs1_with_literal_separator():
    result = run("]d2010950600013435217260630<GS>10ABC")

    assert result.exit_code == 0
    assert json.loads(result.output)["parts"]["lot"] == "ABC"


def test_text_is_valid_and_not_escaped():
    result = run("李娜")

    assert result.exit_code == 0
    assert '"李娜"' in result.output


def test_code_from_standard_input():
    result = run("-", stdin="CHG123426ABC123\r\n")

    assert result.exit_code == 0
    assert json.loads(result.output)["kind"] == "isbt128_coi"


def test_help_explains_exit_status():
    result = run("--help")

    assert result.exit_code == 0
    assert "0 when the code is valid, 1 when it is not" in result.output
