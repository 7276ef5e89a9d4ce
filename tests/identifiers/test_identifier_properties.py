"""Properties that must hold for every DIN, COI and GTIN, not just the examples."""

from __future__ import annotations

import json

from biip.checksums import gs1_standard_check_digit
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qms.identifiers import GS1, ISBT128_DIN, TEXT, check_character, check_flag, identify
from qms.identifiers.isbt128 import CHECK_ALPHABET

FIRST = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
FACILITY_ALNUM = "ABCDEFGHIJKLMNPQRSTUVWXYZ0123456789"
DIGITS = "0123456789"


def chars(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


dins = st.builds(
    lambda a, b, c, yy, seq: a + b + c + yy + seq,
    chars(FIRST, 1),
    chars(FACILITY_ALNUM, 2),
    chars(DIGITS, 2),
    chars(DIGITS, 2),
    chars(DIGITS, 6),
)


@given(dins)
def test_every_din_with_its_computed_flag_is_valid(din):
    result = identify(f"={din}{check_flag(din)}")

    assert result.kind == ISBT128_DIN
    assert result.valid, result.problems
    assert result.parts["check_verified"] is True
    assert result.normalised == din


@given(dins, st.integers(min_value=0, max_value=12), st.sampled_from(CHECK_ALPHABET))
@example("A999926012345", 0, "*")  # the first character made "*": another structure
def test_changing_any_one_character_is_detected(din, position, replacement):
    if din[position] == replacement:
        replacement = CHECK_ALPHABET[(CHECK_ALPHABET.index(replacement) + 1) % 37]
    changed = din[:position] + replacement + din[position + 1 :]

    result = identify(f"={changed}{check_flag(din)}")

    if changed.startswith("*"):
        # "=*" is another ISBT 128 data identifier (the collection date): never a DIN.
        assert result.kind != ISBT128_DIN
    else:
        assert result.kind == ISBT128_DIN
        assert not result.valid


@given(dins, st.integers(min_value=0, max_value=11))
def test_swapping_neighbours_is_detected(din, position):
    a, b = din[position], din[position + 1]
    swapped = din[:position] + b + a + din[position + 2 :]

    result = identify(f"={swapped}{check_flag(din)}")

    assert result.valid == (a == b)


@given(dins)
def test_typed_din_with_keyboard_check_character(din):
    result = identify(din + check_character(din))

    if din[0].isdigit():
        # Without "=", digits-only numbers are too easily a lot or EAN: read as text.
        assert result.kind == TEXT
    else:
        assert result.valid
        assert result.parts["check_verified"] is True


@given(chars(DIGITS, 13), st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", max_size=12))
def test_gs1_pack_round_trip_and_single_digit_errors(payload, lot):
    gtin = payload + str(gs1_standard_check_digit(payload))
    scan = f"]d201{gtin}17300100\x1d10{lot}" if lot else f"]d201{gtin}17300100"

    result = identify(scan)

    assert result.kind == GS1
    assert result.valid, result.problems
    assert result.parts["gtin"] == gtin
    assert result.parts["lot"] == (lot or None)
    assert result.parts["expiry"] == "2030-01-31"

    wrong_check = str((int(gtin[-1]) + 1) % 10)
    assert not identify(f"]d201{gtin[:-1]}{wrong_check}").valid


@given(st.text(max_size=60))
def test_any_input_gives_a_consistent_json_ready_answer(code):
    result = identify(code)

    assert result.valid == (not result.problems)
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data


scanner_starts = st.sampled_from(
    ["", "]d2", "]C1", "]Q3", "]E0", "]C0", "(01)", "(10)", "=", "=G1234", "&/", "CH", "\x1d"]
    + ["https://id.gs1.org/01/09506000134352/", "0109506000134352"]
)
scanner_pieces = st.lists(
    st.sampled_from([*"0123456789()ABCxyz=&/ <>*%-_.?#:", "\x1d", "<GS>", "\\x1d"]),
    max_size=40,
).map("".join)


@settings(max_examples=500)
@given(scanner_starts, scanner_pieces)
def test_scanner_like_garbage_never_crashes(start, rest):
    result = identify(start + rest)

    assert result.valid == (not result.problems)
