"""Reading label codes: ISBT 128 DIN and COI identifiers, GS1 drug pack barcodes, plain text."""

from qms.identifiers.identify import expect, identify
from qms.identifiers.isbt128 import check_character, check_flag
from qms.identifiers.result import (
    GS1,
    ISBT128_COI,
    ISBT128_DIN,
    ISBT128_OTHER,
    KINDS,
    TEXT,
    Identification,
    IdentifierError,
)

__all__ = [
    "GS1",
    "ISBT128_COI",
    "ISBT128_DIN",
    "ISBT128_OTHER",
    "KINDS",
    "TEXT",
    "Identification",
    "IdentifierError",
    "check_character",
    "check_flag",
    "expect",
    "identify",
]
