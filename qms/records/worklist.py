"""The worklist: what each role can do now across the open units of a site, most urgent first.

Fed by the engine's due items (`due_next`, through the batch judging), so the home page
says what the unit page says. One batch load: a fixed number of queries whatever the
number of units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from qms.checklists.facts import DueItem
from qms.records import loading
from qms.records.loading import UnitFilter

# A deadline this close is shown in red (a thawed bag waiting to be infused).
URGENT = timedelta(minutes=30)
# Pharmacy steps: what arrives, what is stored, what is to be released.
PHARMACY_STEPS = {"receipt": "arriving", "storage_in": "arriving", "storage_out": "release"}


@dataclass
class WorkItem:
    unit: object  # the Unit row
    ward: str | None
    checklist: object
    due: DueItem | None
    findings: int
    worst: str | None
    state: str  # overdue | urgent | waiting | "" (no deadline)
    group: str  # for the pharmacy: arriving | storage | release | ward


def worklist(
    session: Session,
    *,
    site_id: str,
    role: str,
    registry,
    now: datetime,
    wards: frozenset[str] | None = None,
    limit=500,
):
    """The open units of the site with what this role may do next, by deadline; with
    `wards` (ward staff's `accounts.access.ward_scope`), only the units of those wards and
    units on no ward yet."""
    batch = loading.load_units(
        session,
        site_id=site_id,
        filter=UnitFilter(status="in_progress", wards=wards),
        per_page=limit,
    )
    judged = batch.judge(registry, now=now)
    items: list[WorkItem] = []
    for loaded in batch.units:
        judgement = judged.get(loaded.row.id)
        if judgement is None:
            continue
        checklist = registry.get(loaded.row.checklist_id, loaded.row.checklist_version)
        mine = [d for d in judgement.due if role in checklist.steps[d.step].roles]
        due = mine[0] if mine else None
        findings = len(judgement.findings)
        worst = judgement.worst_first()[0].severity if findings else None
        if role == "quality_officer":
            if not findings:
                continue
        elif due is None:
            continue
        state = ""
        if due is not None and due.by is not None:
            state = "overdue" if due.by < now else "urgent" if due.by - now <= URGENT else "waiting"
        recorded = {r.step for r in loaded.records}
        group = "ward"
        if due is not None and due.step in PHARMACY_STEPS:
            group = PHARMACY_STEPS[due.step]
        elif "storage_in" in recorded and "storage_out" not in recorded:
            group = "storage"
        items.append(
            WorkItem(loaded.row, loaded.ward, checklist, due, findings, worst, state, group)
        )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    rank = {"critical": 0, "major": 1, "minor": 2, None: 3}
    items.sort(
        key=lambda w: (
            w.due is None or w.due.by is None,
            w.due.by if w.due is not None and w.due.by is not None else far,
            rank[w.worst],
            w.unit.id,
        )
    )
    return items
