"""The records that count (corrections applied) and their index by step, in time order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from operator import attrgetter

from qms.checklists.engine.planning import _Plan
from qms.checklists.facts import StepFacts, UnitFacts


def effective_records(steps: Iterable[StepFacts]) -> list[StepFacts]:
    """The records that count: each corrected record is replaced by its latest correction.

    A record corrected twice has two corrections pointing at it (a correction of a
    correction targets the same original); the later one, by entry time and then by record
    number, is what counts, whatever order the records are given in.
    """
    steps = list(steps)
    for step in steps:
        if step.corrects is not None:
            break
    else:
        return steps  # the usual case: nothing corrects anything
    latest: dict[str, StepFacts] = {}
    for step in steps:
        if step.corrects is None:
            continue
        kept = latest.get(step.corrects)
        if kept is None or _entry_order(step) > _entry_order(kept):
            latest[step.corrects] = step
    originals = [s for s in steps if s.corrects is None]
    present = {s.record_id for s in originals}
    # A correction whose original is not in the input still counts (a partial extract).
    orphans = [c for target, c in latest.items() if target not in present]
    return [
        latest.get(s.record_id, s) if s.record_id is not None else s for s in originals
    ] + orphans


def _entry_order(step: StepFacts) -> tuple:
    # Record ids end in their number within the unit ("U-1#12"): compare it as a number.
    number = (step.record_id or "").rpartition("#")[2]
    return (
        step.recorded_at or datetime.min.replace(tzinfo=UTC),
        int(number) if number.isdigit() else -1,
        step.record_id or "",
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP = attrgetter("step")


def _epoch_in(zone: object) -> datetime:
    """The instant `_EPOCH` on the clock of `zone` if it is a fixed offset, else `_EPOCH`.

    A time minus another whose tzinfo is the same object is worked out on their clock
    fields alone (42 ns), without asking each for its offset (540 ns): exact for a fixed
    offset (`datetime.timezone`, what the interchange reader and the database give),
    wrong for a zone with summer time, which keeps the general subtraction.
    """
    if type(zone) is timezone:
        return _EPOCH.astimezone(zone)  # type: ignore[arg-type]
    return _EPOCH


def distances(records: Sequence[StepFacts]) -> list[timedelta]:
    """Each record's time as a distance from `_EPOCH`: what the checks compare."""
    keys = []
    append = keys.append
    zone: object = UTC
    epoch = _EPOCH
    for rec in records:
        at = rec.at
        if at.tzinfo is not zone:  # records of one unit share one offset object, or a few
            zone = at.tzinfo
            epoch = _epoch_in(zone)
        append(at - epoch)
    return keys


def _index(
    plan: _Plan, unit: UnitFacts, steps: Sequence[StepFacts]
) -> tuple[list[StepFacts], dict[str, list[StepFacts]]]:
    records, by_step, _, _ = _index_timed(plan, unit, steps)
    return records, by_step


def _index_timed(
    plan: _Plan, unit: UnitFacts, steps: Sequence[StepFacts]
) -> tuple[list[StepFacts], dict[str, list[StepFacts]], dict[int, timedelta], frozenset[str]]:
    """The records in time order, by step, each one's time as a distance from one UTC
    instant (by id()): what the checks compare, cheaply (see below), and the steps
    recorded."""
    records = list(steps)
    known = plan.step_ids
    unit_id = unit.id
    # By time alone first, as distances from one UTC instant: comparing two aware times
    # with different offset objects asks each for its offset, every comparison (what made
    # the sort the dearest part of the index); a difference is worked out once per record.
    # The usual case in one pass: records of this unit and checklist, none a correction.
    keys: list[timedelta] = []
    append = keys.append
    zone: object = UTC
    epoch = _EPOCH
    indexed = False
    try:
        for rec in records:
            at = rec.at
            if rec.unit != unit_id or rec.step not in known or rec.corrects is not None:
                break
            if at.tzinfo is not zone:  # records of one unit share an offset object or a few
                zone = at.tzinfo
                if zone is None:
                    break
                epoch = _epoch_in(zone)
            append(at - epoch)
        else:
            indexed = True
    except (AttributeError, TypeError):  # not a date-time: refused below, as always
        pass
    if not indexed:
        records = effective_records(records)
        for rec in records:
            if rec.unit != unit_id or rec.step not in known or rec.at.tzinfo is None:
                _refuse(plan, unit, records)
        keys = distances(records)
    when = dict(zip(map(id, records), keys, strict=True))
    n = len(records)
    if len(set(keys)) == n:
        order = sorted(range(n), key=keys.__getitem__)
    else:
        # Records at the same moment are ordered by content, so that input order never
        # changes a finding (by their distances again: the same order as their times).
        full = [
            (key, rec.step, rec.record_id or "", rec.by or "", rec.witness or "")
            for key, rec in zip(keys, records, strict=True)
        ]
        if len(set(full)) == n:
            order = sorted(range(n), key=full.__getitem__)
        else:
            # Identical but for their fields: break the rare remaining ties by content.
            fields = [json.dumps(dict(r.fields), sort_keys=True, default=str) for r in records]
            order = sorted(range(n), key=lambda i: (full[i], fields[i]))
    records = list(map(records.__getitem__, order))
    by_step: dict[str, list[StepFacts]] = {}
    for step, rec in zip(map(_STEP, records), records, strict=True):
        bucket = by_step.get(step)
        if bucket is None:
            by_step[step] = [rec]
        else:
            bucket.append(rec)
    return records, by_step, when, frozenset(by_step)


def _refuse(plan: _Plan, unit: UnitFacts, records: Sequence[StepFacts]) -> None:
    """Raise for the first record that cannot be judged with this unit and checklist."""
    known = plan.step_ids
    for rec in records:
        if rec.unit != unit.id:
            raise ValueError(
                f"record of step {rec.step!r} belongs to unit {rec.unit!r}, not {unit.id!r}"
            )
        if rec.step not in known:
            raise ValueError(
                f"step {rec.step!r} is not part of checklist {plan.checklist.id!r} version {plan.checklist.version}"
            )
        if rec.at.tzinfo is None:
            raise ValueError(f"record of step {rec.step!r} has a time without a UTC offset")
    for rec in records:
        rec.at - _EPOCH  # noqa: B018 (raises as the subtraction did: not a date-time)
