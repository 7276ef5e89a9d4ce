"""Commands that set up and serve the application: init-db, demo, serve."""

from __future__ import annotations

import click
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from qms.db import current_revision, migrate
from qms.runtime import current_runtime


def _database():
    return current_runtime().database


@click.command("init-db")
def init_db_command() -> None:
    """Create or upgrade the database schema to the newest migration (safe to repeat)."""
    database = _database()
    try:
        migrate(database.url, seal_key=database.seal_key)
    except OperationalError as exc:
        raise click.ClickException(
            f"cannot reach the database at {_redacted(database.url)}: {exc.orig}"
        ) from None
    click.echo(
        f"database ready at revision {current_revision(database.url)} ({_redacted(database.url)})"
    )
    _record_checklists("qms init-db")


def _record_checklists(started_by: str) -> None:
    """Write which checklist versions and site parameters are in force to the audit trail."""
    from qms.checklists.service import record_active_checklists

    with _database().transaction() as session:
        warnings = record_active_checklists(
            session=session,
            registry=current_runtime().registry,
            started_by=f"system ({started_by})",
        )
    for warning in warnings:
        click.echo(f"WARNING: {warning}", err=True)


@click.command("demo")
@click.option("--force", is_flag=True, help="Load even if the database already has users.")
@click.option(
    "--reports",
    is_flag=True,
    help="Also make SH-01's October report on schedule, approve it and deliver it to the "
    "regulator's portal (signs with a demonstration key).",
)
def demo_command(force: bool, reports: bool) -> None:
    """Load demonstration data (a Shanghai hospital, two wards, one user per role) into an empty database."""
    from qms.accounts.models import User
    from qms.demo import load_demo

    database = _database()
    with database.transaction() as session:
        if session.exec(select(User)).first() is not None and not force:
            click.echo("demonstration data not loaded: the database already has users")
            return
        summary = load_demo(session=session)
    click.echo(summary)
    if not reports:
        return
    from qms.demo import PASSWORDS
    from qms.scheduling.demo import deliver_demo_october  # its October report, delivered

    officer = "liu.yang"
    for line in deliver_demo_october(
        current_runtime(), officer=officer, password=PASSWORDS[officer]
    ):
        click.echo(f"  {line}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve_command(host: str, port: int, threads: int) -> None:
    """Serve the web application with waitress."""
    from alembic.script import ScriptDirectory
    from waitress import serve

    from qms.db import alembic_config
    from qms.web.app import create_app

    database = _database()
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    try:
        current = current_revision(database.url)
    except OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc.orig}") from None
    if current != head:
        raise click.ClickException(
            f"the database schema is at {current or 'nothing'}, not {head}: run `qms init-db` first"
        )
    _record_checklists("qms serve")
    # The app serves the same runtime: the checklists just recorded are the ones it judges by.
    app = create_app(runtime=current_runtime())
    click.echo(f"qms serving on http://{host}:{port}/ (Ctrl+C stops)")
    serve(app, host=host, port=port, threads=threads, ident="qms")


def _redacted(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


commands = [init_db_command, demo_command, serve_command]
