"""Lint: every problem of a checklist file or folder at once, without building a registry."""

from __future__ import annotations

from pathlib import Path

from qms.checklists.language.registry import _load_tree


def lint(path: str | Path | None = None) -> tuple[list[str], int, int]:
    """Every problem in a checklist file or folder: (problems, checklists read, profiles read)."""
    from qms.paths import CHECKLISTS_DIR

    root = Path(path) if path is not None else CHECKLISTS_DIR
    checklists, profiles, problems = _load_tree(root, None)
    return problems, len(checklists), len(profiles)
