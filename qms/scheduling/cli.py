"""`qms schedule add|edit|retire|list|settings|run-due`: schedules from the command line."""

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
@click.option(
    "--type",
    "report_type",
    required=True,
    help="site-monthly (with --site) or regional-annual (with --region)",
)
@click.option("--site", default=None, help="The site of a site-monthly report.")
@click.option("--region", default=None, help="The region of a regional-annual report.")
@click.option("--day", required=True, type=int, help="Day of the month the report falls due.")
@click.option("--at", "at", required=True, help="Time of day in the site's zone, HH:MM.")
@click.option(
    "--cadence",
    type=click.Choice(["monthly", "quarterly", "yearly"]),
    default=None,
    help="Defaults to the report type's own (site-monthly: monthly; regional-annual: yearly).",
)
@click.option("--lang", default=None, help="en or zh (default: the site's language).")
@click.option(
    "--to",
    "recipients",
    multiple=True,
    help="An email address, or a regulator's username to mail at the account's address "
    "(repeatable).",
)
@click.option(
    "--regulator", "regulators", multiple=True, help="A regulator's username (their portal)."
)
@click.option("--auto-release", is_flag=True, help="Release without approval (needs a site key).")
@click.option("--from", "first_period", default=None, help="First period, e.g. 2026-10 or 2026.")
def add_command(
    report_type, site, region, day, at, cadence, lang, recipients, regulators, auto_release,
    first_period,
) -> None:  # fmt: skip
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
        region_id=region,
    )
    try:
        with _database().transaction() as session:
            row = add_schedule(session=session, actor=_operator(), spec=spec, now=utcnow())
            described = _describe(row, region)
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schedule {row.schedule_id} added: {described}")


def _describe(row, region: str | None = None) -> str:
    import json

    to = [*json.loads(row.recipients), *(f"regulator {u}" for u in json.loads(row.regulators))]
    scope = f"region {region} (times in {row.site_id}'s zone)" if region else row.site_id
    return (
        f"{row.report_type} for {scope}, {row.cadence} on day {row.day} at {row.at_time}, "
        f"from {row.first_period}, in {row.language}, to {', '.join(to)}, "
        f"release: {row.release}"
    )


@schedule_group.command("edit")
@click.argument("schedule_id")
@click.option("--reason", required=True, help="Why the schedule changes (recorded).")
@click.option("--day", type=int, default=None)
@click.option("--at", "at", default=None, help="HH:MM in the site's zone.")
@click.option("--cadence", type=click.Choice(["monthly", "quarterly", "yearly"]), default=None)
@click.option("--lang", default=None)
@click.option("--to", "recipients", multiple=True, help="Replaces the email addresses.")
@click.option("--regulator", "regulators", multiple=True, help="Replaces the regulators.")
@click.option("--no-mail", is_flag=True, help="Remove every email address.")
@click.option("--no-regulators", is_flag=True, help="Remove every regulator.")
@click.option("--auto-release/--approval", "auto_release", default=None)
@click.option("--from", "first_period", default=None)
def edit_command(
    schedule_id, reason, day, at, cadence, lang, recipients, regulators, no_mail,
    no_regulators, auto_release, first_period,
) -> None:  # fmt: skip
    """Edit a schedule: a new version with the reason; what was recorded stays."""
    from dataclasses import replace

    from qms.scheduling.service import change_schedule, current_schedule, region_of, spec_of

    try:
        with _database().transaction() as session:
            current = current_schedule(session=session, actor=_operator(), schedule_id=schedule_id)
            region = region_of(session, current)
            spec = spec_of(current, region)
            changes = {
                "day": day,
                "at": at,
                "cadence": cadence,
                "language": lang,
                "auto_release": auto_release,
                "first_period": first_period,
                "recipients": () if no_mail else (recipients or None),
                "regulators": () if no_regulators else (regulators or None),
            }
            spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
            row = change_schedule(
                session=session,
                actor=_operator(),
                schedule_id=schedule_id,
                spec=spec,
                reason=reason,
                now=utcnow(),
            )
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schedule {row.schedule_id} is now version {row.version}: {_describe(row, region)}")


@schedule_group.command("retire")
@click.argument("schedule_id")
@click.option("--reason", required=True, help="Why the schedule is retired (recorded).")
def retire_command(schedule_id: str, reason: str) -> None:
    """Retire a schedule: nothing falls due after now (a new version, with the reason)."""
    from qms.scheduling.service import retire_schedule

    try:
        with _database().transaction() as session:
            row = retire_schedule(
                session=session,
                actor=_operator(),
                schedule_id=schedule_id,
                reason=reason,
                now=utcnow(),
            )
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schedule {row.schedule_id} retired (version {row.version}): {reason.strip()}")


@schedule_group.command("list")
def list_command() -> None:
    """Every schedule with its history (each version, who changed it and why) and the
    periods claimed so far."""
    from qms.scheduling.service import (
        changes_of,
        list_schedules,
        regions_of,
        runs_of,
        schedule_history,
    )

    with _database().transaction(write=False) as session:
        rows = list_schedules(session=session, actor=_operator())
        regions = regions_of(session, [r.id for r in rows])
        runs = runs_of(session=session, schedule_ids=[r.schedule_id for r in rows])
        changes = changes_of(session, [r.schedule_id for r in rows])
        history = {
            r.schedule_id: schedule_history(
                session=session, actor=_operator(), schedule_id=r.schedule_id
            )
            for r in rows
        }
    if not rows:
        click.echo("no schedules")
        return
    for row in rows:
        periods = [run.period for run in runs if run.schedule_id == row.schedule_id]
        click.echo(
            f"{row.schedule_id} v{row.version} {row.status}: {_describe(row, regions.get(row.id))}"
        )
        for version in history[row.schedule_id]:
            change = changes.get(version.id)
            when = f"{version.created_at:%Y-%m-%d %H:%M} UTC by {version.created_by}"
            if change is None:
                click.echo(f"  v{version.version} made {when}")
            else:
                click.echo(f"  v{version.version} {change.change} {when}: {change.reason}")
        click.echo(f"  periods claimed: {', '.join(periods) if periods else 'none yet'}")


@schedule_group.command("settings")
@click.option("--site", required=True)
@click.option("--quality-address", default=None, help="Where alerts of the site are mailed.")
@click.option("--logger-gap", "logger_gap", default=None, help="Minutes of logger silence.")
@click.option(
    "--reminder-lead", default=None, help="Days before a due date the first reminder comes."
)
@click.option("--reason", default=None, help="Why (needed for a change).")
def settings_command(site, quality_address, logger_gap, reminder_lead, reason) -> None:
    """Show a site's settings, or change them (each change recorded with the reason)."""
    from qms.scheduling import settings as site_settings

    changes = {
        site_settings.QUALITY_ADDRESS: quality_address,
        site_settings.LOGGER_GAP_MINUTES: logger_gap,
        site_settings.REMINDER_LEAD_DAYS: reminder_lead,
    }
    try:
        with _database().transaction() as session:
            for name, value in changes.items():
                if value is not None:
                    site_settings.set_site_setting(
                        session=session,
                        actor=_operator(),
                        site_id=site,
                        name=name,
                        value=value,
                        reason=reason or "",
                        now=utcnow(),
                    )
            values = site_settings.site_settings(session, site)
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    for name, value in values.items():
        click.echo(f"{name}: {value if value is not None else '(not set)'}")


WATCH_OPTION = click.option(
    "--watch-minutes",
    "watch_minutes",
    type=float,
    default=15.0,
    envvar="QMS_SCHEDULER_WATCH_MINUTES",
    show_default=True,
    help="Minutes between looks for due-date reminders, effectiveness checks and logger gaps.",
)


@schedule_group.command("run-due")
@click.option("--now", "now", default=None, help="ISO time with offset (default: the clock).")
@WATCH_OPTION
def run_due_command(now: str | None, watch_minutes: float) -> None:
    """One pass: claim and make what is due by NOW (for cron, and tests); the reminders
    and logger gaps too, when --watch-minutes have passed since they last ran."""
    from datetime import timedelta

    from qms.scheduling.runner import run_due

    if watch_minutes < 0:
        raise click.ClickException("--watch-minutes cannot be negative")
    moment = parse_time(now, "--now") if now else utcnow()
    try:
        runtime = current_runtime()
        result = run_due(
            runtime.database,
            moment,
            settings=runtime.settings,
            registry=runtime.registry,
            watch_every=timedelta(minutes=watch_minutes),
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
@WATCH_OPTION
def scheduler_command(
    poll: float, tick: float, nightly_at: str, keep: int, watch_minutes: float
) -> None:
    """Run the scheduler (its own process): one leader, other instances stand by."""  # fmt: skip
    import os
    import sys

    from qms.scheduling.process import SchedulerOptions, run_scheduler

    sys.stdout.reconfigure(line_buffering=True)
    if poll <= 0 or tick <= 0 or keep <= 0 or watch_minutes < 0:
        raise click.ClickException(
            "--poll, --tick and --keep must be greater than zero, --watch-minutes not negative"
        )
    options = SchedulerOptions(poll_seconds=poll, tick_seconds=tick, nightly_at=nightly_at,
                               backups_kept=keep, watch_seconds=watch_minutes * 60)  # fmt: skip
    status = run_scheduler(current_runtime(), options, say=click.echo)
    # Leave now, even while a pass renders a report in a worker thread (the interpreter
    # would wait for it): the pass is safe to abandon at any point, like a kill -9, and
    # the next leader finishes what was claimed. The lock was released above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


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
