"""identify() as a whole: plain text, the result object, and expect() for form fields."""

from __future__ import annotations

import json

import pytest

from qms.identifiers import (
    GS1,
    ISBT128_COI,
    ISBT128_DIN,
    TEXT,
    Identification,
    IdentifierError,
    expect,
    identify,
)

PACK = "]d20109506000134352172606301" + "0ABC"


def test_plain_text_is_trimmed_and_valid():
    result = identify("  Patient wristband checked  ")

    assert result.kind == TEXT
    assert result.valid
    assert result.normalised == "Patient wristband checked"
    assert result.parts == {"text": "Patient wristband checked"}


def test_plain_text_keeps_its_case_and_characters():
    assert identify("李娜 ward 5").normalised == "李娜 ward 5"


def test_text_behind_a_non_gs1_scanner_prefix():
    result = identify("]C0BED-12")

    assert result.kind == TEXT
    assert result.parts == {"text": "BED-12", "symbology": "]C0"}


def test_text_starting_with_a_bracket_keeps_it():
    assert identify("]Hello").normalised == "]Hello"


def test_empty_scan_is_invalid():
    result = identify(" \r\n")

    assert result.kind == TEXT
    assert not result.valid
    assert result.problems == ["nothing was scanned or typed"]


def test_full_width_input_method_characters():
    result = identify("＝Ｇ１２３４１７６５４３２１７０")

    assert result.kind == ISBT128_DIN
    assert result.valid
    assert any("full-width" in n for n in result.notes)


def test_identify_rejects_non_strings():
    with pytest.raises(TypeError):
        identify(b"=G12341765432170")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code",
    ["=G12341765432170", "CHG123426ABC123", PACK, "hello", "=G12341765432171", "]d2x", ""],
)
def test_to_json_is_json_ready_and_has_the_required_keys(code):
    data = identify(code).to_json()

    assert {"kind", "valid", "raw", "normalised", "parts", "problems", "notes"} <= data.keys()
    assert data["raw"] == code
    assert json.loads(json.dumps(data)) == data


def test_to_json_returns_a_copy():
    result = identify("=G12341765432170")
    result.to_json()["parts"]["din"] = "tampered"

    assert result.parts["din"] == "G123417654321"


def test_identification_refuses_to_be_valid_with_problems():
    with pytest.raises(ValueError):
        Identification(kind=TEXT, valid=True, raw="x", normalised="x", problems=["bad"])
    with pytest.raises(ValueError):
        Identification(kind=TEXT, valid=False, raw="x", normalised="x")
    with pytest.raises(ValueError):
        Identification(kind="barcode", valid=True, raw="x", normalised="x")


def test_expect_returns_the_identification():
    result = expect("=G12341765432170", ISBT128_DIN)

    assert result.parts["din"] == "G123417654321"
    assert expect(PACK, GS1).parts["lot"] == "ABC"


def test_expect_accepts_one_of_several_kinds():
    assert expect("CHG123426ABC123", [ISBT128_DIN, ISBT128_COI]).kind == ISBT128_COI


def test_expect_wrong_kind_names_both():
    with pytest.raises(IdentifierError) as caught:
        expect(PACK, ISBT128_DIN)

    message = str(caught.value)
    assert message == (
        "expected an ISBT 128 donation identification number (DIN), "
        "but this is a GS1 drug pack barcode"
    )
    assert caught.value.identification.kind == GS1


def test_expect_invalid_scan_gives_the_reason():
    with pytest.raises(IdentifierError) as caught:
        expect("=G12341765432171", ISBT128_DIN)

    assert str(caught.value).startswith(
        "this is an ISBT 128 donation identification number (DIN), but it is not valid: "
        "check character is A but the flag says 71"
    )


def test_expect_wrong_kind_and_invalid():
    with pytest.raises(IdentifierError, match=r"but this is a GS1 drug pack barcode \(and it is"):
        expect("]d2hello", ISBT128_DIN)


def test_expect_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown identifier kind"):
        expect("x", "isbt")
    with pytest.raises(ValueError):
        expect("x", [])
