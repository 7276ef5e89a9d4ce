"""GS1 codes on drug packs: element strings (DataMatrix, GS1-128), printed HRI, Digital Link, GTINs.

Parsing is biip's; this module decides when a scan is GS1 at all, checks what biip
leaves to the caller (check digits of inner keys, duplicated AIs, text biip skipped),
and lays the result out for people. Values are case-sensitive here: lot and serial
numbers are never upper-cased.
"""

from __future__ import annotations

import re
from typing import Any

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString, GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin

from qms.identifiers.messages import Said
from qms.identifiers.result import GS1, Identification
from qms.identifiers.scan import GROUP_SEPARATOR, Symbology

_CONFIG = ParseConfig(separator_chars=(GROUP_SEPARATOR,))

# A printed human-readable interpretation: "(01)09506000134352(17)260630(10)ABC".
_HRI_START = re.compile(r"\(\d{2,4}\)")
_HRI_ELEMENT = re.compile(r"\((?P<ai>\d{2,4})\)(?P<value>[^()]*)")
# A GS1 element string starting with a GTIN: the one unprefixed form trusted as GS1.
_GTIN_FIRST = re.compile(r"01\d{14}")
_DIGITAL_LINK = re.compile(r"https?://[^/\s]+/(?:.*/)?01/\d{8,14}(?:[/?#].*)?", re.IGNORECASE)

_LOT_AI = "10"
_SERIAL_AI = "21"
_EXPIRY_AI = "17"
# Keys a serial number (21) may serialise: GTIN, GTIN of contained items, ITIP.
_SERIAL_KEYS = frozenset({"01", "03", "8006"})


def looks_like_hri(text: str) -> bool:
    return _HRI_START.match(text) is not None


def looks_like_digital_link(text: str) -> bool:
    return _DIGITAL_LINK.fullmatch(text) is not None


def looks_like_element_string(text: str) -> bool:
    """Whether an unprefixed scan should be read as GS1 at all.

    Only if it starts with AI 01 and 14 digits, or starts with a digit (every AI does)
    and holds a group separator. Anything else that merely starts with digits (a lot
    number, a hospital barcode) stays text, even though biip would find AIs in it.
    """
    if _GTIN_FIRST.match(text):
        return True
    return GROUP_SEPARATOR in text and text[:1].isdigit()


def looks_like_bare_gtin(text: str) -> bool:
    """Digits of a GTIN length whose last digit is the right check digit."""
    return (
        text.isascii()
        and text.isdigit()
        and len(text) in (8, 12, 13, 14)
        and gs1_standard_check_digit(text[:-1]) == int(text[-1])
    )


def read_element_string(
    text: str,
    *,
    raw: str,
    symbology: Symbology | None,
    require_gtin: bool,
    notes: list[str],
) -> Identification:
    """Read a GS1 element string as sent by a scanner (separators already ASCII 29)."""
    form = "element string"
    if not text:
        return _failure(raw, text, symbology, form, Said("gs1.nothing_after_prefix"), notes)
    try:
        message = GS1Message.parse(text, config=_CONFIG)
    except (ParseError, ValueError) as exc:
        return _failure(raw, text, symbology, form, Said("gs1.incomplete", detail=str(exc)), notes)
    problems: list[str] = []
    if GROUP_SEPARATOR not in text:
        _check_unseparated(message.element_strings, problems, notes)
    return _result(message.element_strings, raw, symbology, form, require_gtin, problems, notes)


def read_hri(
    text: str, *, raw: str, symbology: Symbology | None, notes: list[str]
) -> Identification:
    """Read the printed form "(01)...(17)...(10)..." typed or copied from a pack."""
    form = "human-readable (AIs in parentheses)"
    problems: list[str] = []
    compact = text.strip()
    # biip's parse_hri drops text it cannot match (an "(" inside a value and what
    # follows) and squeezes out spaces inside values; check the whole text was used.
    pieces = list(_HRI_ELEMENT.finditer(compact))
    used = "".join(match.group(0) for match in pieces)
    if used != compact:
        problems.append(Said("gs1.not_pairs", text=compact))
    for match in pieces:
        # Spaces around a value are only layout; inside one they are a misreading.
        value = match.group("value").strip()
        if not value:
            # biip skips an AI with nothing after it, so "(17)(10)ABC" would read as a
            # pack without an expiry and pass: the printed field is there but empty.
            problems.append(Said("gs1.empty_value", ai=match.group("ai")))
        elif re.search(r"\s", value):
            problems.append(Said("gs1.space_in_value", ai=match.group("ai"), value=value))
    if problems:
        return _failure(raw, compact, symbology, form, problems, notes)
    try:
        message = GS1Message.parse_hri(compact, config=_CONFIG)
    except (ParseError, ValueError) as exc:
        return _failure(
            raw, compact, symbology, form, Said("gs1.incomplete", detail=str(exc)), notes
        )
    return _result(message.element_strings, raw, symbology, form, False, [], notes)


def read_digital_link(
    text: str, *, raw: str, symbology: Symbology | None, notes: list[str]
) -> Identification:
    """Read a GS1 Digital Link URI (a QR code on newer packs)."""
    form = "GS1 Digital Link"
    try:
        link = GS1DigitalLinkURI.parse(text, config=_CONFIG)
    except (ParseError, ValueError) as exc:
        return _failure(
            raw, text, symbology, form, Said("gs1.incomplete_link", detail=str(exc)), notes
        )
    return _result(link.element_strings, raw, symbology, form, True, [], notes)


def read_gtin(
    text: str, *, raw: str, symbology: Symbology | None, notes: list[str]
) -> Identification:
    """Read a bare GTIN from a retail or case barcode (EAN-13, EAN-8, ITF-14)."""
    form = "GTIN only"
    try:
        gtin = Gtin.parse(text, config=_CONFIG)
    except (ParseError, ValueError) as exc:
        return _failure(raw, text, symbology, form, _gtin_problem(text, str(exc)), notes)
    parts = _empty_parts(symbology, form)
    parts["gtin"] = gtin.as_gtin_14()
    notes.append(Said("gs1.bare_gtin"))
    return Identification(
        kind=GS1, valid=True, raw=raw, normalised=gtin.as_gtin_14(), parts=parts, notes=notes
    )


def _result(
    elements: GS1ElementStrings,
    raw: str,
    symbology: Symbology | None,
    form: str,
    require_gtin: bool,
    problems: list[str],
    notes: list[str],
) -> Identification:
    parts = _empty_parts(symbology, form)
    parts["elements"] = [_element_json(element) for element in elements]
    seen: dict[str, str] = {}
    for element in elements:
        ai = element.ai.ai
        if ai in seen and seen[ai] != element.value:
            problems.append(Said("gs1.ai_twice", ai=ai, first=seen[ai], second=element.value))
        seen.setdefault(ai, element.value)
        # biip keeps a bad check digit of an inner key in *_error instead of failing.
        for error in (element.gtin_error, element.sscc_error, element.gln_error):
            if error:
                problems.append(
                    _gtin_problem(element.value, error)
                    if ai in ("01", "02")
                    else Said("gs1.key_error", detail=error)
                )

    gtin = elements.get(ai="01")
    lot = elements.get(ai=_LOT_AI)
    serial = elements.get(ai=_SERIAL_AI)
    expiry = elements.get(ai=_EXPIRY_AI)
    parts.update(
        gtin=gtin.value if gtin else None,
        lot=lot.value if lot else None,
        serial=serial.value if serial else None,
        expiry=expiry.date.isoformat() if expiry and expiry.date else None,
    )
    if expiry is not None and expiry.value.endswith("00") and expiry.date is not None:
        notes.append(Said("gs1.day_00", value=expiry.value, date=expiry.date.isoformat()))
    if serial is not None and gtin is None and not _SERIAL_KEYS.intersection(seen):
        # GS1 General Specifications: a serial number only identifies something together
        # with the key it serialises (a GTIN on a drug pack); alone it names nothing.
        problems.append(Said("gs1.serial_without_gtin", serial=serial.value))
    if require_gtin and gtin is None:
        problems.append(Said("gs1.no_gtin"))
    return Identification(
        kind=GS1,
        valid=not problems,
        raw=raw,
        normalised=GS1Message.from_element_strings(elements).as_hri(),
        parts=parts,
        problems=problems,
        notes=notes,
    )


def _element_json(element: GS1ElementString) -> dict[str, Any]:
    item: dict[str, Any] = {
        "ai": element.ai.ai,
        "title": element.ai.data_title,
        "description": element.ai.description,
        "value": element.value,
    }
    if element.date is not None:
        item["date"] = element.date.isoformat()
    if element.datetime is not None:
        item["datetime"] = element.datetime.isoformat()
    if element.decimal is not None:
        item["decimal"] = str(element.decimal)
    return item


def _empty_parts(symbology: Symbology | None, form: str) -> dict[str, Any]:
    return {
        "form": form,
        "symbology": symbology.prefix if symbology else None,
        "symbology_name": symbology.name if symbology else None,
        "gtin": None,
        "lot": None,
        "expiry": None,
        "serial": None,
        "elements": [],
    }


def _failure(
    raw: str,
    text: str,
    symbology: Symbology | None,
    form: str,
    problems: str | list[str],
    notes: list[str],
) -> Identification:
    return Identification(
        kind=GS1,
        valid=False,
        raw=raw,
        normalised=text.replace(GROUP_SEPARATOR, "<GS>"),
        parts=_empty_parts(symbology, form),
        problems=[problems] if isinstance(problems, str) else problems,
        notes=notes,
    )


def _gtin_problem(value: str, biip_error: str) -> str:
    if value.isdigit() and len(value) in (8, 12, 13, 14):
        expected = gs1_standard_check_digit(value[:-1])
        if str(expected) != value[-1]:
            return Said("gs1.check_digit", gtin=value, typed=value[-1], expected=expected)
    return Said("gs1.invalid_gtin", detail=biip_error)


def _check_unseparated(elements: GS1ElementStrings, problems: list[str], notes: list[str]) -> None:
    """Catch a missing group separator that may have run two fields together.

    A scanner acting as a keyboard often drops ASCII 29. A variable-length field (the
    lot, say) then swallows whatever follows it and the parse still succeeds, so the
    swallowed expiry or serial number silently disappears. A hidden expiry makes the
    scan invalid (expiry is what the pharmacist checks); a hidden serial number is only
    a note, because lots such as "L2021A" contain "21" all the time.
    """
    last = elements[-1] if elements else None
    if last is None or not last.ai.separator_required:
        return
    value = last.value
    for ai, name, found in (
        (_EXPIRY_AI, "gs1.hidden_expiry", problems),
        (_SERIAL_AI, "gs1.hidden_serial", notes),
    ):
        if elements.get(ai=ai) is not None:
            continue
        for start in range(1, len(value) - len(ai)):
            if not value.startswith(ai, start):
                continue
            try:
                tail = GS1Message.parse(value[start:], config=_CONFIG)
            except (ParseError, ValueError):
                continue
            if tail.element_strings and tail.element_strings[0].ai.ai == ai:
                found.append(Said(name, ai=last.ai.ai, value=value, hidden=tail.as_hri()))
                break
