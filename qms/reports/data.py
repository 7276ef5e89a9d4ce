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
            doc = json.loads(fields)
            values.update(str(doc[k]) for k in IDENTITY_FIELDS if doc.get(k))
    return {v for v in values if len(v) > 4}


def scrub(value: Any, secrets: set[str]) -> Any:
    """`value` with every secret in any string masked to its last four characters."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, mask(secret))
        return value
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    return value


def site_monthly_data(session: Session, site_id: str, period: str, run_id: str) -> dict[str, Any]:
    """A site's month from one audit run (its findings, units, head) and the ledger up to
    the head the run covers; identifiers masked (the report leaves the hospital)."""
    from qms.core.i18n import _ as translate
    from qms.quality.audits import AuditScope, units_in_scope, run_json
    from qms.quality.deviations import derive
    from qms.quality.models import AuditRun, Deviation, DeviationEvent
    from qms.records.loading import load_units_by_id

    run = session.get(AuditRun, run_id)
    if run is None or run.site_id != site_id:
        raise NotFound(translate("there is no audit run %(run)s", run=run_id))
    site = session.get(Site, site_id)
    covers = json.loads(run.covers)
    head_seq = covers["seq"]
    audit = run_json(run)
    unit_ids = units_in_scope(session, AuditScope.of_run(run), site.timezone, head_seq)
    batch = load_units_by_id(session, unit_ids)
    first, last = month_bounds(period)

    status_at_head: dict[str, str] = {}
    for start in range(0, len(unit_ids), 1000):
        for unit_id, status in session.exec(
            select(UnitStatus.unit_id, UnitStatus.status)
            .where(
                col(UnitStatus.unit_id).in_(unit_ids[start : start + 1000]),
                col(UnitStatus.ledger_seq) <= head_seq,
            )
            .order_by(col(UnitStatus.ledger_seq))
        ):
            status_at_head[unit_id] = status
    by_product_status: dict[tuple[str, str], int] = {}
    doses: dict[str, int] = {}
    units_of: dict[str, int] = {}
    for loaded in batch.units:
        unit = loaded.row
        status = status_at_head.get(unit.id, "in_progress")
        key = (unit.checklist_id, status)
        by_product_status[key] = by_product_status.get(key, 0) + 1
        units_of[unit.checklist_id] = units_of.get(unit.checklist_id, 0) + 1
        records = [r for r in loaded.records if r.ledger_seq <= head_seq]
        if any(r.step == ADMINISTERED_STEP and r.corrects_id is None for r in records):
            doses[unit.checklist_id] = doses.get(unit.checklist_id, 0) + 1
    with_findings: dict[str, set[str]] = {}
    checklist_of = {u.row.id: u.row.checklist_id for u in batch.units}
    rules: dict[tuple[str, str], int] = {}
    for f in audit["findings"]:
        product = checklist_of.get(f["unit"], f["rule"].split(".", 1)[0])
        with_findings.setdefault(product, set()).add(f["unit"])
        rules[(f["rule"], f["severity"])] = rules.get((f["rule"], f["severity"]), 0) + 1

    deviations = []
    opened = session.exec(
        select(Deviation)
        .where(Deviation.site_id == site_id, col(Deviation.ledger_seq) <= head_seq)
        .order_by(col(Deviation.ledger_seq))
    ).all()
    events: dict[str, list] = {d.id: [] for d in opened}
    if opened:
        for event in session.exec(
            select(DeviationEvent)
            .where(
                col(DeviationEvent.deviation_id).in_(list(events)),
                col(DeviationEvent.ledger_seq) <= head_seq,
            )
            .order_by(col(DeviationEvent.ledger_seq))
        ):
            events[event.deviation_id].append(event)
    zone = zone_of_site(site)
    for deviation in opened:
        state = derive(deviation, events[deviation.id], set())
        opened_day = deviation.opened_at.astimezone(zone).date()
        closed_day = state.closed_at.astimezone(zone).date() if state.closed_at else None
        in_period = first <= opened_day <= last or (closed_day and first <= closed_day <= last)
        if not in_period:
            continue
        deviations.append(
            {
                "id": deviation.id,
                "classification": state.classification,
                "status": state.status,
                "rule": deviation.rule,
                "units": json.loads(deviation.units),
                "opened_at": deviation.opened_at.isoformat(),
                "closed_at": state.closed_at.isoformat() if state.closed_at else None,
                "due_at": state.due_at.isoformat() if state.due_at else None,
            }
        )

    content = {
        "format": DATA_FORMAT,
        "report_type": "site-monthly",
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "scope": site_id,
        "period": {"month": period, "from": first.isoformat(), "to": last.isoformat()},
        "audit_run": {
            "id": run.id,
            "at": run.at.isoformat(),
            "kind": run.kind,
            "checklists": json.loads(run.checklists),
            "parameters": json.loads(run.parameters),
            "covers": covers,
        },
        "units_by_product": [
            {"checklist": c, "status": s, "units": n}
            for (c, s), n in sorted(by_product_status.items())
        ],
        "doses_administered": [{"checklist": c, "doses": n} for c, n in sorted(doses.items())],
        "compliance": [
            {
                "checklist": c,
                "units": n,
                "units_with_findings": len(with_findings.get(c, ())),
                "compliant_percent": round(100 * (n - len(with_findings.get(c, ()))) / n, 1),
            }
            for c, n in sorted(units_of.items())
        ],
        "rules": [{"rule": r, "severity": s, "findings": n} for (r, s), n in sorted(rules.items())],
        "findings_by_severity": audit["counts"]["by_severity"],
        "audit": audit,
        "deviations": deviations,
    }
    return scrub(content, sensitive_values(session, unit_ids, head_seq))


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
