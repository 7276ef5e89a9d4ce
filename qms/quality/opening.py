"""Opening a deviation: by hand, from an audit review, and when a step is stored with a
major or critical finding (`open_for_step`, called by `records.service.log_step`).

Imports nothing of the records domain, so that the record service can call it. The
deviation is decided and numbered under the ledger's lock, in the transaction that
stores the step: a record opens exactly one deviation (the step record is written once,
and `deviation.step_record_id` is unique besides), whatever the number of writers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from qms.accounts.models import Site, User
from qms.checklists.facts import SEVERITIES, Finding
from qms.core import ledger
from qms.core.canonical import canonical_json
from qms.quality.models import Deviation
from qms.quality.numbers import allocate
from qms.quality.parameters import site_parameters

# The severities whose finding, stored with a step, opens a deviation at once.
OPENS_A_DEVIATION = ("critical", "major")


def worst(findings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return min(findings, key=lambda f: rank[f["severity"]])


def write_deviation(
    *,
    session: Session,
    site_id: str,
    source: str,
    classification: str,
    title: str,
    description: str,
    units: Sequence[str],
    records: Sequence[str],
    findings: Sequence[Mapping[str, Any]],
    opened_by: User,
    now: datetime,
    rule: str | None = None,
    step_record_id: str | None = None,
    audit_run_id: str | None = None,
) -> Deviation:
    """Number and chain a deviation (internal: the caller has checked who may open it)."""
    ledger.lock(session)
    site = session.get(Site, site_id)
    days = site_parameters(session, site_id)["deviation_due_days"]
    deviation = Deviation(
        id=allocate(session, Deviation, "DEV", site_id, now, site.timezone),
        site_id=site_id,
        source=source,
        classification=classification,
        rule=rule,
        title=title,
        description=description,
        units=canonical_json(sorted(set(units))),
        records=canonical_json(sorted(set(records))),
        findings=canonical_json(list(findings)),
        step_record_id=step_record_id,
        audit_run_id=audit_run_id,
        opened_at=now,
        opened_by_id=opened_by.id,
        due_at=now + timedelta(days=days),
    )
    return ledger.write(session, deviation)


def open_for_step(
    *,
    session: Session,
    site_id: str,
    unit_id: str,
    record_id: str,
    findings: Sequence[Finding],
    reason: str | None,
    by: User,
    now: datetime,
) -> Deviation | None:
    """The deviation a stored step opens when it has a major or critical finding, else None.

    The ward's reason is what happened, as first told; the classification defaults from
    the worst finding. Call under the ledger's lock, after the record is written."""
    serious = [f.to_record() for f in findings if f.severity in OPENS_A_DEVIATION]
    if not serious:
        return None
    first = worst(serious)
    return write_deviation(
        session=session,
        site_id=site_id,
        source="step",
        classification=first["severity"],
        rule=first["rule"],
        title=first["rule"],
        description=reason or "",
        units=[unit_id],
        records=sorted({record_id, *(r for f in serious for r in f["record_ids"])}),
        findings=serious,
        opened_by=by,
        now=now,
        step_record_id=record_id,
    )
