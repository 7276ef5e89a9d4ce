"""Where the project's non-Python files live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    bundled = _PACKAGE / "_bundled" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


TEMPLATES_DIR = _find("templates")
CHECKLISTS_DIR = _find("checklists")
STATIC_DIR = _PACKAGE / "web" / "static"
MIGRATIONS_DIR = _PACKAGE / "migrations"
TRANSLATIONS_DIR = _PACKAGE / "translations"
