"""`qms audit run`: an audit of a site's records from the command line."""

from __future__ import annotations

import getpass
import json

import click

from qms.core.errors import QmsError
from qms.db import utcnow
from qms.runtime import current_runtime


@click.group("audit")
def audit_group() -> None:
    """Audit runs: judge a site's units and keep what was found."""


@audit_group.command("run")
@click.option("--site", "site_id", required=True, help="The site audited (e.g. SH-01).")
@click.option("--from", "date_from", help="First day of the period (YYYY-MM-DD, site's zone).")
@click.option("--to", "date_to", help="Last day of the period (YYYY-MM-DD), inclusive.")
@click.option("--checklist", "checklists", multiple=True, help="Only this product (repeatable).")
@click.option("--ward", "wards", multiple=True, help="Only units of this ward (repeatable).")
@click.option("--unit", "units", multiple=True, help="Only this unit (repeatable).")
@click.option(
    "--kind",
    type=click.Choice(["routine", "for_cause", "inspection_readiness"]),
    default="routine",
    show_default=True,
)
@click.option("--as", "as_user", default=None, help="Run in the name of this quality officer.")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "text"]), default="text", show_default=True
)
def run_command(
    site_id: str,
    date_from: str | None,
    date_to: str | None,
    checklists: tuple[str, ...],
    wards: tuple[str, ...],
    units: tuple[str, ...],
    kind: str,
    as_user: str | None,
    fmt: str,
) -> None:
    """Judge every unit in scope with the rule engine and record the run (chained)."""
    from qms.accounts import service as accounts
    from qms.quality import audits

    runtime = current_runtime()
    registry = runtime.registry
    database = runtime.database
    try:
        start, end = audits.parse_dates(date_from, date_to)
        scope = audits.AuditScope(
            site_id=site_id,
            date_from=start,
            date_to=end,
            checklists=tuple(checklists),
            wards=tuple(wards),
            units=audits.scope_units(units),
            kind=kind,
        )
        # Read in one transaction, write the run in a short second one: a long audit does
        # not hold SQLite's write lock; the run covers the head read first.
        with database.transaction(write=False) as session:
            by = _actor(session, as_user, accounts)
            result = audits.assess_scope(session=session, registry=registry, by=by, scope=scope)
        with database.transaction() as session:
            by = _actor(session, as_user, accounts)
            run = audits.record_run(session=session, by=by, result=result, now=utcnow())
            doc = audits.run_json(run, registry)
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    counts = doc["counts"]
    severity = counts["by_severity"]
    click.echo(
        f"{doc['run']}: {counts['units']} units, {counts['records']} records, "
        f"{counts['findings']} findings (critical {severity['critical']}, major "
        f"{severity['major']}, minor {severity['minor']}); covers ledger record "
        f"{doc['head']['seq']} {doc['head']['hash']}"
    )
    if counts["not_judged"]:
        click.echo(f"  {counts['not_judged']} unit(s) not judged: checklist version not installed")
    for f in doc["findings"]:
        click.echo(f"  {f['severity'].upper():8} {f['unit']:16} {f['rule']}: {f['message']}")


@audit_group.command("effectiveness-due")
@click.option("--now", "now_text", help="As at this time (ISO 8601 with offset); default: now.")
@click.option("--as", "as_user", default=None, help="Prepare in the name of this quality officer.")
def effectiveness_due_command(now_text: str | None, as_user: str | None) -> None:
    """Prepare every CAPA effectiveness check that is due: re-run the audit for its rules."""
    from datetime import datetime

    from qms.accounts import service as accounts
    from qms.quality import capa

    now = utcnow()
    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise click.BadParameter(
                f"{now_text!r} is not an ISO 8601 time", param_hint="--now"
            ) from None
        if now.tzinfo is None:
            raise click.BadParameter(f"{now_text!r} has no UTC offset", param_hint="--now")
    runtime = current_runtime()
    try:
        with runtime.database.transaction() as session:
            by = _actor(session, as_user, accounts)
            made = capa.prepare_due(session=session, registry=runtime.registry, by=by, now=now)
            lines = [
                f"{json.loads(run.scope)['capa']}: {run.id}, {json.loads(run.counts)['findings']} finding(s)"
                for run in made
            ]
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(lines)} effectiveness check(s) prepared")
    for line in lines:
        click.echo(f"  {line}")


def _actor(session, username: str | None, accounts):
    if username is None:
        return accounts.Actor.system(f"system (command line, OS user {getpass.getuser()})")
    user = accounts.get_user_by_username(session=session, username=username)
    if user is None or not user.active:
        raise click.ClickException(f"--as {username}: no active user of that name")
    return user


commands: list[click.Command] = [audit_group]
