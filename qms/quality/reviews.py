"""Reviewing a run's findings: each is confirmed as a deviation (a new one, or linked to
the one already open for the same event) or dismissed with a written rationale; signed
and chained. Nothing disappears: a dismissed finding stays in its run with its rationale
and who dismissed it."""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import Session, col, func, select

from qms.accounts.access import require
from qms.accounts.models import User
from qms.accounts.roles import Permission
from qms.core import ledger
from qms.core.errors import Conflict, Invalid, NotFound
from qms.core.i18n import _, _l
from qms.quality.audits import visible_run
from qms.quality.deviations import Signer, _sign, get_deviation, record_event, signer_method
from qms.quality.models import Deviation, FindingReview
from qms.quality.opening import write_deviation

DECISIONS = ("confirmed", "dismissed")
DECISION_LABELS = {"confirmed": _l("confirmed as a deviation"), "dismissed": _l("dismissed")}


def review_finding(
    *,
    session: Session,
    by: User,
    run_id: str,
    finding: int,
    decision: str,
    signer: Signer,
    now: datetime,
    rationale: str | None = None,
    deviation_id: str | None = None,
) -> FindingReview:
    """Confirm (opening a deviation, or linking `deviation_id`) or dismiss one finding."""
    ledger.lock(session)
    run = visible_run(session, by, run_id)
    require(session, by, Permission.AUDIT, run.site_id, action=_l("review findings"))
    docs = json.loads(run.findings)
    if not (0 <= finding < len(docs)):
        raise NotFound(_("run %(run)s has no finding %(n)s", run=run.id, n=finding + 1))
    if decision not in DECISIONS:
        raise Invalid(_("a finding is confirmed or dismissed"))
    done = session.exec(
        select(func.count())
        .select_from(FindingReview)
        .where(FindingReview.run_id == run.id, FindingReview.finding == str(finding))
    ).one()
    if done:
        raise Conflict(_("this finding has been reviewed already"))
    rationale = (rationale or "").strip() or None
    doc = docs[finding]
    if decision == "dismissed":
        if rationale is None:
            raise Invalid(_("dismissing a finding needs a written rationale"))
        _sign(session, by, signer, now)
    elif deviation_id:
        state = get_deviation(session, by, deviation_id.strip())
        if state.site_id != run.site_id:
            raise NotFound(_("there is no deviation %(deviation)s", deviation=deviation_id))
        record_event(
            session=session,
            by=by,
            deviation_id=state.id,
            action="linked",
            signer=signer,
            now=now,
            reason=rationale,
            details={"run": run.id, "finding": finding},
        )
        deviation_id = state.id
    else:
        _sign(session, by, signer, now)
        deviation_id = write_deviation(
            session=session,
            site_id=run.site_id,
            source="audit",
            classification=doc["severity"],
            rule=doc["rule"],
            title=doc["rule"],
            description=rationale or "",
            units=[doc["unit"]],
            records=doc["record_ids"],
            findings=[doc],
            opened_by=by,
            now=now,
            audit_run_id=run.id,
        ).id
    review = FindingReview(
        id=f"{run.id}/{finding}/{done + 1}",
        run_id=run.id,
        finding=str(finding),
        decision=decision,
        deviation_id=deviation_id if decision == "confirmed" else None,
        rationale=rationale,
        at=now,
        by_id=by.id,
        method=signer_method(signer),
    )
    return ledger.write(session, review)


def open_deviations_for(session: Session, docs: list[dict]) -> dict[int, list[str]]:
    """For each finding (by index), the deviations already opened by its records (one query)."""
    records = {r for d in docs for r in d["record_ids"]}
    if not records:
        return {}
    by_record: dict[str, list[str]] = {}
    for deviation_id, record_id in session.exec(
        select(Deviation.id, Deviation.step_record_id).where(
            col(Deviation.step_record_id).in_(records)
        )
    ):
        by_record.setdefault(record_id, []).append(deviation_id)
    out = {}
    for i, d in enumerate(docs):
        found = sorted({x for r in d["record_ids"] for x in by_record.get(r, ())})
        if found:
            out[i] = found
    return out
