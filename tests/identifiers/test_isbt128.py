"""ISBT 128 DINs and chain of identity identifiers, read as ward staff scan or type them."""

from __future__ import annotations

import pytest
from stdnum.iso7064 import mod_37_2

from qms.identifiers import (
    ISBT128_COI,
    ISBT128_DIN,
    ISBT128_OTHER,
    TEXT,
    check_character,
    check_flag,
    identify,
)
from qms.identifiers.isbt128 import CHECK_ALPHABET, nominal_year

WORKED_DIN = "G123417654321"  # ST-001 Appendix A: check character A, value 10, flag 70


def test_worked_example_from_the_standard_is_valid():
    result = identify("=G12341765432170")

    assert result.kind == ISBT128_DIN
    assert result.valid
    assert result.problems == []
    assert result.normalised == WORKED_DIN
    parts = result.parts
    assert parts["din"] == WORKED_DIN
    assert parts["facility_id"] == "G1234"
    assert parts["year"] == 2017
    assert parts["sequence"] == "654321"
    assert parts["flag"] == "70"
    assert parts["flag_type"] == "check_character"
    assert parts["check_character"] == "A"
    assert parts["check_value"] == 10
    assert parts["check_flag"] == "70"
    assert parts["keyboard_check_character"] == "A"
    assert parts["check_verified"] is True
    assert parts["data_identifier"] == "="


def test_check_character_matches_the_standard_examples():
    assert check_character(WORKED_DIN) == "A"
    assert check_flag(WORKED_DIN) == "70"
    # ST-001 7.5.1.1 prints "A9998 18 123456" with the boxed check character N.
    assert check_character("A999818123456") == "N"


def test_check_character_rejects_characters_outside_the_alphabet():
    with pytest.raises(ValueError):
        check_character("G12341765432a")


@pytest.mark.parametrize("flag", [str(n) for n in range(60, 97) if n != 70])
def test_every_other_check_flag_is_rejected(flag):
    result = identify(f"=G123417654321{flag}")

    assert result.kind == ISBT128_DIN
    assert not result.valid
    claimed = CHECK_ALPHABET[int(flag) - 60]
    assert result.problems == [
        f"check character is A but the flag says {flag} (which would be check character "
        f"{claimed}): the number was misread, mistyped or misprinted"
    ]
    assert result.parts["check_verified"] is False


def test_problem_names_computed_character_and_flag():
    # A DIN whose check character is 7 (flag 67), scanned with flag 71.
    din = next(
        f"G1234170000{n:02d}" for n in range(100) if check_character(f"G1234170000{n:02d}") == "7"
    )
    result = identify(f"={din}71")

    assert not result.valid
    assert result.problems[0].startswith("check character is 7 but the flag says 71")


@pytest.mark.parametrize(
    ("flag", "flag_type"),
    [
        ("00", "not_used"),
        ("01", "iccbba_process_control"),
        ("07", "iccbba_process_control"),
        ("19", "iccbba_process_control"),
        ("20", "local_process_control"),
        ("59", "local_process_control"),
    ],
)
def test_flags_without_a_check_character_are_valid_but_unverified(flag, flag_type):
    result = identify(f"=G123417654321{flag}")

    assert result.valid
    assert result.parts["flag_type"] == flag_type
    assert "no check character carried" in result.parts["flag_meaning"]
    assert result.parts["check_verified"] is False
    # The computed check character is still given, to compare with the printed label.
    assert result.parts["check_character"] == "A"
    assert any("compare the boxed check character on the label with A" in n for n in result.notes)


def test_container_flag_meaning_comes_from_the_flag_table():
    assert identify("=G12341765432102").parts["flag_meaning"].startswith("container 2 of a set")


@pytest.mark.parametrize("flag", ["14", "97", "98", "99", "A1", "0B"])
def test_reserved_flags_are_rejected(flag):
    result = identify(f"=G123417654321{flag}")

    assert result.kind == ISBT128_DIN
    assert not result.valid
    assert result.parts["flag_type"] == "reserved"
    assert f"flag {flag} is reserved" in result.problems[0]


def test_flag_with_characters_never_used_in_flags():
    result = identify("=G123417654321I0")

    assert not result.valid
    assert "not two flag characters" in result.problems[0]


def test_bare_thirteen_characters_are_a_din_with_the_computed_check_character():
    result = identify("G123417654321")

    assert result.kind == ISBT128_DIN
    assert result.valid
    assert result.parts["flag"] is None
    assert result.parts["data_identifier"] is None
    assert result.parts["check_character"] == "A"
    assert result.parts["keyboard_check_character"] == "A"
    assert result.parts["check_verified"] is False
    assert any("no check character was scanned" in n for n in result.notes)


def test_typed_from_eye_readable_label_with_spaces_lower_case_and_check_character():
    result = identify("  g1234 17 654321 a \n")

    assert result.kind == ISBT128_DIN
    assert result.valid
    assert result.normalised == WORKED_DIN
    assert result.parts["check_verified"] is True
    assert any("lower-case" in n for n in result.notes)


def test_typed_check_character_that_does_not_match():
    result = identify("G123417654321B")

    assert not result.valid
    assert result.problems[0].startswith("check character is A but B was typed")


def test_din_without_data_identifier_but_with_flag():
    result = identify("G12341765432170")

    assert result.valid
    assert result.parts["flag"] == "70"
    assert result.parts["check_verified"] is True
    assert any("'=' data identifier" in n for n in result.notes)


@pytest.mark.parametrize("prefix", ["]C0", "]C4", "]d1", "]Q1"])
def test_aim_symbology_prefixes_are_removed(prefix):
    result = identify(f"{prefix}=G12341765432170")

    assert result.kind == ISBT128_DIN
    assert result.valid
    assert result.parts["symbology"] == prefix


def test_scan_with_trailing_enter_and_tab():
    assert identify("=G12341765432170\r\n").valid
    assert identify("\t=G12341765432170\t").valid


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("=O12341765432170", "not 'O' (the letter O is never used"),
        ("=012341765432170", "not '0'"),
        ("=G12AB1765432170", "characters 4-5 of the facility id 'G12AB' must be digits"),
        ("=G1234A765432170", "the year 'A7' (characters 6-7) must be two digits"),
        ("=G12341765X32170", "the sequence number '65X321' (characters 8-13) must be six digits"),
        ("=G123417654321", "the flag is missing"),
        ("=G1234176543217", "the flag is missing"),
        ("=G1234176543", "a DIN has 13 characters, this one has 11"),
        ("=", "a DIN has 13 characters, this one has 0"),
    ],
)
def test_broken_dins_are_reported_as_dins_with_a_reason(code, reason):
    result = identify(code)

    assert result.kind == ISBT128_DIN
    assert not result.valid
    assert any(reason in p for p in result.problems), result.problems


def test_concatenated_isbt_barcodes_are_explained():
    result = identify("]C4=G12341765432170=<S1234000")

    assert result.kind == ISBT128_DIN
    assert not result.valid
    assert "several ISBT 128 barcodes read together" in result.problems[0]


def test_alpha_facility_characters_allowed_by_the_standard():
    # ST-001 2.4.1: positions 2-3 of the FIN may become letters (e.g. ABC12).
    din = "ABC1225000001"
    result = identify(f"={din}{check_flag(din)}")

    assert result.valid
    assert result.parts["facility_id"] == "ABC12"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("=<S1234000", "product code"),
        ("=%6200", "blood groups [ABO and RhD]"),
        ("=>025365", "expiration date"),
        ("=+06000", "compound message"),
        ("&,1ABCDEFGHIJKLMNOPQ", "MPHO lot number"),
        ("&aLOCAL", "data structure defined locally or nationally"),
    ],
)
def test_other_isbt_barcodes_are_named_not_mistaken_for_a_din(code, name):
    result = identify(code)

    assert result.kind == ISBT128_OTHER
    assert not result.valid
    assert result.parts["data_structure_name"].startswith(name)
    assert "not a donation identification number" in result.problems[0]


def test_nominal_year():
    assert nominal_year("17") == 2017
    assert nominal_year("00") == 2000
    assert nominal_year("89") == 2089
    # Cord blood labelled in the late 1990s is still in storage.
    assert nominal_year("98") == 1998


# Chain of identity ------------------------------------------------------------


def test_coi_from_design_example():
    result = identify("CHG123426ABC123")

    assert result.kind == ISBT128_COI
    assert result.valid
    assert result.normalised == "CHG123426ABC123"
    assert result.parts["coi"] == "CHG123426ABC123"
    assert result.parts["facility_id"] == "G1234"
    assert result.parts["year"] == 2026
    assert result.parts["sequence"] == "ABC123"
    assert result.parts["keyboard_check_character"] == mod_37_2.calc_check_digit("CHG123426ABC123")
    assert result.parts["check_verified"] is False


def test_coi_with_data_identifier_and_lower_case():
    result = identify("&/chg123426abc123")

    assert result.valid
    assert result.parts["data_identifier"] == "&/"
    assert result.normalised == "CHG123426ABC123"


def test_coi_typed_with_its_keyboard_check_character():
    k = check_character("CHG123426ABC123")
    assert identify(f"CHG123426ABC123{k}").parts["check_verified"] is True
    wrong = "0" if k != "0" else "1"
    result = identify(f"CHG123426ABC123{wrong}")
    assert not result.valid
    assert result.problems[0].startswith(f"check character is {k} but {wrong} was typed")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("&/CHO123426ABC123", "not 'O'"),
        ("&/CHG123426ABC12", "has 15 characters, this one has 14"),
        ("&/CHG12342XABC123", "the year '2X'"),
        ("&/CHG123426ABC12$", "must be letters or digits"),
        ("&/XXG123426ABC123", "starts with CH"),
        ("&/CHG123426ABC123Z", "unexpected characters"),
        ("CHO123426ABC123", "not 'O'"),
    ],
)
def test_broken_coi_identifiers(code, reason):
    result = identify(code)

    assert result.kind == ISBT128_COI
    assert not result.valid
    assert any(reason in p for p in result.problems), result.problems


def test_words_starting_with_ch_stay_text():
    assert identify("CHLORAMBUCIL5MG").kind == TEXT
    assert identify("CHEMOTHERAPY").kind == TEXT
