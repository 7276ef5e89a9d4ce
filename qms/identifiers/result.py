"""What reading one label code produces: `Identification`, its kinds, and `IdentifierError`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from qms.identifiers.messages import Said

ISBT128_DIN = "isbt128_din"
ISBT128_COI = "isbt128_coi"
ISBT128_OTHER = "isbt128_other"
GS1 = "gs1"
TEXT = "text"

KINDS: tuple[str, ...] = (ISBT128_DIN, ISBT128_COI, ISBT128_OTHER, GS1, TEXT)

# How a kind is named in messages shown to ward staff and pharmacists (English; worded
# in the reader's language by `messages.worded`).
KIND_NAMES: dict[str, Said] = {kind: Said(f"kind.{kind}") for kind in KINDS}


@dataclass(frozen=True)
class Identification:
    """One scanned or typed code, recognised as a kind of identifier and checked.

    `valid` is True exactly when `problems` is empty. `notes` hold remarks that do not
    make the code invalid but that a careful reader should see (e.g. no check character
    was scanned, so a typing error could not be detected). `parts` is JSON-ready.
    """

    kind: str
    valid: bool
    raw: str
    normalised: str
    parts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A result that says "valid" while listing problems (or the reverse) would let a
        # form accept a bad scan; refuse to build one.
        if self.kind not in KINDS:
            raise ValueError(f"unknown identifier kind {self.kind!r}")
        if self.valid == bool(self.problems):
            raise ValueError("an identification is valid exactly when it has no problems")

    @property
    def kind_name(self) -> str:
        """The kind in words, e.g. "a GS1 drug pack barcode"."""
        return KIND_NAMES[self.kind]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: kind, valid, raw, normalised, parts, problems, notes."""
        return {
            "kind": self.kind,
            "valid": self.valid,
            "raw": self.raw,
            "normalised": self.normalised,
            "parts": copy.deepcopy(self.parts),
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


class IdentifierError(ValueError):
    """A scan is invalid or not of the kind a form asked for; the message says which."""

    def __init__(self, message: str, identification: Identification) -> None:
        super().__init__(str(message))
        # The message as said (a code and parameters, `messages.worded`), or plain text.
        self.said = message
        self.identification = identification
