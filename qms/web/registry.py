"""The app's checklist registry: loaded once per process from the shipped checklists and
the site's parameter file (QMS_SITE_FILE)."""

from __future__ import annotations

from flask import current_app

from qms.checklists.language import Registry


def get_registry() -> Registry:
    registry = current_app.extensions.get("qms_registry")
    if registry is None:
        settings = current_app.extensions["qms_settings"]
        registry = Registry.from_directory(site_overrides=settings.site_file)
        current_app.extensions["qms_registry"] = registry
    return registry
