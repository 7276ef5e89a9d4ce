"""What reading a label says of it: each problem and note a code and parameters, worded when
shown, in the reader's language.

A problem is a `Said`: the English sentence itself (a `str`, so a result printed or compared
as text reads as before: `qms identify`, the JSON of a scan) that also keeps the code and
parameters it was made from. `worded(said, gettext)` makes its words again through a
translation function (Flask-Babel's `gettext` on a page). A parameter may itself be said
(a kind of identifier, the problems of a code that was not of the kind expected).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def N_(text: str) -> str:
    """Mark a template for extraction into the translation catalog; return it unchanged."""
    return text


TEXTS: dict[str, str] = {
    # kinds of identifier, as a sentence names them
    "kind.isbt128_din": N_("an ISBT 128 donation identification number (DIN)"),
    "kind.isbt128_coi": N_("an ISBT 128 chain of identity (COI) identifier"),
    "kind.isbt128_other": N_("an ISBT 128 barcode that is neither a DIN nor a COI identifier"),
    "kind.gs1": N_("a GS1 drug pack barcode"),
    "kind.text": N_("plain text"),
    "kind.or": N_("%(first)s or %(second)s"),
    # what a form asked for and what was scanned
    "expect.other_kind": N_("expected %(expected)s, but this is %(kind)s"),
    "expect.other_kind_invalid": N_(
        "expected %(expected)s, but this is %(kind)s (and it is not valid: %(problems)s)"
    ),
    "expect.invalid": N_("this is %(kind)s, but it is not valid: %(problems)s"),
    # any code
    "scan.empty": N_("nothing was scanned or typed"),
    "scan.full_width": N_(
        "full-width characters were read as ordinary ones (an input method was probably "
        "active while scanning)"
    ),
    "text.bare_gtin": N_(
        "these digits could be a product barcode (EAN/GTIN) scanned without a scanner "
        "prefix; it is read as text"
    ),
    # GS1
    "gs1.nothing_after_prefix": N_("nothing follows the scanner prefix"),
    "gs1.incomplete": N_("not complete GS1 data: %(detail)s"),
    "gs1.not_pairs": N_(
        "parts of the text are not '(AI)value' pairs, so it cannot all be read: '%(text)s'"
    ),
    "gs1.empty_value": N_("(%(ai)s) has no value: the printed text is incomplete"),
    "gs1.space_in_value": N_(
        "the value of (%(ai)s) '%(value)s' contains a space, which GS1 data cannot hold"
    ),
    "gs1.incomplete_link": N_("not a complete GS1 Digital Link: %(detail)s"),
    "gs1.bare_gtin": N_("a bare GTIN names the product only: no lot, expiry or serial number"),
    "gs1.ai_twice": N_(
        "(%(ai)s) appears twice with different values, '%(first)s' and '%(second)s'"
    ),
    "gs1.key_error": N_("%(detail)s"),
    "gs1.day_00": N_(
        "expiry %(value)s has day 00, which GS1 defines as the last day of the month: %(date)s"
    ),
    "gs1.serial_without_gtin": N_(
        "serial number (21) '%(serial)s' without a GTIN (01): a serial number identifies a "
        "pack only together with its GTIN"
    ),
    "gs1.no_gtin": N_(
        "no GTIN (AI 01): without a product number this is not read as a drug pack barcode"
    ),
    "gs1.check_digit": N_(
        "GTIN %(gtin)s ends in check digit %(typed)s, but its other digits give %(expected)s: "
        "the code was misread, mistyped or misprinted"
    ),
    "gs1.invalid_gtin": N_("not a valid GTIN: %(detail)s"),
    "gs1.hidden_expiry": N_(
        "no group separators were received, and (%(ai)s) '%(value)s' may hide an expiry "
        "date %(hidden)s: check the printed text on the pack, and set the scanner to send "
        "group separators"
    ),
    "gs1.hidden_serial": N_(
        "no group separators were received, and (%(ai)s) '%(value)s' may hide a serial "
        "number %(hidden)s: check the printed text on the pack, and set the scanner to send "
        "group separators"
    ),
    # ISBT 128
    "isbt.lower_case": N_("lower-case letters were read as capitals (ISBT 128 uses capitals only)"),
    "isbt.other_structure": N_(
        "this is an ISBT 128 %(name)s barcode (data identifier %(data_identifier)s), not a "
        "donation identification number or chain of identity identifier; scan the DIN "
        "barcode (it starts with =) or the COI barcode"
    ),
    "isbt.flag_missing": N_(
        "the flag is missing: a DIN barcode holds the 13-character number and then 2 flag "
        "characters, this one has %(count)s after the number"
    ),
    "isbt.no_data_identifier": N_(
        "read as a DIN barcode whose '=' data identifier the scanner left out"
    ),
    "isbt.extra_after_flag": N_("%(count)s unexpected characters after the flag: '%(extra)s'"),
    "isbt.extra_after_flag_several": N_(
        "%(count)s unexpected characters after the flag: '%(extra)s' (it looks like several "
        "ISBT 128 barcodes read together; scan the DIN barcode on its own)"
    ),
    "isbt.check_typed": N_(
        "check character is %(expected)s but %(typed)s was typed after the number: a "
        "character was mistyped or misread"
    ),
    "isbt.no_check": N_(
        "no check character was scanned, so a misread number cannot be detected here: "
        "compare the boxed check character on the label with %(expected)s"
    ),
    "isbt.din_length": N_("a DIN has 13 characters, this one has %(count)s"),
    "isbt.din_year": N_("the year '%(year)s' (characters 6-7) must be two digits"),
    "isbt.din_sequence": N_(
        "the sequence number '%(sequence)s' (characters 8-13) must be six digits"
    ),
    "isbt.facility_first": N_(
        "the facility id must start with a letter A-N or P-Z or a digit 1-9, not '%(first)s'"
    ),
    "isbt.facility_first_o": N_(
        "the facility id must start with a letter A-N or P-Z or a digit 1-9, not '%(first)s' "
        "(the letter O is never used, to avoid confusion with zero)"
    ),
    "isbt.facility_middle": N_(
        "characters 2-3 of the facility id '%(facility)s' must be digits or letters other than O"
    ),
    "isbt.facility_end": N_("characters 4-5 of the facility id '%(facility)s' must be digits"),
    "isbt.flag_chars": N_("the flag '%(flag)s' is not two flag characters (0-9, A-H, J-N, P, R-Y)"),
    "isbt.flag_reserved": N_(
        "flag %(flag)s is reserved by ICCBBA for future use, so no label made to ISBT 128 "
        "v6.2.2 carries it"
    ),
    "isbt.check_flag": N_(
        "check character is %(expected)s but the flag says %(flag)s (which would be check "
        "character %(flag_check)s): the number was misread, mistyped or misprinted"
    ),
    "isbt.coi_length": N_(
        "a chain of identity identifier has 15 characters, this one has %(count)s"
    ),
    "isbt.extra_after_coi": N_("%(count)s unexpected characters after the identifier: '%(extra)s'"),
    "isbt.coi_prefix": N_("a chain of identity identifier starts with CH, not '%(prefix)s'"),
    "isbt.coi_year": N_("the year '%(year)s' (characters 8-9) must be two digits"),
    "isbt.coi_sequence": N_(
        "the sequence '%(sequence)s' (characters 10-15) must be letters or digits"
    ),
    "isbt.coi_check_typed": N_(
        "check character is %(expected)s but %(typed)s was typed after the identifier: a "
        "character was mistyped or misread"
    ),
}

# A list of problems inside a sentence is joined so.
JOIN = "; "


class Said(str):
    """A problem or note of a label: the English words, with their code and parameters."""

    code: str
    params: dict[str, Any]

    def __new__(cls, code: str, **params: Any) -> Said:
        self = super().__new__(cls, _fill(TEXTS[code], params, None))
        self.code = code
        self.params = params
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_said, (self.code, self.params))


def _said(code: str, params: dict[str, Any]) -> Said:
    return Said(code, **params)


def _fill(template: str, params: dict[str, Any], gettext: Callable[[str], str] | None) -> str:
    return template % {name: _shown(value, gettext) for name, value in params.items()}


def _shown(value: Any, gettext: Callable[[str], str] | None) -> str:
    if isinstance(value, Said):
        return worded(value, gettext)
    if isinstance(value, list | tuple):
        joined = gettext(JOIN) if gettext else JOIN
        return joined.join(_shown(v, gettext) for v in value)
    return str(value)


def worded(said: Any, gettext: Callable[[str], str] | None = None) -> str:
    """The words of a problem or note through `gettext` (a page's language); English without
    one. Plain text (a library's own message) is shown as it is."""
    if not isinstance(said, Said) or gettext is None:
        return str(said)
    return _fill(gettext(TEXTS[said.code]), said.params, gettext)
