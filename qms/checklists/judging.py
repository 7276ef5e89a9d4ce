"""Judging units: facts in, findings and due items out — the one way every caller asks.

The unit page, the units list, the live check when a step is stored, the status change
"declared complete", the import, `qms evaluate` and the audits all come here with the
same kind of input: a unit's facts and its records *as recorded* (originals and
corrections; the engine alone decides which records count). Pure: no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from qms.checklists import engine
from qms.checklists.facts import (
    COMPLETE,
    IN_PROGRESS,
    SEVERITIES,
    DueItem,
    Finding,
    ReadingFacts,
    StepFacts,
    UnitFacts,
)

# The statuses the judging depends on (a unit with no status record is in progress).

Readings = Mapping[str, Sequence[ReadingFacts]] | Iterable[ReadingFacts] | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the rules say of one unit: its findings, what it waits for, the status used."""

    unit: str
    status: str
    findings: list[Finding] = field(default_factory=list)
    due: list[DueItem] = field(default_factory=list)

    def by_severity(self) -> dict[str, int]:
        """How many findings of each severity, every severity present (critical first)."""
        counts = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def worst_first(self) -> list[Finding]:
        """The findings, critical first (the engine's rule order within a severity)."""
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: rank[f.severity])

    @property
    def next_due(self) -> DueItem | None:
        """The step with the soonest deadline (else the first step due)."""
        return self.due[0] if self.due else None


@dataclass(frozen=True, slots=True)
class UnitCase:
    """One unit as the judging takes it: its facts and its records, corrections included."""

    unit: UnitFacts
    steps: tuple[StepFacts, ...] = ()


def reading_index(readings: Readings | engine.ReadingIndex) -> engine.ReadingIndex | None:
    """Readings sorted once, to share between the many units judged against them."""
    if readings is None or isinstance(readings, engine.ReadingIndex):
        return readings
    return engine.ReadingIndex(readings)


def judge(
    checklist,
    unit: UnitFacts,
    steps: Sequence[StepFacts],
    readings: Readings | engine.ReadingIndex = None,
    *,
    now: datetime | None,
    status: str | None = None,
    profile=None,
    due: bool = True,
) -> Judgement:
    """Judge one unit's records as they stand (corrections applied by the engine).

    `steps` are the records as recorded, originals and corrections. `status` overrides
    the unit's own (`unit.status`; none means in progress): "complete" judges the unit
    as finished, so that every required step never recorded is missing (the status
    change "declared complete", `qms evaluate --complete`). What is due is computed only
    for a unit in progress, and only with `now` (`due=False` skips it, for audits).
    `now=None` judges as at the unit's last record (an audit of a past period).
    `profile` overrides the unit's profile (`qms evaluate --profile`).
    """
    used = status or unit.status or IN_PROGRESS
    findings = engine.evaluate(
        checklist,
        unit,
        steps,
        reading_index(readings),
        profile=profile,
        now=now,
        complete=used == COMPLETE,
    )
    waiting: list[DueItem] = []
    if due and now is not None and used == IN_PROGRESS:
        waiting = engine.due_next(checklist, unit, steps, profile=profile, now=now)
    return Judgement(unit=unit.id, status=used, findings=findings, due=waiting)


def judge_many(
    cases: Iterable[UnitCase],
    checklist_of: Callable[[UnitFacts], object],
    readings: Readings | engine.ReadingIndex = None,
    *,
    now: datetime | None,
    status: str | None = None,
    profile=None,
    due: bool = True,
) -> dict[str, Judgement]:
    """Judge many units against one set of readings (sorted once), by unit id in input order.

    `checklist_of(unit)` gives each unit's checklist (e.g. the registry's entry for the
    unit's checklist and version); what it raises (a checklist not installed) is the
    caller's to handle. The other arguments are `judge`'s, for every unit.
    """
    index = reading_index(readings)
    return {
        case.unit.id: judge(
            checklist_of(case.unit),
            case.unit,
            case.steps,
            index,
            now=now,
            status=status,
            profile=profile,
            due=due,
        )
        for case in cases
    }


def judge_new_record(
    checklist,
    unit: UnitFacts,
    steps: Sequence[StepFacts],
    new: StepFacts,
    readings: Readings | engine.ReadingIndex = None,
    *,
    profile=None,
) -> list[Finding]:
    """The live check: the findings a new record (or correction) would add to the unit's.

    `steps` are the unit's records as recorded; when `new` corrects a record, what it
    replaces (the original, or an earlier correction of it) is left out of the records
    it is compared with, so the correction is judged in the original's place.
    """
    prior = engine.effective_records(steps)
    if new.corrects is not None:
        prior = [s for s in prior if new.corrects not in (s.record_id, s.corrects)]
    return engine.check_step(
        checklist, unit, prior, new, profile=profile, readings=reading_index(readings)
    )


def counted_record_ids(steps: Iterable[StepFacts]) -> set[str]:
    """The ids of the records that count now (each corrected record by its latest correction)."""
    return {s.record_id for s in engine.effective_records(steps) if s.record_id is not None}


__all__ = [
    "COMPLETE",
    "IN_PROGRESS",
    "Judgement",
    "UnitCase",
    "counted_record_ids",
    "judge",
    "judge_many",
    "judge_new_record",
    "reading_index",
]
