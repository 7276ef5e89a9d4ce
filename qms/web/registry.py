"""The app's checklist registry: the runtime's, loaded once per process from the shipped
checklists and the site's parameter file (QMS_SITE_FILE)."""

from __future__ import annotations

from qms.checklists.language import Registry
from qms.web.database import app_runtime


def get_registry() -> Registry:
    return app_runtime().registry
