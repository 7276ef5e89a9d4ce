"""A site's quality figures: compliance by product and rule per month, each product's key
window against its limit, open deviations by age and classification, overdue CAPA actions,
excursions per equipment. Judged with the same loader and engine as the audit runs; the
charts come from `qms.charts`."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from qms.accounts.access import member_site_ids
from qms.accounts.models import Site
from qms.checklists import engine
from qms.core.clock import zone_of
from qms.quality.capa import ActionState, CapaState, overdue_actions
from qms.quality.deviations import CLOSED, DeviationState, states_of
from qms.quality.models import Deviation
from qms.records.loading import load_units_by_id
from qms.records.models import StepRecord, Unit

AGE_BUCKETS = ((0, 7), (7, 30), (30, 90), (90, None))


@dataclass
class SiteFigures:
    months: list[str]  # YYYY-MM, oldest first
    compliance: dict[str, list[float | None]]  # product -> % units without findings per month
    rules: dict[str, list[int]]  # rule -> findings per month (the most frequent rules)
    windows: dict[str, dict]  # product -> {"rule", "limit_minutes", "minutes": [...]}
    deviation_ages: dict[str, list[int]]  # classification -> count per AGE_BUCKETS
    overdue: list[tuple[CapaState, ActionState]] = field(default_factory=list)
    excursions: dict[str, int] = field(default_factory=dict)  # equipment -> findings
    open_deviations: list[DeviationState] = field(default_factory=list)


def site_figures(
    session: Session, registry, site_id: str, *, now: datetime, months: int = 6
) -> SiteFigures:
    site = session.get(Site, site_id)
    zone = zone_of(site.timezone)
    local_now = now.astimezone(zone)
    labels = []
    year, month = local_now.year, local_now.month
    for _ in range(months):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    labels.reverse()
    first = datetime(int(labels[0][:4]), int(labels[0][5:]), 1, tzinfo=zone)
    ids = list(
        session.exec(
            select(Unit.id)
            .where(
                Unit.site_id == site_id,
                col(Unit.id).in_(
                    select(StepRecord.unit_id).where(StepRecord.performed_at >= first)
                ),
            )
            .order_by(col(Unit.id))
        )
    )
    batch = load_units_by_id(session, ids)
    judged = batch.judge(registry, now=None, due=False)
    units_by: dict[tuple[str, str], int] = Counter()
    clean_by: dict[tuple[str, str], int] = Counter()
    rule_counts: dict[str, Counter] = defaultdict(Counter)
    windows: dict[str, dict] = {}
    excursions: Counter = Counter()
    for loaded in batch.units:
        judgement = judged.get(loaded.row.id)
        if judgement is None or not loaded.records:
            continue
        product = loaded.row.checklist_id
        last = max(r.performed_at for r in loaded.records).astimezone(zone)
        key = f"{last.year:04d}-{last.month:02d}"
        if key not in labels:
            continue
        units_by[(product, key)] += 1
        if not judgement.findings:
            clean_by[(product, key)] += 1
        for finding in judgement.findings:
            rule_counts[finding.rule][key] += 1
            if finding.kind == "excursion":
                excursions[str(finding.params.get("equipment", "?"))] += 1
        checklist = registry.get(loaded.row.checklist_id, loaded.row.checklist_version)
        _window_minutes(windows, checklist, loaded.case.steps)
    products = sorted({p for p, _m in units_by})
    compliance = {
        p: [
            round(100 * clean_by[(p, m)] / units_by[(p, m)], 1) if units_by[(p, m)] else None
            for m in labels
        ]
        for p in products
    }
    top_rules = sorted(rule_counts, key=lambda r: -sum(rule_counts[r].values()))[:6]
    rules = {r: [rule_counts[r][m] for m in labels] for r in sorted(top_rules)}
    deviations = states_of(
        session, session.exec(select(Deviation).where(Deviation.site_id == site_id)).all()
    )
    open_ones = [d for d in deviations if d.status != CLOSED]
    ages: dict[str, list[int]] = {c: [0] * len(AGE_BUCKETS) for c in ("critical", "major", "minor")}
    for state in open_ones:
        age = state.age_days(now)
        for i, (low, high) in enumerate(AGE_BUCKETS):
            if age >= low and (high is None or age < high):
                ages[state.classification][i] += 1
    return SiteFigures(
        months=labels,
        compliance=compliance,
        rules=rules,
        windows=windows,
        deviation_ages=ages,
        overdue=overdue_actions(session, [site_id], now),
        excursions=dict(sorted(excursions.items())),
        open_deviations=open_ones,
    )


def _window_minutes(windows: dict, checklist, steps) -> None:
    """The minutes of the checklist's first window with a maximum (its key window)."""
    rule = next(
        (
            r
            for r in checklist.rules
            if r.kind == "window" and getattr(r.spec, "max", None) is not None
        ),
        None,
    )
    if rule is None:
        return
    entry = windows.setdefault(
        checklist.id,
        {"rule": rule.id, "limit_minutes": rule.spec.max / timedelta(minutes=1), "minutes": []},
    )
    effective = engine.effective_records(steps)
    start = next((s.at for s in effective if s.step == rule.spec.start), None)
    end = next((s.at for s in reversed(effective) if s.step == rule.spec.end), None)
    if start is not None and end is not None and end >= start:
        entry["minutes"].append((end - start) / timedelta(minutes=1))


def home_panel(session: Session, user, *, now: datetime) -> dict:
    """What a quality officer's home page shows at once: critical deviations open, overdue
    actions, at the sites they belong to."""
    sites = sorted(member_site_ids(session, user.id))
    rows = session.exec(select(Deviation).where(col(Deviation.site_id).in_(sites))).all()
    critical = [
        s for s in states_of(session, rows) if s.status != CLOSED and s.classification == "critical"
    ]
    return {
        "critical_deviations": critical,
        "overdue_actions": overdue_actions(session, sites, now) if sites else [],
        "now": now,
    }
