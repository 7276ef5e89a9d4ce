"""Deciding what a scanned or typed label code is: `identify` and, for forms, `expect`."""

from __future__ import annotations

from collections.abc import Iterable

from qms.identifiers import gs1, isbt128
from qms.identifiers.messages import Said
from qms.identifiers.result import KINDS, TEXT, Identification, IdentifierError
from qms.identifiers.scan import (
    Symbology,
    fold_width,
    normalise_separators,
    split_symbology,
    trim,
)


def identify(code: str) -> Identification:
    """Identify one scanned or typed code and check it.

    Recognises ISBT 128 donation identification numbers and chain of identity
    identifiers, GS1 drug pack barcodes (element strings, the printed "(01)..." form,
    Digital Link URIs, bare GTINs behind an EAN/ITF scanner prefix) and otherwise plain
    text. A code that claims to be one of these (an "=" data identifier, a GS1 scanner
    prefix, a group separator) but breaks its rules comes back as that kind with
    `valid=False` and the reasons, never as text.
    """
    if not isinstance(code, str):
        raise TypeError(f"identify() takes the scanned text as str, not {type(code).__name__}")
    raw = code
    trimmed = trim(code)
    if not trimmed:
        return Identification(
            kind=TEXT,
            valid=False,
            raw=raw,
            normalised="",
            parts={"text": ""},
            problems=[Said("scan.empty")],
        )

    notes: list[str] = []
    folded = fold_width(trimmed)
    if folded != trimmed:
        notes.append(Said("scan.full_width"))
    symbology, body = split_symbology(folded)
    body = trim(normalise_separators(body))

    if symbology is not None and symbology.carries_gs1_message:
        # The scanner says the symbol is GS1 (FNC1 first), so it is GS1 or it is broken.
        if gs1.looks_like_digital_link(body):
            return gs1.read_digital_link(body, raw=raw, symbology=symbology, notes=notes)
        return gs1.read_element_string(
            body, raw=raw, symbology=symbology, require_gtin=False, notes=notes
        )
    if symbology is not None and symbology.carries_gtin:
        return gs1.read_gtin(body, raw=raw, symbology=symbology, notes=notes)
    if gs1.looks_like_hri(body):
        return gs1.read_hri(body, raw=raw, symbology=symbology, notes=notes)
    if gs1.looks_like_digital_link(body):
        return gs1.read_digital_link(body, raw=raw, symbology=symbology, notes=notes)

    found = isbt128.read_isbt128(body, raw=raw, symbology=symbology, notes=notes)
    if found is not None:
        return found
    if gs1.looks_like_element_string(body):
        return gs1.read_element_string(
            body, raw=raw, symbology=symbology, require_gtin=True, notes=notes
        )
    return _text(trimmed, raw, symbology)


def expect(code: str, kind: str | Iterable[str]) -> Identification:
    """Identify `code` and insist it is a valid code of `kind` (one kind or several).

    Raises `IdentifierError` whose message can be shown to the person scanning, e.g.
    "expected an ISBT 128 donation identification number (DIN), but this is a GS1 drug
    pack barcode". Raises ValueError for a kind this module does not know.
    """
    wanted = (kind,) if isinstance(kind, str) else tuple(kind)
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise ValueError(f"unknown identifier kind(s) {unknown or wanted!r}; choose from {KINDS}")
    result = identify(code)
    expected = Said(f"kind.{wanted[0]}")
    for other in wanted[1:]:
        expected = Said("kind.or", first=expected, second=Said(f"kind.{other}"))
    kind = Said(f"kind.{result.kind}")
    if result.kind not in wanted:
        if result.valid:
            raise IdentifierError(Said("expect.other_kind", expected=expected, kind=kind), result)
        said = Said(
            "expect.other_kind_invalid", expected=expected, kind=kind, problems=result.problems
        )
        raise IdentifierError(said, result)
    if not result.valid:
        raise IdentifierError(Said("expect.invalid", kind=kind, problems=result.problems), result)
    return result


def _text(text: str, raw: str, symbology: Symbology | None) -> Identification:
    # Plain text keeps its own characters (no width folding, no upper-casing): it may be
    # a name or a free-text note, and only what the scanner added is removed.
    parts = {"text": text}
    if symbology is not None:
        parts["text"] = text[len(symbology.prefix) :]
        parts["symbology"] = symbology.prefix
    notes = []
    if gs1.looks_like_bare_gtin(parts["text"]):
        # Not declared GS1: a numeric lot or hospital number passes the check 1 time in 10.
        notes.append(Said("text.bare_gtin"))
    return Identification(
        kind=TEXT, valid=True, raw=raw, normalised=parts["text"], parts=parts, notes=notes
    )
