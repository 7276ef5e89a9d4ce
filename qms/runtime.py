"""What commands and the web app share of an installation: settings, database, checklists.

A `Runtime` holds the settings read from QMS_* variables and builds the `Database` and
the checklist `Registry` (shipped checklists plus the site file) on first use, so a
command that needs neither opens and writes nothing. It imports no Flask: commands get
it from their click context (`current_runtime()`), the web app keeps its own in
`app.extensions["qms_runtime"]` (`qms.web.app.runtime_of`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import click

from qms.config import Settings

if TYPE_CHECKING:
    from qms.checklists.language import Registry
    from qms.db import Database

_META_KEY = "qms.runtime"


class Runtime:
    """Settings, and the database and checklist registry they describe (built lazily)."""

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self._database = database
        self._owns_database = database is None
        self._registry = registry
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Runtime:
        return cls(Settings.from_env(environ))

    @property
    def database(self) -> Database:
        """The database, with every table on the metadata (so foreign keys resolve)."""
        import qms.models  # noqa: F401  (registers every table, whichever command runs)

        if self._database is None:
            with self._lock:
                if self._database is None:
                    from qms.config import ledger_seal_key
                    from qms.db import Database

                    self._database = Database(
                        self.settings.database_url, seal_key=ledger_seal_key(self.settings)
                    )
        return self._database

    @property
    def registry(self) -> Registry:
        """The checklists in force: the shipped ones with the site's file (QMS_SITE_FILE)."""
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    from qms.checklists.language import Registry

                    self._registry = Registry.from_directory(site_overrides=self.settings.site_file)
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        # Tests put their own checklists in place.
        self._registry = registry

    def close(self) -> None:
        """Release the database connections this runtime opened (not one handed in)."""
        if self._owns_database and self._database is not None:
            self._database.dispose()
            self._database = None


def current_runtime() -> Runtime:
    """The runtime of the command being run.

    The `qms` script hands one to click (`obj`); a test may hand in its own. Otherwise
    (e.g. under `flask --app qms ...`) one is made from the environment, once per
    command line, and its connections are released when the command ends.
    """
    ctx = click.get_current_context()
    runtime = ctx.find_object(Runtime)
    if runtime is not None:
        return runtime
    runtime = ctx.meta.get(_META_KEY)
    if runtime is None:
        runtime = ctx.meta[_META_KEY] = Runtime.from_env()
        ctx.find_root().call_on_close(runtime.close)
    return runtime
