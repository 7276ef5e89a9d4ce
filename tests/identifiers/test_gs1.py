"""GS1 drug pack barcodes as scanners deliver them, and text that must not pass for GS1."""

from __future__ import annotations

import pytest

from qms.identifiers import GS1, TEXT, identify

GTIN = "09506000134352"  # GS1's example GTIN; check digit 2
HRI = f"(01){GTIN}(17)260630(10)ABC"


def assert_pack(result, *, lot="ABC", expiry="2026-06-30", serial=None):
    assert result.kind == GS1
    assert result.valid, result.problems
    assert result.parts["gtin"] == GTIN
    assert result.parts["lot"] == lot
    assert result.parts["expiry"] == expiry
    assert result.parts["serial"] == serial


@pytest.mark.parametrize(
    "code",
    [
        f"]d201{GTIN}17260630\x1d10ABC",  # DataMatrix, separator only where needed
        f"]d201{GTIN}1726063010ABC",  # variable-length lot last: no separator needed
        f"]C101{GTIN}17260630<GS>10ABC",  # GS1-128, separator spelled <GS>
        f"]Q301{GTIN}17260630\\x1d10ABC",  # QR, separator spelled \x1d as text
        f"]d2\x1d01{GTIN}17260630\x1d10ABC\x1d",  # leading FNC1 and trailing GS sent as GS
        f"01{GTIN}17260630\x1d10ABC",  # no scanner prefix
        f"01{GTIN}1726063010ABC",  # no prefix, no separator
        HRI,
        f"(01) {GTIN} (17) 260630 (10) ABC",  # typed with spaces between parts
        f"  {HRI}\r\n",
    ],
)
def test_pack_variants_read_the_same(code):
    result = identify(code)

    assert_pack(result)
    assert result.normalised == HRI


def test_lot_before_expiry_with_separator_keeps_the_label_order():
    result = identify(f"01{GTIN}10ABC\x1d17260630")

    assert_pack(result)
    assert result.normalised == f"(01){GTIN}(10)ABC(17)260630"


def test_serial_and_other_ais_are_reported():
    result = identify(f"]d201{GTIN}17260630\x1d10ABC\x1d21XYZ123\x1d30012")

    assert_pack(result, serial="XYZ123")
    elements = {e["ai"]: e for e in result.parts["elements"]}
    assert elements["30"]["value"] == "012"
    assert elements["30"]["title"] == "VAR. COUNT"
    assert elements["17"]["date"] == "2026-06-30"
    assert result.parts["symbology"] == "]d2"
    assert result.parts["symbology_name"] == "GS1 DataMatrix"


def test_expiry_day_00_means_end_of_month():
    result = identify(f"(01){GTIN}(17)260200(10)ABC")

    assert result.valid
    assert result.parts["expiry"] == "2026-02-28"
    assert any("day 00" in n and "2026-02-28" in n for n in result.notes)
    assert identify(f"(01){GTIN}(17)280200").parts["expiry"] == "2028-02-29"


def test_impossible_expiry_date_is_invalid():
    result = identify(f"]d201{GTIN}17260231")

    assert result.kind == GS1
    assert not result.valid
    assert "260231" in result.problems[0]


@pytest.mark.parametrize(
    "code",
    [
        "]d2010950600013435317260630",
        "0109506000134353",
        "(01)09506000134353(10)ABC",
    ],
)
def test_bad_gtin_check_digit(code):
    result = identify(code)

    assert result.kind == GS1
    assert not result.valid
    assert result.problems == [
        "GTIN 09506000134353 ends in check digit 3, but its other digits give 2: "
        "the code was misread, mistyped or misprinted"
    ]


@pytest.mark.parametrize("lot", ["2406150123", "10ABC", "17260630", "123456", "0123", "A12345"])
def test_lot_numbers_that_look_numeric_stay_text(lot):
    # biip alone reads "2406150123" as AI 240 and "10ABC" as a lot: neither is a pack.
    result = identify(lot)

    assert result.kind == TEXT
    assert result.valid
    assert result.normalised == lot


def test_gtin_digits_without_prefix_stay_text_with_a_note():
    result = identify("6901234567892")

    assert result.kind == TEXT
    assert any("product barcode" in n for n in result.notes)


def test_bare_gtin_behind_an_ean_prefix():
    result = identify("]E06901234567892")

    assert result.kind == GS1
    assert result.valid
    assert result.parts["gtin"] == "06901234567892"
    assert result.parts["form"] == "GTIN only"
    bad = identify("]E06901234567893")
    assert not bad.valid
    assert "ends in check digit 3, but its other digits give 2" in bad.problems[0]


def test_gs1_prefix_with_broken_data_is_gs1_not_text():
    result = identify("]d2hello")

    assert result.kind == GS1
    assert not result.valid
    assert result.problems[0].startswith("not complete GS1 data")


def test_gs1_prefix_with_nothing_after_it():
    result = identify("]d2")

    assert result.kind == GS1
    assert result.problems == ["nothing follows the scanner prefix"]


def test_unprefixed_gs1_needs_a_gtin():
    result = identify("10ABC\x1d17260630")

    assert result.kind == GS1
    assert not result.valid
    assert "no GTIN (AI 01)" in result.problems[0]


def test_prefixed_or_printed_gs1_without_gtin_is_still_gs1():
    result = identify("]C110ABC\x1d17260630")

    assert result.valid
    assert result.parts["gtin"] is None
    assert result.parts["lot"] == "ABC"


def test_lot_and_serial_keep_their_case():
    result = identify(f"]d201{GTIN}10AbC\x1d21xY1")

    assert result.parts["lot"] == "AbC"
    assert result.parts["serial"] == "xY1"


def test_missing_separator_hiding_an_expiry_is_invalid():
    # Lot before expiry, and a keyboard-wedge scanner that dropped ASCII 29.
    result = identify(f"01{GTIN}10ABC17260630")

    assert result.kind == GS1
    assert not result.valid
    assert "may hide an expiry date (17)260630" in result.problems[0]
    assert result.parts["lot"] == "ABC17260630"


def test_missing_separator_maybe_hiding_a_serial_is_a_note():
    result = identify(f"01{GTIN}1726063010ABC21XYZ")

    assert result.valid
    assert any("may hide a serial number (21)XYZ" in n for n in result.notes)


def test_repeated_ai_with_different_values():
    result = identify(f"(01){GTIN}(10)ABC(10)DEF")

    assert not result.valid
    assert result.problems == ["(10) appears twice with different values, 'ABC' and 'DEF'"]


def test_printed_form_with_a_space_inside_a_value():
    # biip would silently join "A B" into "AB".
    result = identify(f"(01){GTIN}(10)A B")

    assert result.kind == GS1
    assert not result.valid
    assert "contains a space" in result.problems[0]


def test_printed_form_that_cannot_all_be_read():
    # biip's HRI parser would drop "(C" without a word.
    result = identify(f"(01){GTIN}(10)AB(C")

    assert not result.valid
    assert "cannot all be read" in result.problems[0]


def test_printed_form_with_unknown_ai():
    result = identify("(01)09506000134352(0)1")

    assert result.kind == GS1
    assert not result.valid


def test_digital_link():
    result = identify(f"https://id.gs1.org/01/{GTIN}/10/ABC?17=260630")

    assert_pack(result)
    assert result.parts["form"] == "GS1 Digital Link"
    assert identify(f"]Q3https://id.gs1.org/01/{GTIN}/10/ABC").parts["lot"] == "ABC"


def test_ordinary_web_address_is_text():
    assert identify("https://example.org/patients/01/abc").kind == TEXT


def test_text_mentioning_a_separator_is_still_text():
    assert identify("press <GS> to send").kind == TEXT


@pytest.mark.parametrize(
    "code",
    [f"(01){GTIN}(17)(10)ABC", f"(01){GTIN}(17) (10)ABC", f"(01){GTIN}(10)ABC(21)"],
)
def test_printed_form_with_an_empty_value_is_refused(code):
    # GS1's test vector: biip skips the empty (17), which read as a pack with no expiry.
    result = identify(code)

    assert result.kind == GS1
    assert not result.valid
    assert any("has no value" in problem for problem in result.problems)


@pytest.mark.parametrize("code", ["]d221XYZ123\x1d10ABC", "(21)XYZ123(10)ABC", "]C121XYZ123"])
def test_serial_without_gtin_is_refused(code):
    result = identify(code)

    assert result.kind == GS1
    assert not result.valid
    assert any("without a GTIN (01)" in problem for problem in result.problems)


def test_serial_with_its_gtin_is_a_pack():
    result = identify(f"]d201{GTIN}21XYZ123\x1d10ABC\x1d17260630")

    assert_pack(result, serial="XYZ123")
