"""One pass of the scheduler: claim what is due, then make the report each claim asks for.

`run_due(database, now, settings=...)` is what `qms schedule run-due --now T` and the
scheduler's job call. Claiming commits on its own (a `ScheduleRun` per due period,
decided under the ledger's lock). Generating is driven by what is recorded, not by
memory: every claimed run whose report has no registry row yet is generated, so a
process killed at any moment leaves claims that the next pass finishes, and a report
registered by another process counts as made (the registry's unique (report, version)
refuses a second first version). A run whose report cannot be made (no signing key, no
audit possible) is recorded and alerted once, and tried again each pass. A full pass
also raises what else fell due (`watch`: reminders, effectiveness checks, logger gaps),
when `WATCH_EVERY` has passed since the last watch, before it sends, so that their mails
leave in the same pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

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
WATCH = "watch"
# How often the reminders, effectiveness checks and logger gaps are looked for: each
# looks through every open item, and a quarter of an hour is soon enough for a due date.
WATCH_EVERY = timedelta(minutes=15)


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
    watch_every: timedelta = WATCH_EVERY,
) -> PassResult:
    """Claim every period due by `now` (once each, whoever else runs), then make them.

    The reminders, effectiveness checks and logger gaps (`watch`) run when `watch_every`
    has passed since the last time they ran (recorded, so a restart or another instance
    keeps the interval); reports are looked for at every pass."""
    result = PassResult()
    with database.transaction() as session:
        result.claimed = service.claim_due(
            session=session, actor=Actor.system(SCHEDULER), now=now, claimed_at=utcnow(), by=by
        )
    if settings is not None:
        generate_pending(database, settings, result, registry=registry)
        if watch_is_due(last_watch(database), now, watch_every):
            watch(database, now, result, registry=registry)
        release_and_deliver(database, settings, now, result)
    return result


def watch_is_due(last: datetime | None, now: datetime, every: timedelta) -> bool:
    """Whether the watch runs at `now`, having last run at `last` (pure). A clock set
    back before the last run does not stall it for the difference."""
    return last is None or not (last <= now < last + every)


def last_watch(database: Database) -> datetime | None:
    with database.transaction(write=False) as session:
        return session.exec(select(func.max(JobRun.at)).where(JobRun.kind == WATCH)).one()


def watch(database: Database, now: datetime, result: PassResult, *, registry=None) -> None:
    """What else falls due: due-date reminders, effectiveness checks, logger gaps (each
    raised once; a failure is said and tried again at the next watch, the reports go
    on). Recorded as a `JobRun` of kind watch at `now`. What fell due while nothing ran
    is raised at the first watch after: each is found from the records, not the clock."""
    from qms.scheduling.reminders import flag_logger_gaps, remind_due_items

    failures = []
    raised = 0
    for job in (
        lambda: remind_due_items(database, now, registry=registry),
        lambda: flag_logger_gaps(database, now),
    ):
        try:
            lines = job()
            raised += len(lines)
            result.raised.extend(lines)
        except QmsError as exc:
            failures.append(str(exc))
            result.raised.append(f"reminders not raised: {exc}")
    with database.transaction() as session:
        session.add(
            JobRun(
                kind=WATCH,
                at=now,
                ok=not failures,
                details=json.dumps({"raised": raised, "errors": failures}),
            )
        )


def report_of(schedule: Schedule, run: ScheduleRun, region_id: str | None = None) -> tuple:
    """Which report a run asks for: (type, scope, period, language). The scope is the site,
    or the region of a regional schedule (`service.region_of`); the registry files a
    regional report under the region's first site at generation, so it is not compared."""
    scope = region_id if schedule.report_type == service.REGIONAL_ANNUAL else schedule.site_id
    return (schedule.report_type, scope, run.period, schedule.language)


def made_reports(session) -> dict[tuple, list]:
    """The registry's versions by (type, scope, period, language), oldest version first."""
    from qms.reports.models import ReportVersion

    found: dict[tuple, list] = {}
    for row in session.exec(select(ReportVersion).order_by(ReportVersion.version)).all():
        found.setdefault((row.type, row.scope, row.period, row.language), []).append(row)
    return found


def _runs_with_schedules(session) -> list[tuple[ScheduleRun, Schedule, tuple]]:
    """Every claimed run, oldest due first, with its schedule version and its report."""
    versions = {s.id: s for s in session.exec(select(Schedule)).all()}
    regions = service.regions_of(session, versions)
    runs = session.exec(select(ScheduleRun).order_by(ScheduleRun.due_at, ScheduleRun.id)).all()
    out = []
    for run in runs:
        schedule = versions[run.schedule_version]
        out.append((run, schedule, report_of(schedule, run, regions.get(schedule.id))))
    return out


def pending_runs(session) -> list[tuple[ScheduleRun, Schedule, tuple]]:
    """Claimed runs whose report has no registry row yet, oldest due first."""
    made = made_reports(session)
    return [entry for entry in _runs_with_schedules(session) if entry[2] not in made]


def generate_pending(
    database: Database, settings: Settings, result: PassResult, *, registry=None
) -> None:
    from qms.reports import files
    from qms.reports.keys import signing_key
    from qms.reports.service import prepare_report, register_report

    actor = Actor.system(SCHEDULER)
    with database.transaction() as session:
        files.sweep(session, settings)  # files a crash left without a registry row
        pending = pending_runs(session)
    for run, schedule, wanted in pending:
        try:
            # The key first: without one, no audit is run or page rendered for nothing.
            signing_key(settings)
            audit_run_id, audit_run_ids = None, None
            if schedule.report_type == SITE_MONTHLY:
                audit_run_id = _audit_run_for(database, registry, actor, schedule.site_id, run)
            elif schedule.report_type == service.REGIONAL_ANNUAL:
                audit_run_ids = _audit_runs_of_year(database, registry, actor, wanted[1], run)
            with database.transaction(write=False) as session:
                prepared = prepare_report(
                    session=session,
                    settings=settings,
                    who=actor,
                    report_type=schedule.report_type,
                    site_id=schedule.site_id,
                    scope=wanted[1],
                    period=run.period,
                    language=schedule.language,
                    audit_run_id=audit_run_id,
                    audit_run_ids=audit_run_ids,
                )
        except QmsError as exc:  # no key, no audit possible...: said, alerted, tried again
            result.failed.append(f"{run.id}: {exc}")
            _record_failure(database, run, schedule, str(exc))
            continue
        try:
            with database.transaction() as session:
                ledger.lock(session)  # decide under the lock whether another made it
                if wanted in made_reports(session):
                    continue
                row = register_report(session=session, settings=settings, prepared=prepared)
                result.generated.append(row.id)
                if schedule.release == APPROVAL:
                    _awaiting_approval(session, row, prepared.sites)
        except (Conflict, IntegrityError):
            continue  # another scheduler or command registered it meanwhile: made once


def _awaiting_approval(session, row, sites: tuple[str, ...]) -> None:
    """Tell the quality officers a draft waits: of its site, or of each site a regional
    draft covers (approving it takes someone of every one of them, as for any report)."""
    if not sites:
        alerts.raise_alert(
            session, alerts.REPORT_AWAITING_APPROVAL, site_id=row.site_id, report=row.id
        )
        return
    for site_id in sites:
        alerts.raise_alert(
            session,
            alerts.REGIONAL_AWAITING_APPROVAL,
            site_id=site_id,
            report=row.id,
            region=row.scope,
            sites=list(sites),
        )


def _audit_run_for(database: Database, registry, actor: Actor, site_id: str, run, scope=None):
    """The audit run of a scheduled period at a site: the one recorded for it since the
    claim (a pass that crashed after the audit reuses it), else a new one, committed on
    its own. The month's scope unless another is given."""
    from qms.quality.audits import run_audit
    from qms.quality.models import AuditRun
    from qms.reports.service import month_scope

    scope = scope or month_scope(site_id, run.period)
    wanted = canonical_json(scope.to_json())
    with database.transaction(write=False) as session:
        earlier = session.exec(
            select(AuditRun)
            .where(AuditRun.site_id == site_id, AuditRun.at >= run.claimed_at)
            .order_by(AuditRun.at)
        ).all()
    for audit in earlier:
        if audit.scope == wanted and audit.by_id is None and audit.kind == scope.kind:
            return audit.id
    if registry is None:
        raise Invalid(_("the scheduler has no checklists to audit with"))
    with database.transaction() as session:
        return run_audit(session=session, registry=registry, by=actor, scope=scope, now=utcnow()).id


def _audit_runs_of_year(database: Database, registry, actor: Actor, region_id, run):
    """One audit run of the year per site of the region (each reused after a crash), by site."""
    from qms.regions.service import sites_of_region
    from qms.reports.service import year_scope

    with database.transaction(write=False) as session:
        sites = sites_of_region(session, region_id)
    return {
        site_id: _audit_run_for(
            database, registry, actor, site_id, run, scope=year_scope(site_id, run.period)
        )
        for site_id in sites
    }


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


def released_report(schedule: Schedule, versions: list):
    """The version of a run's report that may leave (`versions`: the report's, oldest
    first): the approved one, or with automatic release the newest one; None while a
    quality officer has not approved it."""
    if schedule.release == AUTOMATIC:
        return versions[-1] if versions else None
    approved = [v for v in versions if v.approved_at is not None]
    return approved[-1] if approved else None


def release_and_deliver(database: Database, settings: Settings, now: datetime, result) -> None:
    """Make the deliveries of every released report (once each), then send what is due."""
    from qms.delivery.service import deliver_pending, ensure_deliveries

    with database.transaction() as session:
        made = made_reports(session)
        for run, schedule, wanted in _runs_with_schedules(session):
            report = released_report(schedule, made.get(wanted, []))
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
