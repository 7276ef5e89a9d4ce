"""The nightly ledger check: `qms verify` whose head is recorded, alerting on trouble.

Each run verifies the whole ledger (with the installation's seal key) and also expects
the head the previous run recorded to still be in the chain (records removed from the
end show there). The result is a `JobRun` with the head and, when the ledger is whole, a
`LedgerAnchor` of that head (source "verify", the job run's id), which every later
`qms verify` checks still stands. A failure, a missing head or a check that could not
run at all is an alert for quality officers (mailed to each site's quality address).
"""

from __future__ import annotations

import json

from sqlmodel import select

from qms.core.anchors import anchor
from qms.core.verify import verify
from qms.db import Database, utcnow
from qms.scheduling import alerts
from qms.scheduling.models import JobRun

VERIFY = "verify"


def last_recorded_head(session) -> str | None:
    row = session.exec(
        select(JobRun.head_hash)
        .where(JobRun.kind == VERIFY, JobRun.ok.is_(True))
        .order_by(JobRun.at.desc(), JobRun.id.desc())
    ).first()
    return row


def nightly_verify(database: Database) -> JobRun:
    try:
        with database.transaction(write=False) as session:
            previous = last_recorded_head(session)
            report = verify(
                session,
                expect_hashes=(previous,) if previous else (),
                seal_key=database.seal_key,
            )
    except Exception as exc:  # the check itself broke: said and alerted, never silent
        with database.transaction() as session:
            run = JobRun(
                kind=VERIFY,
                at=utcnow(),
                ok=False,
                details=json.dumps({"error": f"{type(exc).__name__}: {exc}"}),
            )
            session.add(run)
            alerts.raise_alert(
                session, alerts.VERIFY_FAILED, problem=f"{type(exc).__name__}: {exc}"
            )
            session.flush()
            return run
    with database.transaction() as session:
        problem = report.first_problem
        run = JobRun(
            kind=VERIFY,
            at=utcnow(),
            ok=report.ok,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            details=json.dumps(
                {"records": report.records, "problem": str(problem) if problem else None}
            ),
        )
        session.add(run)
        session.flush()
        if report.ok:
            anchor(
                session,
                source="verify",
                source_ref=f"nightly job run {run.id}",
                head_seq=report.head_seq,
                head_hash=report.head_hash,
                at=run.at,
            )
        else:
            missing = previous and any(previous in p.message for p in report.problems)
            if missing:
                alerts.raise_alert(session, alerts.VERIFY_HEAD_MISSING, hash=previous)
            else:
                alerts.raise_alert(session, alerts.VERIFY_FAILED, problem=str(problem))
        session.flush()
        return run
