"""ISBT 128 codes on cell-therapy bags: donation identification numbers (DIN) and COI identifiers.

Rules follow ICCBBA ST-001 (ISBT 128 Standard Technical Specification) v6.2.2:
section 2.4.1 and Table 3 (DIN and its flag characters), 2.4.40 (Chain of Identity
identifier), 7.5 and Appendix A (keyboard entry check character K, ISO/IEC 7064
mod 37-2), and Table 2 (data identifiers of the other data structures).
"""

from __future__ import annotations

import re
from typing import Any

from stdnum.iso7064 import mod_37_2

from qms.identifiers.messages import Said
from qms.identifiers.result import ISBT128_COI, ISBT128_DIN, ISBT128_OTHER, Identification
from qms.identifiers.scan import Symbology

# ISO/IEC 7064 mod 37-2 alphabet: the position of a character is its value (A = 10, * = 36).
CHECK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"

DIN_LENGTH = 13
COI_LENGTH = 15

# Character classes of ST-001 2.4.1 / 2.4.40. The letter O is never used in a facility id
# (it would be read as zero); the first character is never 0.
_FIRST = set("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")
_FACILITY_ALNUM = set("ABCDEFGHIJKLMNPQRSTUVWXYZ0123456789")
_DIGITS = set("0123456789")
_COI_SEQUENCE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# Flag characters: digits, or letters A-H, J-N, P, R-Y (ST-001 2.4.1).
_FLAG_CHARS = set("0123456789ABCDEFGHJKLMNPRSTUVWXY")

# ST-001 Table 3: flag values 00-19 defined by ICCBBA (type 1).
_ICCBBA_FLAGS = {
    0: "flag not used",
    1: "container 1 of a set",
    2: "container 2 of a set",
    3: "container 3 of a set",
    4: "container 4 of a set",
    5: "second (or repeated) demand-printed label",
    6: "pilot tube label",
    7: "test tube label",
    8: "donor record label",
    9: "sample tube for NAT testing",
    10: "samples for bacterial testing",
    11: "match with unit label",
    12: "affixed partial label",
    13: "attached label (used with an affixed partial label)",
    15: "container 5 of a set",
    16: "container 6 of a set",
    17: "container 7 of a set",
    18: "container 8 of a set",
    19: "container 9 of a set",
}

# ST-001 Table 2: data identifiers of the ISBT 128 data structures this module does not
# interpret, so a scan of the wrong barcode on a bag gets named instead of "invalid DIN".
_OTHER_STRUCTURES = {
    "=%": ("002", "blood groups [ABO and RhD]"),
    "=<": ("003", "product code"),
    "=>": ("004", "expiration date"),
    "&>": ("005", "expiration date and time"),
    "=*": ("006", "collection date"),
    "&*": ("007", "collection date and time"),
    "=}": ("008", "production date"),
    "&}": ("009", "production date and time"),
    "&(": ("010", "special testing: general"),
    "={": ("011", "special testing: red blood cell antigens (retired)"),
    "=\\": ("012", "special testing: red blood cell antigens, general"),
    "&\\": ("013", "special testing: red blood cell antigens, Finnish"),
    "&{": ("014", "special testing: platelet HLA and platelet-specific antigens"),
    "=[": ("015", "special testing: HLA-A and -B alleles (retired)"),
    '="': ("016", "special testing: HLA-DRB1 alleles (retired)"),
    "=)": ("017", "container manufacturer and catalog number"),
    "&)": ("018", "container lot number"),
    "=;": ("019", "donor identification number"),
    "='": ("020", "staff member identification number"),
    "=-": ("021", "manufacturer and catalog number: items other than containers"),
    "&-": ("022", "lot number: items other than containers"),
    "=+": ("023", "compound message"),
    "=#": ("024", "patient date of birth"),
    "&#": ("025", "patient identification number"),
    "=]": ("026", "expiration month and year"),
    '&"': ("027", "transfusion transmitted infection marker"),
    "=$": ("028", "product consignment"),
    "&$": ("029", "dimensions"),
    "&%": ("030", "red cell antigens with test history"),
    "=(": ("031", "flexible date and time"),
    "=,": ("032", "product divisions"),
    "&+": ("033", "processing facility information code"),
    "=/": ("034", "processor product identification code"),
    "&,1": ("035", "MPHO lot number"),
    "&,2": ("036", "MPHO supplemental identification number"),
    "&,3": ("037", "global registration identifier for donors (retired)"),
    "&,4": ("038", "Single European Code"),
    "&:": ("039", "global registration identifier for donors"),
    "&;": ("", "nationally specified donor identification number"),
    "&!": ("", "confidential unit exclusion status"),
}

# Longest first, so "&,1" is tried before any two-character identifier.
_OTHER_DATA_IDENTIFIERS = tuple(sorted(_OTHER_STRUCTURES, key=len, reverse=True))

_COI_DATA_IDENTIFIER = "&/"

# Shapes used to recognise a code typed or scanned without its data identifier. They are
# looser than the standard so that a near-miss is reported as a broken DIN or COI with a
# reason instead of passing as text; the exact rules are checked afterwards.
_BARE_DIN = re.compile(r"[A-Z][A-Z0-9]{4}[0-9]{8}(?P<tail>[A-Z0-9*]{0,2})")
_BARE_COI = re.compile(r"CH[A-Z0-9]{5}[0-9]{2}[A-Z0-9]{6}(?P<tail>[A-Z0-9*]?)")
_SPACES = re.compile(r"[ \t]+")


def check_character(data: str) -> str:
    """The ISO/IEC 7064 mod 37-2 check character of `data` (13-character DIN or 15-character COI).

    This is the keyboard entry check character K printed in a box next to the eye-readable
    number, and (as 60 + its value) the DIN's type 3 flag.
    """
    if not data or any(char not in CHECK_ALPHABET for char in data):
        raise ValueError(f"{data!r} has characters outside 0-9, A-Z and *")
    return mod_37_2.calc_check_digit(data, alphabet=CHECK_ALPHABET)


def check_flag(din: str) -> str:
    """The two-digit type 3 flag (60-96) that carries the DIN's check character."""
    return str(60 + CHECK_ALPHABET.index(check_character(din)))


def nominal_year(yy: str) -> int:
    """The 4-digit nominal year of a DIN from its two digits.

    ISBT 128 began in 1994, and cryopreserved cells (cord blood above all) stay in
    storage for decades, so 90-99 are read as 1990-1999 and 00-89 as 2000-2089. The rule
    does not depend on today's date, so the same label always reads the same way.
    """
    value = int(yy)
    return 1900 + value if value >= 90 else 2000 + value


def read_isbt128(
    text: str, *, raw: str, symbology: Symbology | None, notes: list[str]
) -> Identification | None:
    """Read `text` as an ISBT 128 DIN, COI or other data structure; None if it is not one."""
    if text.startswith(_COI_DATA_IDENTIFIER):
        content = _compact(text[len(_COI_DATA_IDENTIFIER) :], notes)
        return _coi(content, raw, symbology, _COI_DATA_IDENTIFIER, notes)
    other = _other_structure(text)
    if other is not None:
        data_identifier, (number, name) = other
        return _other(text, raw, symbology, data_identifier, number, name, notes)
    if text.startswith("="):
        # "=" then anything not claimed above: the only structure left is the DIN, so a
        # failure here is a broken DIN, not text.
        content = _compact(text[1:], notes)
        return _din(content, raw, symbology, "=", notes)

    compact = _compact(text, notes)
    if _BARE_COI.fullmatch(compact):
        return _coi(compact, raw, symbology, None, notes)
    if _BARE_DIN.fullmatch(compact):
        return _din(compact, raw, symbology, None, notes)
    return None


def _compact(text: str, notes: list[str]) -> str:
    # Eye-readable DINs are printed in groups ("G1234 17 654321") and typed that way;
    # ISBT 128 uses capitals only, so lower case can only be a typing habit.
    compact = _SPACES.sub("", text)
    upper = compact.upper()
    if upper != compact:
        notes.append(Said("isbt.lower_case"))
    return upper


def _other_structure(text: str) -> tuple[str, tuple[str, str]] | None:
    for data_identifier in _OTHER_DATA_IDENTIFIERS:
        if text.startswith(data_identifier):
            return data_identifier, _OTHER_STRUCTURES[data_identifier]
    if len(text) >= 2 and text[0] == "&" and "a" <= text[1] <= "z":
        return text[:2], ("", "data structure defined locally or nationally, not by ICCBBA")
    return None


def _other(
    text: str,
    raw: str,
    symbology: Symbology | None,
    data_identifier: str,
    number: str,
    name: str,
    notes: list[str],
) -> Identification:
    parts = {
        "data_identifier": data_identifier,
        "data_structure": number or None,
        "data_structure_name": name,
        "content": text[len(data_identifier) :],
        "symbology": symbology.prefix if symbology else None,
    }
    problem = Said("isbt.other_structure", name=name, data_identifier=data_identifier)
    return Identification(
        kind=ISBT128_OTHER,
        valid=False,
        raw=raw,
        normalised=text,
        parts=parts,
        problems=[problem],
        notes=notes,
    )


def _din(
    content: str,
    raw: str,
    symbology: Symbology | None,
    data_identifier: str | None,
    notes: list[str],
) -> Identification:
    """Check a DIN: `content` follows the data identifier "=" or is the bare number."""
    problems: list[str] = []
    din = content[:DIN_LENGTH]
    tail = content[DIN_LENGTH:]
    flag: str | None = None
    typed_check: str | None = None
    extra = ""

    if data_identifier is not None:
        # The barcode always carries two flag characters after the 13-character DIN.
        flag, extra = tail[:2], tail[2:]
        if len(flag) < 2:
            if len(din) == DIN_LENGTH:
                problems.append(Said("isbt.flag_missing", count=len(flag)))
            flag = None
    elif len(tail) == 2:
        # Scanners set to drop ISBT data identifiers send the DIN and flag without "=".
        flag = tail
        notes.append(Said("isbt.no_data_identifier"))
    elif len(tail) == 1:
        # Typed from the eye-readable label: the 13 characters and the boxed check character.
        typed_check = tail

    if extra:
        several = extra[0] in "=&"  # several ISBT 128 barcodes read together
        code = "isbt.extra_after_flag_several" if several else "isbt.extra_after_flag"
        problems.append(Said(code, count=len(extra), extra=extra))

    structure_ok = _check_din_structure(din, problems)

    parts: dict[str, Any] = {
        "din": din,
        "facility_id": din[:5],
        "year": nominal_year(din[5:7]) if structure_ok else None,
        "sequence": din[7:13],
        "flag": flag,
        "flag_type": None,
        "flag_meaning": None,
        "check_character": None,
        "check_value": None,
        "check_flag": None,
        "keyboard_check_character": None,
        "check_verified": False,
        "data_identifier": data_identifier,
        "symbology": symbology.prefix if symbology else None,
    }

    expected: str | None = None
    if structure_ok:
        expected = check_character(din)
        value = CHECK_ALPHABET.index(expected)
        parts.update(
            check_character=expected,
            check_value=value,
            check_flag=str(60 + value),
            # K on the eye-readable label is the same mod 37-2 character (ST-001 7.5).
            keyboard_check_character=expected,
        )

    if flag is not None:
        _check_flag(flag, expected, parts, problems)
    if typed_check is not None and expected is not None:
        if typed_check == expected:
            parts["check_verified"] = True
        else:
            problems.append(Said("isbt.check_typed", expected=expected, typed=typed_check))

    if not parts["check_verified"] and not problems:
        notes.append(Said("isbt.no_check", expected=expected))

    return Identification(
        kind=ISBT128_DIN,
        valid=not problems,
        raw=raw,
        normalised=din,
        parts=parts,
        problems=problems,
        notes=notes,
    )


def _check_din_structure(din: str, problems: list[str]) -> bool:
    before = len(problems)
    if len(din) != DIN_LENGTH:
        problems.append(Said("isbt.din_length", count=len(din)))
        return False
    _check_facility(din[:5], problems)
    if not set(din[5:7]) <= _DIGITS:
        problems.append(Said("isbt.din_year", year=din[5:7]))
    if not set(din[7:13]) <= _DIGITS:
        problems.append(Said("isbt.din_sequence", sequence=din[7:13]))
    return len(problems) == before


def _check_facility(facility: str, problems: list[str]) -> None:
    first = facility[0]
    if first not in _FIRST:
        code = "isbt.facility_first_o" if first == "O" else "isbt.facility_first"
        problems.append(Said(code, first=first))
    if not set(facility[1:3]) <= _FACILITY_ALNUM:
        problems.append(Said("isbt.facility_middle", facility=facility))
    if not set(facility[3:5]) <= _DIGITS:
        problems.append(Said("isbt.facility_end", facility=facility))


def _check_flag(
    flag: str, expected: str | None, parts: dict[str, Any], problems: list[str]
) -> None:
    if len(flag) != 2 or not set(flag) <= _FLAG_CHARS:
        problems.append(Said("isbt.flag_chars", flag=flag))
        return
    if not flag.isdigit():
        parts.update(flag_type="reserved", flag_meaning="reserved for future assignment")
        problems.append(Said("isbt.flag_reserved", flag=flag))
        return
    number = int(flag)
    if 60 <= number <= 96:
        parts.update(
            flag_type="check_character",
            flag_meaning="ISO/IEC 7064 mod 37-2 check character of the 13-character DIN",
        )
        if expected is None:
            return
        if flag == str(60 + CHECK_ALPHABET.index(expected)):
            parts["check_verified"] = True
        else:
            problems.append(
                Said(
                    "isbt.check_flag",
                    expected=expected,
                    flag=flag,
                    flag_check=CHECK_ALPHABET[number - 60],
                )
            )
    elif number in _ICCBBA_FLAGS:
        parts.update(
            flag_type="not_used" if number == 0 else "iccbba_process_control",
            flag_meaning=_ICCBBA_FLAGS[number] + "; no check character carried",
        )
    elif 20 <= number <= 59:
        parts.update(
            flag_type="local_process_control",
            flag_meaning=(
                "process control defined by the facility that labelled the product; "
                "no check character carried"
            ),
        )
    else:  # 14 and 97-99
        parts.update(flag_type="reserved", flag_meaning="reserved for future assignment")
        problems.append(Said("isbt.flag_reserved", flag=flag))


def _coi(
    content: str,
    raw: str,
    symbology: Symbology | None,
    data_identifier: str | None,
    notes: list[str],
) -> Identification:
    """Check a COI identifier: "CH" + facility id (5) + year (2) + sequence (6)."""
    problems: list[str] = []
    coi = content[:COI_LENGTH]
    tail = content[COI_LENGTH:]
    typed_check: str | None = None

    if len(content) < COI_LENGTH:
        problems.append(Said("isbt.coi_length", count=len(content)))
    elif data_identifier is None and len(tail) == 1:
        # Typed from the eye-readable label with its boxed check character.
        typed_check = tail
    elif tail:
        problems.append(Said("isbt.extra_after_coi", count=len(tail), extra=tail))

    structure_ok = not problems
    if len(coi) == COI_LENGTH:
        before = len(problems)
        if not coi.startswith("CH"):
            problems.append(Said("isbt.coi_prefix", prefix=coi[:2]))
        _check_facility(coi[2:7], problems)
        if not set(coi[7:9]) <= _DIGITS:
            problems.append(Said("isbt.coi_year", year=coi[7:9]))
        if not set(coi[9:15]) <= _COI_SEQUENCE:
            problems.append(Said("isbt.coi_sequence", sequence=coi[9:15]))
        structure_ok = structure_ok and len(problems) == before

    expected = check_character(coi) if structure_ok else None
    parts: dict[str, Any] = {
        "coi": coi,
        "facility_id": coi[2:7],
        "year": 2000 + int(coi[7:9]) if structure_ok else None,
        "sequence": coi[9:15],
        # A COI barcode carries no check character; K is printed for manual entry.
        "keyboard_check_character": expected,
        "check_verified": False,
        "data_identifier": data_identifier,
        "symbology": symbology.prefix if symbology else None,
    }
    if typed_check is not None and expected is not None:
        if typed_check == expected:
            parts["check_verified"] = True
        else:
            problems.append(Said("isbt.coi_check_typed", expected=expected, typed=typed_check))

    return Identification(
        kind=ISBT128_COI,
        valid=not problems,
        raw=raw,
        normalised=coi,
        parts=parts,
        problems=problems,
        notes=notes,
    )
