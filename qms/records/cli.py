"""`qms import`, `qms export`, `qms verify`: records in and out, and the ledger's integrity."""

from __future__ import annotations

import getpass
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from qms.accounts import service as accounts
from qms.core.errors import QmsError
from qms.core.verify import verify
from qms.records.exporter import export_interchange
from qms.records.importer import ImportFileError, import_interchange
from qms.records.interchange import shown_problems
from qms.runtime import current_runtime


def _database():
    return current_runtime().database


def checklist_registry():
    """The installed checklists, loaded once per command (tests may put their own in place)."""
    return current_runtime().registry


def _actor(session, username: str | None) -> accounts.Actor:
    if username is None:
        return accounts.Actor.system(f"system (command line, OS user {getpass.getuser()})")
    user = accounts.get_user_by_username(session=session, username=username)
    if user is None or not user.active:
        raise click.ClickException(f"--as {username}: no active user of that name")
    return accounts.Actor.of(user)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--create-missing-users",
    is_flag=True,
    help="Create inactive placeholder accounts for authors unknown here (kept in the audit trail).",
)
@click.option("--as", "as_user", default=None, help="Import in the name of this user.")
def import_command(file: Path, create_missing_users: bool, as_user: str | None) -> None:
    """Import an interchange file (JSON Lines): all of it, or nothing if any line is wrong."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text") from None
    registry = checklist_registry()
    try:
        with _database().transaction() as session:
            summary = import_interchange(
                session=session,
                registry=registry,
                lines=lines,
                source=file.name,
                actor=_actor(session, as_user),
                create_missing_users=create_missing_users,
            )
    except ImportFileError as exc:
        for problem in shown_problems(exc.problems):
            click.echo(problem, err=True)
        raise click.ClickException(
            f"nothing was imported: {len(exc.problems)} problem(s) in {file.name} (listed above)"
        ) from None
    except QmsError as exc:
        raise click.ClickException(f"nothing was imported: {exc}") from None
    click.echo(str(summary))


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time", param_hint="--since"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no UTC offset; write e.g. {value}+08:00", param_hint="--since"
        )
    return moment


@click.command("export")
@click.option("--site", default=None, help="Only this site's units and equipment.")
@click.option(
    "--since", default=None, help="Units with records entered from this time on (ISO, with offset)."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
def export_command(site: str | None, since: str | None, output: Path | None) -> None:
    """Export units, step records, corrections, equipment and readings as JSON Lines."""
    moment = _since(since)
    with _database().transaction(write=False) as session:
        if site is not None:
            from qms.accounts.models import Site

            if session.get(Site, site) is None:
                raise click.ClickException(f"there is no site {site}")
        lines = list(export_interchange(session=session, site=site, since=moment))
    if output is None:
        sys.stdout.write("".join(lines))
    else:
        output.write_text("".join(lines), encoding="utf-8")
        click.echo(f"exported {len(lines)} line(s) to {output}", err=True)


@click.command("verify")
@click.option(
    "--expect",
    "expect",
    multiple=True,
    help="A head hash quoted earlier (e.g. in a report) that must still be in the chain.",
)
@click.option("--chain-only", is_flag=True, help="Skip comparing the typed rows with the chain.")
def verify_command(expect: tuple[str, ...], chain_only: bool) -> None:
    """Check the whole ledger: every link, every record's content, the protections."""
    started = time.perf_counter()
    shown = [0]

    def progress(count: int) -> None:
        if count - shown[0] >= 200_000:
            shown[0] = count
            click.echo(f"  … {count} records checked", err=True)

    database = _database()
    with database.transaction(write=False) as session:
        report = verify(
            session,
            check_rows=not chain_only,
            expect_hashes=expect,
            progress=progress,
            parallel=not database.bound,  # typed rows on a second connection, in parallel
            seal_key=database.seal_key,
        )
    elapsed = time.perf_counter() - started
    click.echo(
        f"{report.records} records checked in {elapsed:.2f}s; "
        f"head: record {report.head_seq}, hash {report.head_hash}"
    )
    if report.seals_checked:
        click.echo(
            f"seals: every record since record {report.sealed_from} is sealed by this installation's key"
            if report.sealed_from is not None
            else "seals: no record is sealed (written before sealing began, or without a ledger key)"
        )
    if report.ok:
        if report.head_seq:
            from qms.core.anchors import anchor

            # A later verify checks that this head still stands (no records removed after it).
            with database.transaction(write=True) as session:
                anchor(
                    session, source="verify", head_seq=report.head_seq, head_hash=report.head_hash
                )
        click.echo("ledger OK: no record was altered, removed or inserted")
        return
    for problem in sorted(report.problems, key=lambda p: (p.seq is None, p.seq or 0)):
        click.echo(f"  {problem}", err=True)
    raise click.ClickException(f"ledger FAILED: {report.first_problem}")


commands = [import_command, export_command, verify_command]
