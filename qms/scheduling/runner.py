"""One pass of the scheduler: claim what is due, then make the report each claim asks for.

`run_due(database, now, settings=...)` is what `qms schedule run-due --now T` and the
scheduler's job call. Claiming commits on its own (a `ScheduleRun` per due period,
decided under the ledger's lock). Generating is driven by what is recorded, not by
memory: every claimed run whose report has no registry row yet is generated, so a
process killed at any moment leaves claims that the next pass finishes, and a report
registered by another process counts as made (the registry's unique (report, version)
refuses a second first version). A run whose report cannot be made (no signing key, no
audit possible) is recorded and alerted once, and tried again each pass. A full pass
also raises what else fell due (`watch`: reminders, effectiveness checks, logger gaps)
before it sends, so that their mails leave in the same pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from qms.accounts.service import Actor
from qms.config import Settings
from qms.core import ledger
from qms.core.canonical import canonical_json
from qms.core.errors import Conflict, Invalid, QmsError
from qms.core.i18n import _
from qms.db import Database, utcnow
from qms.scheduling import alerts, service
from qms.scheduling.models import APPROVAL, AUTOMATIC, JobRun, Schedule, ScheduleRun

SCHEDULER = "system (scheduler)"
SITE_MONTHLY = "site-monthly"
GENERATE = "generate"


@dataclass
class PassResult:
    claimed: list[ScheduleRun] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)  # report version ids
    failed: list[str] = field(default_factory=list)  # "<run id>: <why>"
    sent: list[str] = field(default_factory=list)  # one line per delivery attempt
    raised: list[str] = field(default_factory=list)  # reminders and logger gaps

    def lines(self) -> list[str]:
        lines = [
            f"claimed {run.schedule_id} period {run.period} (due {run.due_at:%Y-%m-%d %H:%M} UTC)"
            for run in self.claimed
        ]
        lines += [f"generated {version}" for version in self.generated]
        lines += [f"not generated {why}" for why in self.failed]
        lines += self.raised
        lines += [f"delivery: {line}" for line in self.sent]
        return lines or ["nothing due"]


def run_due(
    database: Database,
    now: datetime,
    *,
    settings: Settings | None = None,
    registry=None,
    by: str | None = None,
) -> PassResult:
    """Claim every period due by `now` (once each, whoever else runs), then make them."""
    result = PassResult()
    with database.transaction() as session:
        result.claimed = service.claim_due(
            session=session, actor=Actor.system(SCHEDULER), now=now, claimed_at=utcnow(), by=by
        )
    if settings is not None:
        generate_pending(database, settings, result, registry=registry)
        watch(database, now, result, registry=registry)
        release_and_deliver(database, settings, now, result)
    return result


def watch(database: Database, now: datetime, result: PassResult, *, registry=None) -> None:
    """What else falls due: due-date reminders, effectiveness checks, logger gaps (each
    raised once; a failure is said and tried again next pass, the reports go on)."""
    from qms.scheduling.reminders import flag_logger_gaps, remind_due_items

    for job in (
        lambda: remind_due_items(database, now, registry=registry),
        lambda: flag_logger_gaps(database, now),
    ):
        try:
            result.raised.extend(job())
        except QmsError as exc:
            result.raised.append(f"reminders not raised: {exc}")


def report_key_of(schedule: Schedule, run: ScheduleRun) -> str:
    from qms.reports.service import report_key

    return report_key(
        schedule.report_type, schedule.site_id, schedule.site_id, run.period, schedule.language
    )


def pending_runs(session) -> list[tuple[ScheduleRun, Schedule]]:
    """Claimed runs whose report has no registry row yet, oldest due first."""
    from qms.reports.models import ReportVersion

    made = set(session.exec(select(ReportVersion.report_key)).all())
    versions = {s.id: s for s in session.exec(select(Schedule)).all()}
    runs = session.exec(select(ScheduleRun).order_by(ScheduleRun.due_at, ScheduleRun.id)).all()
    pending = []
    for run in runs:
        schedule = versions[run.schedule_version]
        if report_key_of(schedule, run) not in made:
            pending.append((run, schedule))
    return pending


def generate_pending(
    database: Database, settings: Settings, result: PassResult, *, registry=None
) -> None:
    from qms.reports import files
    from qms.reports.service import prepare_report, register_report

    actor = Actor.system(SCHEDULER)
    with database.transaction() as session:
        files.sweep(session, settings)  # files a crash left without a registry row
        pending = pending_runs(session)
    for run, schedule in pending:
        try:
            audit_run_id = None
            if schedule.report_type == SITE_MONTHLY:
                audit_run_id = _audit_run_for(database, registry, actor, schedule, run)
            with database.transaction(write=False) as session:
                prepared = prepare_report(
                    session=session,
                    settings=settings,
                    who=actor,
                    report_type=schedule.report_type,
                    site_id=schedule.site_id,
                    period=run.period,
                    language=schedule.language,
                    audit_run_id=audit_run_id,
                )
        except QmsError as exc:  # no key, no audit possible...: said, alerted, tried again
            result.failed.append(f"{run.id}: {exc}")
            _record_failure(database, run, schedule, str(exc))
            continue
        try:
            with database.transaction() as session:
                ledger.lock(session)  # decide under the lock whether another made it
                if _made(session, report_key_of(schedule, run)):
                    continue
                row = register_report(session=session, settings=settings, prepared=prepared)
                result.generated.append(row.id)
                if schedule.release == APPROVAL:
                    alerts.raise_alert(
                        session,
                        alerts.REPORT_AWAITING_APPROVAL,
                        site_id=schedule.site_id,
                        report=row.id,
                    )
        except (Conflict, IntegrityError):
            continue  # another scheduler or command registered it meanwhile: made once


def _audit_run_for(database: Database, registry, actor: Actor, schedule, run) -> str:
    """The audit run of a scheduled month: the one recorded for it since the claim (a
    pass that crashed after the audit reuses it), else a new one, committed on its own."""
    from qms.quality.audits import run_audit
    from qms.quality.models import AuditRun
    from qms.reports.service import month_scope

    scope = month_scope(schedule.site_id, run.period)
    wanted = canonical_json(scope.to_json())
    with database.transaction(write=False) as session:
        earlier = session.exec(
            select(AuditRun)
            .where(AuditRun.site_id == schedule.site_id, AuditRun.at >= run.claimed_at)
            .order_by(AuditRun.at)
        ).all()
    for audit in earlier:
        if audit.scope == wanted and audit.by_id is None and audit.kind == scope.kind:
            return audit.id
    if registry is None:
        raise Invalid(_("the scheduler has no checklists to audit with"))
    with database.transaction() as session:
        return run_audit(session=session, registry=registry, by=actor, scope=scope, now=utcnow()).id


def _made(session, key: str) -> bool:
    from qms.reports.models import ReportVersion

    return (
        session.exec(select(ReportVersion.id).where(ReportVersion.report_key == key)).first()
        is not None
    )


def _record_failure(database: Database, run: ScheduleRun, schedule: Schedule, error: str) -> None:
    """A JobRun for the failed attempt; an alert the first time this run fails."""
    with database.transaction() as session:
        earlier = session.exec(
            select(JobRun.details).where(JobRun.kind == GENERATE, JobRun.ok.is_(False))
        ).all()
        first = not any(json.loads(d).get("run") == run.id for d in earlier)
        session.add(
            JobRun(
                kind=GENERATE,
                at=utcnow(),
                ok=False,
                details=json.dumps({"run": run.id, "error": error}),
            )
        )
        if first:
            alerts.raise_alert(
                session,
                alerts.REPORT_NOT_GENERATED,
                site_id=schedule.site_id,
                schedule=schedule.schedule_id,
                period=run.period,
                error=error,
            )


def released_report(session, schedule: Schedule, run: ScheduleRun):
    """The version of a run's report that may leave: the approved one, or with automatic
    release the newest one; None while a quality officer has not approved it."""
    from qms.reports.models import ReportVersion

    versions = session.exec(
        select(ReportVersion)
        .where(ReportVersion.report_key == report_key_of(schedule, run))
        .order_by(ReportVersion.version)
    ).all()
    if schedule.release == AUTOMATIC:
        return versions[-1] if versions else None
    approved = [v for v in versions if v.approved_at is not None]
    return approved[-1] if approved else None


def release_and_deliver(database: Database, settings: Settings, now: datetime, result) -> None:
    """Make the deliveries of every released report (once each), then send what is due."""
    from qms.delivery.service import deliver_pending, ensure_deliveries

    with database.transaction() as session:
        versions = {s.id: s for s in session.exec(select(Schedule)).all()}
        for run in session.exec(select(ScheduleRun).order_by(ScheduleRun.due_at)).all():
            schedule = versions[run.schedule_version]
            report = released_report(session, schedule, run)
            if report is None:
                continue
            ensure_deliveries(
                session=session,
                report=report,
                recipients=json.loads(schedule.recipients),
                regulators=json.loads(schedule.regulators),
                language=schedule.language,
                schedule_run_id=run.id,
                now=now,
            )
    result.sent.extend(deliver_pending(database, settings, now))
