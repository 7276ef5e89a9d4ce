"""Checklists: the YAML checklist language, its loader and linter, and the pure rule engine."""
