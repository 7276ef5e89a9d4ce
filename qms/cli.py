"""The `qms` command line (also `flask --app qms ...`).

Each domain keeps its commands in `qms/<domain>/cli.py` as a list named `commands`,
listed below with their names, so that running one command imports only its own module:
`qms identify` loads no database code and no Flask. Commands get the settings, the
database and the checklists from `qms.runtime.current_runtime()`, never from a web app.
Errors print one clear line and exit non-zero (raise `click.ClickException`).
"""

from __future__ import annotations

import importlib
import sys

import click

from qms.config import Settings, SettingsError
from qms.runtime import Runtime

# Domains whose cli.py contributes commands, with the names of those commands; add a
# domain (or a name) here when it gains commands (tests/test_cli.py checks the list).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "qms.web.cli": ("init-db", "demo", "serve"),
    "qms.accounts.cli": ("user",),
    "qms.identifiers.cli": ("identify",),
    "qms.checklists.cli": ("checklist", "evaluate"),
    "qms.records.cli": ("import", "export", "verify"),
    "qms.scheduling.cli": ("schedule", "scheduler", "backup"),
    "qms.quality.cli": ("audit",),
    "qms.reports.cli": ("report", "keys"),
}


def load_commands(module_name: str) -> dict[str, click.Command]:
    module = importlib.import_module(module_name)
    return {command.name: command for command in module.commands}


class CommandLine(click.Group):
    """A group that imports a domain's command module only when one of its commands runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [name for names in COMMAND_MODULES.values() for name in names]
        return sorted({*names, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            for module_name, names in COMMAND_MODULES.items():
                if name in names:
                    self.commands.update(load_commands(module_name))
                    break
        return self.commands.get(name)


@click.group(cls=CommandLine)
def cli() -> None:
    """qms: quality management and audit of cell therapies in hospitals."""


def all_commands() -> list[click.Command]:
    """Every command, loaded (for `flask --app qms`, whose app carries them all)."""
    ctx = click.Context(cli)
    return [cli.get_command(ctx, name) for name in cli.list_commands(ctx)]


def main() -> None:
    """The console script: a bad setting or an unusable database is one clear line."""
    try:
        runtime = Runtime(Settings.from_env())
    except SettingsError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    try:
        cli.main(prog_name="qms", obj=runtime)
    except Exception as exc:
        if _is_checklist_error(exc):
            # The runtime loads the shipped checklists with the site file (QMS_SITE_FILE).
            for problem in exc.problems:
                click.echo(problem, err=True)
            click.echo(
                f"Error: the checklists in force have {len(exc.problems)} problem(s), listed "
                "above (in the checklists folder or the site file QMS_SITE_FILE names)",
                err=True,
            )
            sys.exit(1)
        if not _is_database_error(exc):
            raise
        click.echo(f"Error: {database_problem(exc)}", err=True)
        sys.exit(1)
    finally:
        runtime.close()


def _is_checklist_error(exc: Exception) -> bool:
    language = sys.modules.get("qms.checklists.language")
    return language is not None and isinstance(exc, language.ChecklistError)


def _is_database_error(exc: Exception) -> bool:
    # Only a command that loaded the database drivers can raise their errors, so look
    # them up where they are loaded rather than importing them for every command.
    kinds: list[type] = []
    for module_name, attribute in (
        ("sqlalchemy.exc", "DBAPIError"),
        ("sqlite3", "Error"),  # raw cursors raise the driver's own errors
        ("psycopg", "Error"),
    ):
        module = sys.modules.get(module_name)
        if module is not None:
            kinds.append(getattr(module, attribute))
    return isinstance(exc, tuple(kinds))


def database_problem(exc: Exception) -> str:
    """What an operator should do about a database error a command could not handle."""
    text = str(getattr(exc, "orig", exc))
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return "the database has no qms tables yet, or an older schema: run `qms init-db` first"
    if any(s in lowered for s in ("connection refused", "could not connect", "unable to open")):
        return f"cannot reach the database ({text.strip().splitlines()[0]}); check QMS_DATABASE_URL"
    return f"the database refused the command: {text.strip().splitlines()[0]}"
