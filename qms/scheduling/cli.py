"""`qms schedule add|list|run-due`: schedules from the command line, and one pass."""

from __future__ import annotations

import getpass
from datetime import datetime

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
        result = run_due(_database(), moment)
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    for line in result.lines():
        click.echo(line)


commands = [schedule_group]
