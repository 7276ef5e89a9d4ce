"""`qms schedule add|list|run-due`: schedules from the command line, and one pass."""

from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path

import click

from qms.accounts.service import Actor
from qms.core.errors import QmsError
from qms.db import utcnow
from qms.runtime import current_runtime


def _database():
    return current_runtime().database


def _operator() -> Actor:
    return Actor.system(f"system (command line, OS user {getpass.getuser()})")


def parse_time(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no UTC offset; write e.g. {value}+08:00", param_hint=option
        )
    return moment


@click.group("schedule")
def schedule_group() -> None:
    """Reports on a schedule: add, list, and run what is due."""


@schedule_group.command("add")
@click.option("--type", "report_type", required=True, help="site-monthly or regional-annual")
@click.option("--site", required=True)
@click.option("--day", required=True, type=int, help="Day of the month the report falls due.")
@click.option("--at", "at", required=True, help="Time of day in the site's zone, HH:MM.")
@click.option(
    "--cadence",
    type=click.Choice(["monthly", "quarterly", "yearly"]),
    default=None,
    help="Defaults to the report type's own (site-monthly: monthly).",
)
@click.option("--lang", default=None, help="en or zh (default: the site's language).")
@click.option("--to", "recipients", multiple=True, help="An email address (repeatable).")
@click.option("--regulator", "regulators", multiple=True, help="A regulator's username.")
@click.option("--auto-release", is_flag=True, help="Release without approval (needs a site key).")
@click.option("--from", "first_period", default=None, help="First period, e.g. 2026-10.")
def add_command(
    report_type, site, day, at, cadence, lang, recipients, regulators, auto_release, first_period
) -> None:
    """Add a schedule."""
    from qms.scheduling.service import ScheduleSpec, add_schedule

    spec = ScheduleSpec(
        report_type=report_type,
        site_id=site,
        day=day,
        at=at,
        cadence=cadence,
        language=lang,
        recipients=recipients,
        regulators=regulators,
        auto_release=auto_release,
        first_period=first_period,
    )
    try:
        with _database().transaction() as session:
            row = add_schedule(session=session, actor=_operator(), spec=spec, now=utcnow())
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schedule {row.schedule_id} added: {_describe(row)}")


def _describe(row) -> str:
    import json

    to = [*json.loads(row.recipients), *(f"regulator {u}" for u in json.loads(row.regulators))]
    return (
        f"{row.report_type} for {row.site_id}, {row.cadence} on day {row.day} at {row.at_time}, "
        f"from {row.first_period}, in {row.language}, to {', '.join(to)}, "
        f"release: {row.release}"
    )


@schedule_group.command("list")
def list_command() -> None:
    """The schedules in force, with the periods claimed so far."""
    from qms.scheduling.service import list_schedules, runs_of

    with _database().transaction(write=False) as session:
        rows = list_schedules(session=session, actor=_operator())
        runs = runs_of(session=session, schedule_ids=[r.schedule_id for r in rows])
    if not rows:
        click.echo("no schedules")
        return
    for row in rows:
        periods = [run.period for run in runs if run.schedule_id == row.schedule_id]
        click.echo(f"{row.schedule_id} v{row.version} {row.status}: {_describe(row)}")
        click.echo(f"  periods claimed: {', '.join(periods) if periods else 'none yet'}")


@schedule_group.command("run-due")
@click.option("--now", "now", default=None, help="ISO time with offset (default: the clock).")
def run_due_command(now: str | None) -> None:
    """One pass: claim and make what is due by NOW (for cron, and tests)."""
    from qms.scheduling.runner import run_due

    moment = parse_time(now, "--now") if now else utcnow()
    try:
        runtime = current_runtime()
        result = run_due(
            runtime.database, moment, settings=runtime.settings, registry=runtime.registry
        )
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    for line in result.lines():
        click.echo(line)


@click.command("scheduler")
@click.option(
    "--poll",
    "poll",
    type=float,
    default=5.0,
    envvar="QMS_SCHEDULER_POLL_SECONDS",
    show_default=True,
    help="Seconds between a standby's attempts to lead.",
)
@click.option(
    "--tick",
    "tick",
    type=float,
    default=60.0,
    envvar="QMS_SCHEDULER_TICK_SECONDS",
    show_default=True,
    help="Seconds between looks for due reports.",
)
@click.option(
    "--nightly-at",
    default="02:30",
    envvar="QMS_NIGHTLY_AT",
    show_default=True,
    help="Local time (QMS_TIMEZONE) of the nightly verify and backup.",
)
@click.option(
    "--keep",
    "keep",
    type=int,
    default=7,
    envvar="QMS_BACKUPS_KEPT",
    show_default=True,
    help="Nightly backups kept in <instance>/backups.",
)
def scheduler_command(poll: float, tick: float, nightly_at: str, keep: int) -> None:
    """Run the scheduler (its own process): one leader, other instances stand by."""  # fmt: skip
    import sys

    from qms.scheduling.process import SchedulerOptions, run_scheduler

    sys.stdout.reconfigure(line_buffering=True)
    if poll <= 0 or tick <= 0 or keep <= 0:
        raise click.ClickException("--poll, --tick and --keep must be greater than zero")
    options = SchedulerOptions(poll_seconds=poll, tick_seconds=tick, nightly_at=nightly_at,
                               backups_kept=keep)  # fmt: skip
    status = run_scheduler(current_runtime(), options, say=click.echo)
    if status:
        sys.exit(status)


@click.command("backup")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Then restore it into a scratch database and verify.")
def backup_command(path: Path | None, check: bool) -> None:
    """Write a consistent copy of the database (and PATH.json with the head it holds)."""
    from qms.backup import BackupError, check_backup, default_path, take_backup

    settings = current_runtime().settings
    target = path or default_path(settings.instance_path, settings.database_url)
    try:
        backup = take_backup(settings.database_url, target)
        click.echo(f"backup written to {backup.file}")
        click.echo(f"head: record {backup.head_seq}, hash {backup.head_hash}")
        if check:
            click.echo(f"restored and verified: {check_backup(backup, settings.database_url)}")
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None


commands = [schedule_group, scheduler_command, backup_command]
