"""Command line for checklists: `qms checklist lint`, `qms checklist show`, `qms evaluate`.

None of these touch the database: they read checklist files and interchange files only.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from qms.checklists.engine import describe_rules
from qms.checklists.facts import DueItem, Finding
from qms.checklists.judging import COMPLETE, UnitCase, judge_many
from qms.checklists.language import ChecklistError, Registry, lint
from qms.records.interchange import (
    InterchangeError,
    read_interchange,
    shown_problems,
    validate_against,
)


@click.group("checklist")
def checklist_group() -> None:
    """Check and inspect the checklist files."""


@checklist_group.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
def lint_command(path: Path | None) -> None:
    """Check checklist files (default: the shipped checklists/ folder); list every problem."""
    problems, checklists, profiles = lint(path)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found"
        )
    click.echo(
        f"ok: {checklists} checklist{'s' if checklists != 1 else ''} and {profiles} profile{'s' if profiles != 1 else ''}, no problems"
    )


@checklist_group.command("list")
@click.option(
    "--checklists",
    "checklists_dir",
    type=click.Path(path_type=Path),
    help="Folder of checklists (default: the shipped ones).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def list_command(checklists_dir: Path | None, fmt: str) -> None:
    """List every checklist version that can judge units: the current one (new units are
    registered under it) and the archived ones (units registered under them keep them)."""
    registry = _registry(checklists_dir, None)
    rows = []
    for newest in registry:
        for version in reversed(registry.versions(newest.id)):
            checklist = registry.get(newest.id, version)
            rows.append(
                {
                    "checklist": checklist.id,
                    "version": version,
                    "status": "current" if version == newest.version else "archived",
                    "rules_digest": checklist.rules_digest,
                    "digest": checklist.digest,
                    "path": _shown_path(checklist.path),
                    "title": str(checklist.title),
                }
            )
    if fmt == "json":
        click.echo(json.dumps({"checklists": rows}, ensure_ascii=False, indent=2))
        return
    width = max((len(r["checklist"]) for r in rows), default=0)
    for r in rows:
        click.echo(
            f"{r['checklist']:<{width}}  {r['version']:<8}  {r['status']:<8}  "
            f"rules {r['rules_digest'][:12]}  {r['path']}"
        )


def _shown_path(path: Path | None) -> str:
    """A shipped checklist's path from the project folder (checklists/...), else as given."""
    if path is None:
        return ""
    from qms.paths import CHECKLISTS_DIR

    try:
        return str(Path(path).resolve().relative_to(CHECKLISTS_DIR.resolve().parent))
    except ValueError:
        return str(path)


@checklist_group.command("show")
@click.argument("checklist_id")
@click.option(
    "--checklists",
    "checklists_dir",
    type=click.Path(path_type=Path),
    help="Folder of checklists (default: the shipped ones).",
)
@click.option("--version", "version", help="A version other than the newest.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def show_command(
    checklist_id: str, checklists_dir: Path | None, version: str | None, fmt: str
) -> None:
    """List a checklist's rules with their severity, source and limit."""
    registry = _registry(checklists_dir, None)
    try:
        checklist = registry.get(checklist_id, version)
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    rules = describe_rules(checklist)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "checklist": checklist.id,
                    "version": checklist.version,
                    "digest": checklist.digest,
                    "rules": rules,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    click.echo(f"{checklist.id} {checklist.version} ({checklist.title})  sha256:{checklist.digest}")
    for rule in rules:
        when = f" [when {rule['when']}]" if rule["when"] else ""
        limit = f" limit {rule['limit']}" if rule["limit"] else ""
        click.echo(
            f"  {rule['rule']}  {rule['kind']}/{rule['severity']}{limit}{when}  — {rule['source']}"
        )


def _registry(checklists_dir: Path | None, site_file: Path | None) -> Registry:
    try:
        return Registry.from_directory(checklists_dir, site_overrides=site_file)
    except ChecklistError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise click.ClickException(
            f"the checklists have {len(exc.problems)} problem(s); run `qms checklist lint`"
        ) from None


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time", param_hint="--now"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (e.g. +08:00)", param_hint="--now")
    return moment


@click.command("evaluate")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--profile", help="Jurisdiction profile for every unit (overrides the units' own).")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@click.option(
    "--now",
    "now_text",
    help="Evaluate as at this time (ISO 8601 with offset): open windows past their limit are findings.",
)
@click.option(
    "--complete",
    is_flag=True,
    help="Treat every unit as finished (required steps never done are missing); default: the unit's status.",
)
@click.option(
    "--due",
    is_flag=True,
    help="Also list, for each unit in progress, what is due next and by when (needs --now).",
)
@click.option(
    "--checklists",
    "checklists_dir",
    type=click.Path(path_type=Path),
    help="Folder of checklists (default: the shipped ones).",
)
@click.option(
    "--site-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A site's parameter overrides.",
)
def evaluate_command(
    file,
    profile: str | None,
    fmt: str,
    now_text: str | None,
    complete: bool,
    due: bool,
    checklists_dir: Path | None,
    site_file: Path | None,
) -> None:
    """Run the rule engine over an interchange file (JSON Lines) and print the findings.

    Exits 0 when the file is valid, whatever the findings; non-zero on a bad file.
    """
    now = _parse_now(now_text)
    if due and now is None:
        raise click.BadParameter(
            "what is due depends on the time: give --now too", param_hint="--due"
        )
    registry = _registry(checklists_dir, site_file)
    if profile is not None and profile not in registry.profiles:
        raise click.BadParameter(
            f"unknown profile {profile!r}; profiles: {', '.join(sorted(registry.profiles))}",
            param_hint="--profile",
        )
    source = "<stdin>" if file.name == "<stdin>" else file.name
    try:
        interchange = read_interchange(file, source=source)
    except InterchangeError as exc:
        _fail(exc.problems, source)
    problems = validate_against(interchange, registry)
    if problems:
        _fail(problems, source)
    steps_of: dict[str, list] = {}
    for step in interchange.steps:
        steps_of.setdefault(step.unit, []).append(step)
    judged = judge_many(
        [UnitCase(unit, tuple(steps_of.get(unit.id, ()))) for unit in interchange.units],
        lambda unit: registry.get(unit.checklist, unit.checklist_version),
        interchange.readings,
        now=now,
        status=COMPLETE if complete else None,
        profile=profile,
        due=due,
    )
    findings: list[Finding] = [f for j in judged.values() for f in j.findings]
    due_items: list[DueItem] = [d for j in judged.values() for d in j.due]
    if fmt == "json":
        result = {"units": len(interchange.units), "findings": [f.to_json() for f in findings]}
        if due:
            result["due"] = [_due_json(item) for item in due_items]
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    _print_text(interchange.units, findings, due_items if due else None)


def _due_json(item: DueItem) -> dict:
    return {
        "unit": item.unit,
        "step": item.step,
        "rule": item.rule,
        "by": item.by.isoformat() if item.by else None,
        "not_before": item.not_before.isoformat() if item.not_before else None,
        "message": item.message,
    }


def _fail(problems: list[str], source: str) -> None:
    for problem in shown_problems(problems):
        click.echo(problem, err=True)
    raise click.ClickException(
        f"{source}: {len(problems)} bad line{'s' if len(problems) != 1 else ''}; nothing evaluated"
    )


def _print_text(units, findings: list[Finding], due_items: list[DueItem] | None = None) -> None:
    by_unit: dict[str, list[Finding]] = {}
    for finding in findings:
        by_unit.setdefault(finding.unit, []).append(finding)
    click.echo(
        f"{len(units)} unit{'s' if len(units) != 1 else ''}, {len(findings)} finding{'s' if len(findings) != 1 else ''}"
    )
    for unit in units:
        items = by_unit.get(unit.id, [])
        click.echo("")
        click.echo(
            f"{unit.id} ({unit.checklist}): {len(items) or 'no'} finding{'s' if len(items) != 1 else ''}"
        )
        for f in items:
            detail = ""
            if f.limit is not None or f.actual is not None:
                detail = f" [limit {f.limit}; actual {f.actual}]"
            click.echo(f"  {f.severity.upper():8} {f.kind:16} {f.rule}: {f.message}{detail}")
        for item in due_items or ():
            if item.unit == unit.id:
                click.echo(f"  DUE      {item.step:16} {item.message}")


commands: list[click.Command] = [checklist_group, evaluate_command]

if __name__ == "__main__":  # pragma: no cover - handy without the Flask wiring
    sys.exit(
        click.CommandCollection(sources=[click.Group(commands={c.name: c for c in commands})])()
    )
