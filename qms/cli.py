"""The `qms` command line (also `flask --app qms ...`).

Each domain keeps its commands in `qms/<domain>/cli.py` as a list named `commands`;
`register_commands` adds them all to the app. Errors print one clear line and exit
non-zero (raise `click.ClickException`).
"""

from __future__ import annotations

import importlib
import sys

import click
from flask.cli import FlaskGroup

# Domains whose cli.py contributes commands; add a domain here when it gains commands.
COMMAND_MODULES = (
    "qms.web.cli",
    "qms.accounts.cli",
    "qms.identifiers.cli",
    "qms.checklists.cli",
    "qms.records.cli",
)


def register_commands(app) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in module.commands:
            app.cli.add_command(command)


def _create_app():
    from qms.web.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, load_dotenv=False)
def cli() -> None:
    """qms: quality management and audit of cell therapies in hospitals."""


def main() -> None:
    """The console script: a bad setting or an unusable database is one clear line."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import DBAPIError

    from qms.config import Settings, SettingsError

    try:
        Settings.from_env()
    except SettingsError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    try:
        cli.main(prog_name="qms")
    except (DBAPIError, sqlite3.Error, psycopg.Error) as exc:  # raw cursors raise the driver's
        click.echo(f"Error: {database_problem(exc)}", err=True)
        sys.exit(1)


def database_problem(exc: Exception) -> str:
    """What an operator should do about a database error a command could not handle."""
    text = str(getattr(exc, "orig", exc))
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return "the database has no qms tables yet, or an older schema: run `qms init-db` first"
    if any(s in lowered for s in ("connection refused", "could not connect", "unable to open")):
        return f"cannot reach the database ({text.strip().splitlines()[0]}); check QMS_DATABASE_URL"
    return f"the database refused the command: {text.strip().splitlines()[0]}"
