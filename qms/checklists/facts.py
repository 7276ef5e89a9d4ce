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
    """What the engine found, in plain words, with the limit and the actual value."""

    unit: str
    kind: str
    rule: str
    severity: str
    steps: tuple[str, ...]
    message: str
    limit: str | None
    actual: str | None

    def to_json(self) -> dict[str, Any]:
        # Key order is the design.md contract for `qms evaluate --format json`.
        return {
            "unit": self.unit,
            "kind": self.kind,
            "rule": self.rule,
            "severity": self.severity,
            "steps": list(self.steps),
            "message": self.message,
            "limit": self.limit,
            "actual": self.actual,
        }


@dataclass(frozen=True, slots=True)
class DueItem:
    """A step a unit in progress is waiting for, and the time limits on it."""

    unit: str
    step: str
    rule: str | None
    by: datetime | None
    not_before: datetime | None
    message: str
