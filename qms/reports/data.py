"""The data of a report, built from the ledger up to a head: what is embedded and shown.

The data is a pure function of the ledger entries up to the head it covers (seq 1..n),
so `qms report verify` rebuilds it and compares it with the JSON the PDF carries.
Records enter as the canonical content the ledger chains (the contract of
``qms.core.canonical``): what a record says is exactly what the chain covers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from qms.accounts.models import Site
from qms.core.errors import NotFound
from qms.core.i18n import _
from qms.core.models import LedgerEntry
from qms.records.models import Signature, StepRecord, Unit, UnitStatus

DATA_FORMAT = 1


def ledger_head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest committed ledger entry (0 and genesis when empty)."""
    from qms.core.canonical import GENESIS

    row = session.connection().execute(
        text("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
    )
    found = row.first()
    return (found[0], found[1]) if found else (0, GENESIS)


def _contents(session: Session, model, condition, head_seq: int) -> list[dict[str, Any]]:
    rows = session.exec(
        select(LedgerEntry.content)
        .join(model, col(model.ledger_seq) == col(LedgerEntry.seq))
        .where(condition, col(LedgerEntry.seq) <= head_seq)
        .order_by(col(LedgerEntry.seq))
    ).all()
    return [json.loads(content) for content in rows]


def unit_dossier_data(session: Session, unit_id: str, head_seq: int) -> dict[str, Any]:
    """Every record, correction, signature and status of one unit, up to `head_seq`."""
    unit = session.get(Unit, unit_id)
    if unit is None or unit.ledger_seq > head_seq:
        raise NotFound(_("there is no unit %(unit)s", unit=unit_id))
    site = session.get(Site, unit.site_id)
    records = _contents(session, StepRecord, col(StepRecord.unit_id) == unit_id, head_seq)
    record_ids = [r["id"] for r in records]
    signatures = (
        _contents(session, Signature, col(Signature.record_id).in_(record_ids), head_seq)
        if record_ids
        else []
    )
    statuses = _contents(session, UnitStatus, col(UnitStatus.unit_id) == unit_id, head_seq)
    (unit_content,) = _contents(session, Unit, col(Unit.id) == unit_id, head_seq)
    return {
        "format": DATA_FORMAT,
        "report_type": "unit-dossier",
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "scope": unit_id,
        "period": "all",
        "unit": unit_content,
        "records": records,
        "signatures": signatures,
        "statuses": statuses,
    }


DOSSIER_CSV_COLUMNS = (
    "record",
    "type",
    "step",
    "performed_at",
    "recorded_at",
    "performed_by",
    "witness",
    "meaning",
    "corrects",
    "reason",
    "fields",
    "findings",
)


def dossier_csv(data: dict[str, Any]) -> bytes:
    """One line per record of the dossier (fields and findings as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DOSSIER_CSV_COLUMNS)
    for r in data["records"]:
        writer.writerow(
            [
                r["id"],
                r["type"],
                r["step"],
                r["performed_at"],
                r["recorded_at"],
                r["performed_by"],
                r.get("witness") or "",
                r["meaning"],
                r.get("corrects") or "",
                r.get("reason") or "",
                json.dumps(r["fields"], ensure_ascii=False, sort_keys=True),
                json.dumps(r["findings"], ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue().encode("utf-8")


def mask(value: str | None) -> str:
    """An identifier with all but its last four characters hidden (reports that leave)."""
    if not value:
        return ""
    return "•" * max(len(value) - 4, 0) + value[-4:]


# --- site monthly report: built from an audit run ----------------------------------------

IDENTITY_FIELDS = ("coi_id", "din", "product_patient_id", "wristband_patient_id")
ADMINISTERED_STEP = "infusion_end"


def month_bounds(period: str):
    """The first and last day of a month (2026-10)."""
    from calendar import monthrange
    from datetime import date

    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])


def sensitive_values(session: Session, unit_ids: list[str], head_seq: int) -> set[str]:
    """Patient references, chain-of-identity ids and identity fields of these units."""
    values: set[str] = set()
    for start in range(0, len(unit_ids), 1000):
        chunk = unit_ids[start : start + 1000]
        for patient, coi in session.exec(
            select(Unit.patient_ref, Unit.coi_id).where(col(Unit.id).in_(chunk))
        ):
            values.update(v for v in (patient, coi) if v)
        for fields in session.exec(
            select(StepRecord.fields).where(
                col(StepRecord.unit_id).in_(chunk), col(StepRecord.ledger_seq) <= head_seq
            )
        ):
            _identity_fields(fields, values)
    return {v for v in values if len(v) > 4}


# How each identity field's key reads in a record's canonical JSON: a record naming none
# of them (most records) is not parsed.
_IDENTITY_KEYS = tuple(f'"{k}"' for k in IDENTITY_FIELDS)


def _identity_fields(fields: str, values: set[str]) -> None:
    """Add the identity fields' values of a record's fields (canonical JSON) to `values`."""
    if not any(key in fields for key in _IDENTITY_KEYS):
        return
    doc = json.loads(fields)
    values.update(str(doc[k]) for k in IDENTITY_FIELDS if doc.get(k))


def scrub(value: Any, secrets: set[str]) -> Any:
    """`value` with every secret in any string masked to its last four characters: at
    each place, leftmost first, the longest secret that starts there.

    The secrets are compiled into one regular expression shaped as their trie
    (`_trie_pattern`), so each string is scanned once, in C, whatever the number of
    secrets (thousands in a regional report, over megabytes of findings).
    """
    if not secrets:
        return value
    pattern = re.compile(_trie_pattern(sorted(secrets)))  # sorted: the same pattern each time

    def hide(match: re.Match) -> str:
        return mask(match.group(0))

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(hide, v) if len(v) > 4 else v
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


def _trie_pattern(words: list[str]) -> str:
    """A regular expression matching any of `words`, the longest one where several start
    at the same place: a word that continues into others is followed by an optional group,
    tried first. Branches share their prefixes (a common prefix is written once, then the
    words part by their next character), so the engine follows one path per place instead
    of trying every word; the nesting grows with the branchings, not the words' length."""
    ends = "" in words
    words = [w for w in words if w]
    if not words:
        return ""
    prefix = os.path.commonprefix(words)
    if prefix:
        body = re.escape(prefix) + _trie_pattern([w[len(prefix) :] for w in words])
    else:
        groups: dict[str, list[str]] = {}
        for word in words:
            groups.setdefault(word[0], []).append(word[1:])
        body = "(?:" + "|".join(re.escape(c) + _trie_pattern(r) for c, r in groups.items()) + ")"
    return f"(?:{body})?" if ends else body


def site_monthly_data(session: Session, site_id: str, period: str, run_id: str) -> dict[str, Any]:
    """A site's month from one audit run (its findings, units, head) and the ledger up to
    the head the run covers; identifiers masked (the report leaves the hospital)."""
    from qms.core.i18n import _ as translate
    from qms.quality.audits import run_json
    from qms.quality.models import AuditRun

    run = session.get(AuditRun, run_id)
    if run is None or run.site_id != site_id:
        raise NotFound(translate("there is no audit run %(run)s", run=run_id))
    site = session.get(Site, site_id)
    covers = json.loads(run.covers)
    head_seq = covers["seq"]
    audit = run_json(run)
    first, last = month_bounds(period)
    figures = _site_figures(session, site, run, audit, first)
    deviations = deviations_in_period(session, site, head_seq, first, last, _check_days(run))
    content = {
        "format": DATA_FORMAT,
        "report_type": "site-monthly",
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "scope": site_id,
        "period": {"month": period, "from": first.isoformat(), "to": last.isoformat()},
        "audit_run": _run_block(run),
        "units_by_product": [
            {"checklist": c, "status": s, "units": n}
            for (c, s), n in sorted(figures.by_product_status.items())
        ],
        "doses_administered": [
            {"checklist": c, "doses": n} for c, n in sorted(figures.doses.items())
        ],
        "compliance": figures.compliance(),
        "rules": [
            {
                "rule": r,
                "severity": s,
                "findings": n,
                "units_with_findings": len(figures.rule_units.get(r, ())),
                "compliant_percent": figures.rule_compliance(r),
            }
            for (r, s), n in sorted(figures.rules.items())
        ],
        "findings_by_severity": audit["counts"]["by_severity"],
        "audit": audit,
        "deviations": deviations,
        "excursions": excursions_in_period(session, site, head_seq, first, last, audit["findings"]),
    }
    return scrub(content, figures.secrets)


def _check_days(run) -> int:
    return int(json.loads(run.parameters).get("effectiveness_check_days", 90))


def _run_block(run) -> dict[str, Any]:
    return {
        "id": run.id,
        "site": run.site_id,
        "at": run.at.isoformat(),
        "kind": run.kind,
        "checklists": json.loads(run.checklists),
        "parameters": json.loads(run.parameters),
        "covers": json.loads(run.covers),
    }


class SiteFigures:
    """Counts of one site's units in an audit run's scope, as they stood at its head."""

    def __init__(self) -> None:
        self.unit_ids: list[str] = []
        self.by_product_status: dict[tuple[str, str], int] = {}
        self.doses: dict[str, int] = {}
        self.units_of: dict[str, int] = {}
        self.with_findings: dict[str, set[str]] = {}
        self.rules: dict[tuple[str, str], int] = {}
        # per month (YYYY-MM of the unit's first step in the period): units, with findings
        self.month_units: dict[str, int] = {}
        self.month_with_findings: dict[str, int] = {}
        self.month_findings: dict[str, int] = {}
        self.severity: dict[str, int] = {}
        self.rule_units: dict[str, set[str]] = {}
        self.rule_checklist: dict[str, str] = {}
        # the units' patient references, chain-of-identity ids and identity fields
        self.secrets: set[str] = set()

    def rule_compliance(self, rule: str) -> float | None:
        """The share of the rule's product's units without a finding of the rule."""
        units = self.units_of.get(self.rule_checklist.get(rule, ""), 0)
        if not units:
            return None
        return round(100 * (units - len(self.rule_units.get(rule, ()))) / units, 1)

    def compliance(self) -> list[dict[str, Any]]:
        return [
            {
                "checklist": c,
                "units": n,
                "units_with_findings": len(self.with_findings.get(c, ())),
                "compliant_percent": round(100 * (n - len(self.with_findings.get(c, ()))) / n, 1),
            }
            for c, n in sorted(self.units_of.items())
        ]


def _site_figures(session: Session, site: Site, run, audit: dict, first) -> SiteFigures:
    """The counts of the run's units as they stood at its head, and their identifiers
    (`secrets`). Reads the few columns the counts need, as plain rows (per 1,000 units: one
    query for the units, one for their records, one for their statuses), not the units
    loaded for judging: the audit judged them already."""
    from datetime import datetime, time

    from qms.quality.audits import AuditScope, units_in_scope

    head_seq = json.loads(run.covers)["seq"]
    out = SiteFigures()
    unit_ids = units_in_scope(session, AuditScope.of_run(run), site.timezone, head_seq)
    out.unit_ids = unit_ids
    zone = zone_of_site(site)
    period_start = datetime.combine(first, time(0), tzinfo=zone)
    checklist_of: dict[str, str] = {}
    status_at_head: dict[str, str] = {}
    administered: set[str] = set()
    earliest: dict[str, datetime] = {}
    secrets: set[str] = set()
    for start in range(0, len(unit_ids), 1000):
        chunk = unit_ids[start : start + 1000]
        for unit_id, checklist_id, patient, coi in session.exec(
            select(Unit.id, Unit.checklist_id, Unit.patient_ref, Unit.coi_id).where(
                col(Unit.id).in_(chunk)
            )
        ):
            checklist_of[unit_id] = checklist_id
            secrets.update(v for v in (patient, coi) if v)
        for unit_id, step, corrects_id, performed_at, fields in session.exec(
            select(
                StepRecord.unit_id,
                StepRecord.step,
                StepRecord.corrects_id,
                StepRecord.performed_at,
                StepRecord.fields,
            ).where(col(StepRecord.unit_id).in_(chunk), col(StepRecord.ledger_seq) <= head_seq)
        ):
            if step == ADMINISTERED_STEP and corrects_id is None:
                administered.add(unit_id)
            if performed_at >= period_start and (
                unit_id not in earliest or performed_at < earliest[unit_id]
            ):
                earliest[unit_id] = performed_at
            _identity_fields(fields, secrets)
        for unit_id, status in session.exec(
            select(UnitStatus.unit_id, UnitStatus.status)
            .where(col(UnitStatus.unit_id).in_(chunk), col(UnitStatus.ledger_seq) <= head_seq)
            .order_by(col(UnitStatus.ledger_seq))
        ):
            status_at_head[unit_id] = status
    out.secrets = {v for v in secrets if len(v) > 4}
    month_of: dict[str, str] = {}
    first_month = first.strftime("%Y-%m")
    for unit_id in unit_ids:
        checklist_id = checklist_of.get(unit_id)
        if checklist_id is None:
            continue
        status = status_at_head.get(unit_id, "in_progress")
        key = (checklist_id, status)
        out.by_product_status[key] = out.by_product_status.get(key, 0) + 1
        out.units_of[checklist_id] = out.units_of.get(checklist_id, 0) + 1
        if unit_id in administered:
            out.doses[checklist_id] = out.doses.get(checklist_id, 0) + 1
        at = earliest.get(unit_id)
        month = at.astimezone(zone).strftime("%Y-%m") if at is not None else first_month
        month_of[unit_id] = month
        out.month_units[month] = out.month_units.get(month, 0) + 1
    flagged: set[str] = set()
    for f in audit["findings"]:
        product = checklist_of.get(f["unit"], f["rule"].split(".", 1)[0])
        out.with_findings.setdefault(product, set()).add(f["unit"])
        out.rules[(f["rule"], f["severity"])] = out.rules.get((f["rule"], f["severity"]), 0) + 1
        out.severity[f["severity"]] = out.severity.get(f["severity"], 0) + 1
        out.rule_units.setdefault(f["rule"], set()).add(f["unit"])
        out.rule_checklist[f["rule"]] = product
        month = month_of.get(f["unit"])
        if month:
            out.month_findings[month] = out.month_findings.get(month, 0) + 1
            if f["unit"] not in flagged:
                flagged.add(f["unit"])
                out.month_with_findings[month] = out.month_with_findings.get(month, 0) + 1
    return out


def year_bounds(period: str):
    from datetime import date

    year = int(period)
    return date(year, 1, 1), date(year, 12, 31)


SEVERITIES = ("critical", "major", "minor")


def regional_annual_data(
    session: Session, region: dict[str, str], period: str, runs: dict[str, str]
) -> dict[str, Any]:
    """A region's year: per site and product, from one audit run of the year per site
    (`runs`: site id -> run id), each read up to the head its run covers; identifiers
    masked (the report leaves the hospital)."""
    from qms.core.i18n import _ as translate
    from qms.quality.audits import run_json
    from qms.quality.models import AuditRun

    first, last = year_bounds(period)
    months = [f"{period}-{m:02d}" for m in range(1, 13)]
    sites, run_blocks, audits = [], [], {}
    volumes, compliance, severity, deviations, deviation_counts, trends = [], [], [], [], [], []
    excursions = []
    secrets: set[str] = set()
    for site_id in sorted(runs):
        run = session.get(AuditRun, runs[site_id])
        if run is None or run.site_id != site_id:
            raise NotFound(translate("there is no audit run %(run)s", run=runs[site_id]))
        site = session.get(Site, site_id)
        head_seq = json.loads(run.covers)["seq"]
        audit = run_json(run)
        figures = _site_figures(session, site, run, audit, first)
        secrets |= figures.secrets
        sites.append({"id": site.id, "name": site.name, "timezone": site.timezone})
        run_blocks.append({**_run_block(run), "counts": audit["counts"]})
        audits[site_id] = audit
        for checklist in sorted(set(figures.units_of) | set(figures.doses)):
            volumes.append(
                {
                    "site": site_id,
                    "checklist": checklist,
                    "units": figures.units_of.get(checklist, 0),
                    "doses": figures.doses.get(checklist, 0),
                }
            )
        compliance += [{"site": site_id, **row} for row in figures.compliance()]
        severity.append({"site": site_id, **{s: figures.severity.get(s, 0) for s in SEVERITIES}})
        site_deviations = deviations_in_period(
            session, site, head_seq, first, last, _check_days(run)
        )
        deviations += [{"site": site_id, **d} for d in site_deviations]
        by_class: dict[str, int] = {}
        capa_status: dict[str, int] = {}
        for d in site_deviations:
            if d["opened_in_period"]:
                key = d["classification"] or "unclassified"
                by_class[key] = by_class.get(key, 0) + 1
            for c in d["capas"]:
                capa_status[c["status"]] = capa_status.get(c["status"], 0) + 1
        deviation_counts.append(
            {
                "site": site_id,
                "opened": sum(1 for d in site_deviations if d["opened_in_period"]),
                "closed": sum(1 for d in site_deviations if d["closed_in_period"]),
                "by_classification": dict(sorted(by_class.items())),
                "capa_status": dict(sorted(capa_status.items())),
            }
        )
        site_excursions = excursions_in_period(
            session, site, head_seq, first, last, audit["findings"]
        )
        excursions.append(
            {
                "site": site_id,
                "units_with_excursion_findings": sum(
                    e["units"] for e in site_excursions["findings_by_equipment"]
                ),
                "acknowledged": len(site_excursions["acknowledgements"]),
            }
        )
        trends.append(
            {
                "site": site_id,
                "units": [figures.month_units.get(m, 0) for m in months],
                "findings": [figures.month_findings.get(m, 0) for m in months],
                "compliant_percent": [
                    round(
                        100
                        * (figures.month_units[m] - figures.month_with_findings.get(m, 0))
                        / figures.month_units[m],
                        1,
                    )
                    if figures.month_units.get(m)
                    else None
                    for m in months
                ],
            }
        )
    heads = [b["covers"] for b in run_blocks]
    content = {
        "format": DATA_FORMAT,
        "report_type": "regional-annual",
        "region": {"id": region["id"], "name": region["name"]},
        "site": {
            "id": region["id"],
            "name": region["name"],
            "timezone": sites[0]["timezone"] if sites else "UTC",
        },
        "scope": region["id"],
        "period": {"year": period, "from": first.isoformat(), "to": last.isoformat()},
        "sites": sites,
        "audit_runs": run_blocks,
        "covers": max(heads, key=lambda h: h["seq"]) if heads else None,
        "months": months,
        "volumes": volumes,
        "compliance": compliance,
        "findings_by_severity": severity,
        "deviation_counts": deviation_counts,
        "deviations": deviations,
        "excursions": excursions,
        "trends": trends,
        "audits": audits,
    }
    return scrub(content, secrets)


def zone_of_site(site: Site):
    from qms.core.clock import zone_of

    return zone_of(site.timezone)


SITE_CSV_COLUMNS = ("unit", "rule", "code", "kind", "severity", "steps", "record_ids", "message")


def findings_csv(data: dict[str, Any]) -> bytes:
    """One line per finding of the audit run (identifiers already masked)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SITE_CSV_COLUMNS)
    for f in data["audit"]["findings"]:
        writer.writerow(
            [
                f["unit"],
                f["rule"],
                f["code"],
                f["kind"],
                f["severity"],
                " ".join(f["steps"]),
                " ".join(f["record_ids"]),
                f["message"],
            ]
        )
    return out.getvalue().encode("utf-8")


# --- shared by the site monthly and the regional annual report -----------------------------


def _with_events(session: Session, model, event_model, owner, site_id: str, head_seq: int):
    """A site's rows of `model` up to `head_seq`, in ledger order, and each one's events
    (`owner`: the event's column naming the row) up to the same head: two queries."""
    rows = session.exec(
        select(model)
        .where(model.site_id == site_id, col(model.ledger_seq) <= head_seq)
        .order_by(col(model.ledger_seq))
    ).all()
    events: dict[str, list] = {r.id: [] for r in rows}
    if rows:
        for event in session.exec(
            select(event_model)
            .where(col(owner).in_(list(events)), col(event_model.ledger_seq) <= head_seq)
            .order_by(col(event_model.ledger_seq))
        ):
            events[getattr(event, owner.key)].append(event)
    return rows, events


def deviations_in_period(
    session: Session, site: Site, head_seq: int, first, last, check_days: int
) -> list[dict[str, Any]]:
    """The site's deviations opened or closed between `first` and `last` (site's days), as
    they stood at `head_seq`, each with its classification, status and its CAPAs' status."""
    from qms.quality import capa as capa_states
    from qms.quality.deviations import derive
    from qms.quality.models import Capa, CapaEvent, Deviation, DeviationEvent

    opened, events = _with_events(
        session, Deviation, DeviationEvent, DeviationEvent.deviation_id, site.id, head_seq
    )
    capas, capa_events = _with_events(
        session, Capa, CapaEvent, CapaEvent.capa_id, site.id, head_seq
    )
    capas_of: dict[str, list[dict[str, str]]] = {}
    for c in capas:
        state = capa_states.derive(c, capa_events[c.id], check_days)
        for deviation_id in json.loads(c.deviations):
            capas_of.setdefault(deviation_id, []).append({"id": c.id, "status": state.status})
    zone = zone_of_site(site)
    out = []
    for deviation in opened:
        state = derive(deviation, events[deviation.id], set())
        opened_day = deviation.opened_at.astimezone(zone).date()
        closed_day = state.closed_at.astimezone(zone).date() if state.closed_at else None
        in_period = first <= opened_day <= last or (closed_day and first <= closed_day <= last)
        if not in_period:
            continue
        out.append(
            {
                "id": deviation.id,
                "classification": state.classification,
                "status": state.status,
                "rule": deviation.rule,
                "units": json.loads(deviation.units),
                "opened_at": deviation.opened_at.isoformat(),
                "opened_in_period": first <= opened_day <= last,
                "closed_at": state.closed_at.isoformat() if state.closed_at else None,
                "closed_in_period": bool(closed_day and first <= closed_day <= last),
                "due_at": state.due_at.isoformat() if state.due_at else None,
                "capas": capas_of.get(deviation.id, []),
            }
        )
    return out


def excursions_in_period(
    session: Session, site: Site, head_seq: int, first, last, findings: list[dict]
) -> dict[str, Any]:
    """The period's excursions: the audit run's excursion findings per equipment (units
    stored while the equipment was out of range) and the acknowledgements chained up to
    `head_seq` of excursions that started in the period (site's days)."""
    from datetime import datetime, time, timedelta

    from qms.storage.models import Equipment, ExcursionAck

    zone = zone_of_site(site)
    start = datetime.combine(first, time(0), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone)
    per_equipment: dict[str, set[str]] = {}
    for f in findings:
        if f["kind"] == "excursion":
            equipment = str((f.get("params") or {}).get("equipment", "?"))
            per_equipment.setdefault(equipment, set()).add(f["unit"])
    acknowledged = session.exec(
        select(ExcursionAck)
        .join(Equipment, col(Equipment.id) == col(ExcursionAck.equipment_id))
        .where(
            Equipment.site_id == site.id,
            col(ExcursionAck.ledger_seq) <= head_seq,
            col(ExcursionAck.started_at) >= start,
            col(ExcursionAck.started_at) < end,
        )
        .order_by(col(ExcursionAck.started_at), col(ExcursionAck.id))
    ).all()
    return {
        "findings_by_equipment": [
            {"equipment": e, "units": len(units)} for e, units in sorted(per_equipment.items())
        ],
        "acknowledgements": [
            {
                "id": a.id,
                "equipment": a.equipment_id,
                "started_at": a.started_at.isoformat(),
                "ended_at": a.ended_at.isoformat(),
                "warmest_c": a.warmest_c,
                "units": json.loads(a.units),
                "comment": a.comment,
                "by": a.printed_name,
                "role": a.by_role,
                "at": a.at.isoformat(),
            }
            for a in acknowledged
        ],
    }


REGIONAL_CSV_COLUMNS = (
    "site",
    "audit_run",
    "unit",
    "rule",
    "code",
    "kind",
    "severity",
    "steps",
    "record_ids",
    "message",
)


def regional_csv(data: dict[str, Any]) -> bytes:
    """One line per finding of every site's audit run (identifiers already masked)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGIONAL_CSV_COLUMNS)
    for site_id, audit in sorted(data["audits"].items()):
        for f in audit["findings"]:
            writer.writerow(
                [
                    site_id,
                    audit["run"],
                    f["unit"],
                    f["rule"],
                    f["code"],
                    f["kind"],
                    f["severity"],
                    " ".join(f["steps"]),
                    " ".join(f["record_ids"]),
                    f["message"],
                ]
            )
    return out.getvalue().encode("utf-8")
