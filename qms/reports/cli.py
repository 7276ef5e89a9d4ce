"""`qms report generate|list|verify` and `qms keys demo`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qms.core.errors import QmsError
from qms.runtime import current_runtime


def _actor(session, username: str | None):
    from qms.accounts import service as accounts

    if username is None:
        return accounts.Actor.system("system (command line)")
    user = accounts.get_user_by_username(session=session, username=username)
    if user is None or not user.active:
        raise click.ClickException(f"--as {username}: no active user of that name")
    return user


@click.group("report")
def report_group() -> None:
    """Reports: generate, list and verify signed PDF/A-3 reports."""


@report_group.command("generate")
@click.option(
    "--type", "report_type", required=True, help="site-monthly, unit-dossier, regional-annual"
)
@click.option("--site", "site_id", default=None, help="The site (e.g. SH-01).")
@click.option("--unit", "unit_id", default=None, help="The unit of a unit dossier.")
@click.option("--region", "region_id", default=None, help="The region of a regional report.")
@click.option("--period", default=None, help="A month (2026-10) or a year (2026).")
@click.option("--lang", "language", default="en", show_default=True, help="en or zh")
@click.option("--as", "as_user", default=None, help="Generate in the name of this user.")
@click.option(
    "--run",
    "run_id",
    default=None,
    help="The audit run a site report is built from (default: a new audit of the period).",
)
def generate_command(
    report_type, site_id, unit_id, region_id, period, language, as_user, run_id
) -> None:
    """Render, sign and register a new version of a report; prints its path last."""
    from qms.reports import files, render, service

    runtime = current_runtime()
    database, settings = runtime.database, runtime.settings
    try:
        # WeasyPrint loads in its child process while the audit runs.
        with render.start_render() as renderer:
            with database.transaction(write=True) as session:
                files.sweep(session, settings)
            if report_type == "site-monthly" and run_id is None:
                run_id = _audit_the_month(runtime, as_user, site_id, period)
            run_ids = None
            if report_type == "regional-annual":
                run_ids = _audit_the_year(runtime, as_user, region_id, period)
            with database.transaction(write=False) as session:
                click.echo(
                    f"rendering {report_type} {unit_id or region_id or site_id or ''} "
                    f"{period or ''}".rstrip()
                )
                prepared = service.prepare_report(
                    session=session,
                    settings=settings,
                    who=_actor(session, as_user),
                    report_type=report_type,
                    site_id=site_id,
                    scope=region_id if report_type == "regional-annual" else unit_id,
                    period=period,
                    language=language,
                    audit_run_id=run_id,
                    audit_run_ids=run_ids,
                    renderer=renderer,
                )
            with database.transaction(write=True) as session:
                row = service.register_report(session=session, settings=settings, prepared=prepared)
                files.crash_point("before-commit")
    except QmsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"registered {row.id} sha256 {row.sha256} ({row.size} bytes, PAdES {row.pdf_signature})"
    )
    click.echo(str(files.reports_dir(settings) / row.file_name))


def _audit_the_month(runtime, as_user, site_id, period) -> str:
    """Run an audit of the site's month (read, then a short write) and return its id."""
    from qms.db import utcnow
    from qms.quality.audits import assess_scope, record_run
    from qms.reports import service

    if not site_id or not period or not service.MONTH_RE.match(period):
        raise QmsError("a site monthly report needs --site and --period as 2026-10")
    scope = service.month_scope(site_id, period)
    with runtime.database.transaction(write=False) as session:
        click.echo(f"auditing {site_id} {period}")
        result = assess_scope(
            session=session, registry=runtime.registry, by=_actor(session, as_user), scope=scope
        )
    with runtime.database.transaction(write=True) as session:
        run = record_run(session=session, by=_actor(session, as_user), result=result, now=utcnow())
        click.echo(
            f"audit run {run.id}: {result.counts['units']} units, {len(result.findings)} findings"
        )
        return run.id


def _audit_the_year(runtime, as_user, region_id, period) -> dict[str, str]:
    """One new audit run of the year per site of the region; their ids by site."""
    from qms.db import utcnow
    from qms.quality.audits import assess_scope, record_run
    from qms.regions.service import sites_of_region
    from qms.reports import service

    if not region_id or not period or not service.YEAR_RE.match(period):
        raise QmsError("a regional annual report needs --region and --period as 2026")
    with runtime.database.transaction(write=False) as session:
        sites = sites_of_region(session, region_id)
    runs = {}
    for site_id in sites:
        with runtime.database.transaction(write=False) as session:
            click.echo(f"auditing {site_id} {period}")
            result = assess_scope(
                session=session,
                registry=runtime.registry,
                by=_actor(session, as_user),
                scope=service.year_scope(site_id, period),
            )
        with runtime.database.transaction(write=True) as session:
            run = record_run(
                session=session, by=_actor(session, as_user), result=result, now=utcnow()
            )
            click.echo(
                f"audit run {run.id}: {result.counts['units']} units, "
                f"{len(result.findings)} findings"
            )
            runs[site_id] = run.id
    return runs


@report_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_command(fmt: str) -> None:
    """Every report version with its path, sha256 and status."""
    from qms.accounts.service import Actor
    from qms.reports import files, service

    runtime = current_runtime()
    with runtime.database.transaction(write=True) as session:
        files.sweep(session, runtime.settings)
    with runtime.database.transaction(write=False) as session:
        rows = service.list_versions(session, Actor.system())
        states = service.states_of(rows)
        out = [
            {
                "id": r.id,
                "type": r.type,
                "site": r.site_id,
                "scope": r.scope,
                "period": r.period,
                "language": r.language,
                "version": r.version,
                "path": str(files.reports_dir(runtime.settings) / r.file_name),
                "sha256": r.sha256,
                "size": r.size,
                "ledger_head_seq": r.ledger_head_seq,
                "ledger_head_hash": r.ledger_head_hash,
                "audit_run": r.audit_run_id,
                "generated_at": r.generated_at.isoformat(),
                "approved_at": r.approved_at.isoformat() if r.approved_at else None,
                "current": states[r.id].current,
                "superseded_by": states[r.id].superseded_by,
            }
            for r in rows
        ]
    if fmt == "json":
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for r in out:
        state = "current" if r["current"] else f"superseded by {r['superseded_by']}"
        approved = "approved" if r["approved_at"] else "not approved"
        click.echo(f"{r['id']}  {approved}, {state}  {r['sha256']}  {r['path']}")


@report_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify_command(file: Path) -> None:
    """Is FILE a registered, intact, signed report whose data matches the ledger?"""
    from qms.reports import service

    runtime = current_runtime()
    with runtime.database.transaction(write=False) as session:
        result = service.verify_file(session, runtime.settings, file.read_bytes())
    for check in result.checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not result.ok:
        raise click.ClickException(f"{file} failed verification")
    click.echo(f"{file}: verified")


@click.group("keys")
def keys_group() -> None:
    """The key and certificate that sign reports."""


@keys_group.command("demo")
@click.option("--site-name", default="qms demonstration site", show_default=True)
@click.option("--force", is_flag=True, help="Replace existing demonstration keys.")
def keys_demo_command(site_name: str, force: bool) -> None:
    """A demonstration CA and site signing certificate in <instance>/keys/ (not for real use)."""
    from qms.reports.keys import make_demo_keys

    for path in make_demo_keys(current_runtime().settings, site_name=site_name, force=force):
        click.echo(str(path))


commands = [report_group, keys_group]
