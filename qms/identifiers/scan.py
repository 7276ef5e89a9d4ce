"""Undoing what barcode scanners and keyboards add to a code: AIM prefixes, separators, width."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

GROUP_SEPARATOR = "\x1d"

# Scanner set-ups and copy-pasted logs spell the GS1 group separator (ASCII 29, sent in
# place of FNC1) in several ways; all mean the same byte.
_SEPARATOR_SPELLINGS = re.compile(
    r"<GS>|\{GS\}|\[GS\]|\\x1d|\\u001d|\u241d",
    re.IGNORECASE,
)

# ISO/IEC 15424 symbology identifier: "]", a code character, a modifier. Only code
# characters that label scanners use are accepted, so text that merely starts with "]"
# keeps its first characters.
_AIM_PREFIX = re.compile(r"\](?P<code>[ACEFIJLQdez])(?P<modifier>[0-9])")

_SYMBOLOGY_NAMES = {
    "A": "Code 39",
    "C": "Code 128",
    "E": "EAN/UPC",
    "F": "Codabar",
    "I": "Interleaved 2 of 5",
    "J": "DotCode",
    "L": "PDF417",
    "Q": "QR Code",
    "d": "Data Matrix",
    "e": "GS1 DataBar",
    "z": "Aztec Code",
}

# Symbologies whose data is a GS1 element string (FNC1 in first position).
GS1_MESSAGE_SYMBOLOGIES = {
    "]C1": "GS1-128",
    "]d2": "GS1 DataMatrix",
    "]Q3": "GS1 QR Code",
    "]e0": "GS1 DataBar",
    "]J1": "GS1 DotCode",
}

# Symbologies whose data is a bare GTIN (retail and case barcodes).
GTIN_SYMBOLOGIES = {
    "]E0": "EAN-13 / UPC-A",
    "]E4": "EAN-8",
    "]I1": "ITF-14",
}

_ISBT_CONCATENATION = "]C4"


@dataclass(frozen=True)
class Symbology:
    """The AIM symbology identifier a scanner put in front of the data, e.g. "]d2"."""

    prefix: str
    name: str

    @property
    def carries_gs1_message(self) -> bool:
        return self.prefix in GS1_MESSAGE_SYMBOLOGIES

    @property
    def carries_gtin(self) -> bool:
        return self.prefix in GTIN_SYMBOLOGIES

    @property
    def is_isbt_concatenation(self) -> bool:
        return self.prefix == _ISBT_CONCATENATION


def split_symbology(text: str) -> tuple[Symbology | None, str]:
    """Split a leading AIM symbology identifier (like "]d2") from the data after it."""
    match = _AIM_PREFIX.match(text)
    if match is None:
        return None, text
    prefix = match.group(0)
    name = (
        GS1_MESSAGE_SYMBOLOGIES.get(prefix)
        or GTIN_SYMBOLOGIES.get(prefix)
        or ("Code 128, ISBT 128 concatenation" if prefix == _ISBT_CONCATENATION else None)
        or _SYMBOLOGY_NAMES[match.group("code")]
    )
    return Symbology(prefix=prefix, name=name), text[match.end() :]


def normalise_separators(text: str) -> str:
    """Turn every spelling of the GS1 group separator into ASCII 29."""
    return _SEPARATOR_SPELLINGS.sub(GROUP_SEPARATOR, text)


def fold_width(text: str) -> str:
    """Map full-width letters and digits to ASCII.

    A scanner acting as a keyboard while a Chinese input method is in full-width mode
    types "ＧＳ１" instead of "GS1"; NFKC folding undoes that. Only used for reading
    identifiers: plain text keeps the characters it was given.
    """
    return unicodedata.normalize("NFKC", text)


def trim(text: str) -> str:
    """Strip surrounding whitespace, line ends and stray group separators.

    Scanners end a read with Enter (CR or LF) and some send a group separator first;
    neither belongs to the code. (Python counts ASCII 29 as whitespace, so
    `str.strip()` would drop it too; spelling the set out keeps that visible.)
    """
    return text.strip(" \t\r\n\f\v\u00a0\u3000" + GROUP_SEPARATOR)
