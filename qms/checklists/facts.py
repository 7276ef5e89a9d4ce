"""The plain facts the rule engine reads and the findings it returns (no Flask, no database)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = (
    "missing_step",
    "order",
    "window",
    "limit",
    "identity",
    "witness",
    "role",
    "excursion",
    "record_integrity",
)
SEVERITIES = ("critical", "major", "minor")
# A unit's status: in progress until declared complete or cancelled (records.status).
IN_PROGRESS, COMPLETE, CANCELLED = "in_progress", "complete", "cancelled"
UNIT_STATUSES = (IN_PROGRESS, COMPLETE, CANCELLED)


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """One dose or bag of one product for one patient at one site."""

    id: str
    checklist: str
    site: str
    profile: str | None
    coi_id: str | None
    patient: str | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    checklist_version: str | None = None
    # "in_progress" or "complete"; evaluate(complete=None) treats "complete" units as
    # finished, so that required steps never done are reported as missing.
    status: str | None = None


@dataclass(frozen=True, slots=True)
class StepFacts:
    """One performed step of a unit, as recorded (corrections are records too)."""

    unit: str
    step: str
    at: datetime  # aware: when it happened
    by: str | None
    witness: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    by_role: str | None = None
    witness_role: str | None = None
    record_id: str | None = None
    # A correction is a new record naming the record it corrects; the engine reads the
    # latest correction in place of the original (which stays in the ledger).
    corrects: str | None = None
    reason: str | None = None
    recorded_at: datetime | None = None
    # Who entered the record, when not the performer (a correction by a colleague).
    recorded_by: str | None = None


@dataclass(frozen=True, slots=True)
class EquipmentFacts:
    id: str
    kind: str
    site: str


@dataclass(frozen=True, slots=True)
class ReadingFacts:
    equipment: str
    at: datetime
    temperature_c: float


@dataclass(frozen=True, slots=True)
class Finding:
    """What the engine found: a stable code and its parameters, and the words made from them.

    `code` names the kind of message (docs/checklists.md lists them) and `params` holds
    what its words need, as ids and values, never display text; `message` is those words
    in English. `record_ids` are the records it concerns (empty when none is known).
    """

    unit: str
    kind: str
    rule: str
    severity: str
    steps: tuple[str, ...]
    message: str
    limit: str | None
    actual: str | None
    code: str = ""
    # A finding is hashed by the rest (params is a dict) and compared by everything.
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    record_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        # Key order is the contract (docs/interchange.md) for `qms evaluate --format json`; the
        # identity keys follow it.
        return {
            "unit": self.unit,
            "kind": self.kind,
            "rule": self.rule,
            "severity": self.severity,
            "steps": list(self.steps),
            "message": self.message,
            "limit": self.limit,
            "actual": self.actual,
            "code": self.code,
            "params": dict(self.params),
            "record_ids": list(self.record_ids),
        }

    def to_record(self) -> dict[str, Any]:
        """The form kept in the ledger: every key but the prose, which is rendered when shown."""
        doc = self.to_json()
        del doc["message"]
        return doc

    @classmethod
    def from_record(cls, doc: Mapping[str, Any], *, checklist: Any = None) -> Finding:
        """A finding rebuilt from `to_record()`, its message rendered in English.

        Without the checklist, steps and fields are named by their ids.
        """
        # Imported here: the engine package imports this module.
        from qms.checklists.engine.messages import render

        params = dict(doc["params"])
        return cls(
            unit=doc["unit"],
            kind=doc["kind"],
            rule=doc["rule"],
            severity=doc["severity"],
            steps=tuple(doc["steps"]),
            message=render(doc["code"], params, checklist=checklist),
            limit=doc["limit"],
            actual=doc["actual"],
            code=doc["code"],
            params=params,
            record_ids=tuple(doc["record_ids"]),
        )


@dataclass(frozen=True, slots=True)
class DueItem:
    """A step a unit in progress is waiting for, and the time limits on it."""

    unit: str
    step: str
    rule: str | None
    by: datetime | None
    not_before: datetime | None
    message: str  # in English, times in the ward's clock (for commands and logs)
    code: str = "due.next"  # its words in the reader's language: engine.due.render_due
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
