"""qms: quality management and audit of cell therapies in hospitals.

`flask --app qms ...` finds `create_app` here: the web app with the `qms` commands on
its command line. Importing `qms` loads nothing else (no Flask, no database code), so
that `qms identify` and the other pure commands start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from qms.config import Settings
    from qms.db import Database
    from qms.runtime import Runtime


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    runtime: Runtime | None = None,
) -> Flask:
    """`qms.web.app.create_app`, with every `qms` command added to `app.cli`."""
    from qms.cli import all_commands
    from qms.web.app import create_app as create_web_app

    app = create_web_app(settings, database=database, runtime=runtime)
    for command in all_commands():
        app.cli.add_command(command)
    return app


__all__ = ["create_app"]
