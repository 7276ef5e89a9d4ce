"""The read-only unit page: its step records with signatures, findings and corrections."""

from __future__ import annotations

import json

from flask import Blueprint, abort, render_template
from flask_login import current_user
from sqlmodel import col, select

from qms.accounts.models import Site, User
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.records import service
from qms.records.clock import local
from qms.records.models import LedgerEntry, Unit
from qms.records.signatures import is_member, signatures_of
from qms.web.database import db_session

bp = Blueprint("records", __name__)


@bp.route("/units/<unit_id>")
@permission_required(Permission.VIEW_RECORDS)
def unit_page(unit_id: str):
    s = db_session()
    unit = s.get(Unit, unit_id)
    if unit is None:
        abort(404, description=f"There is no unit {unit_id}.")
    if not is_member(s, current_user.row, unit.site_id):
        abort(
            403, description=f"Unit {unit_id} belongs to site {unit.site_id}, which is not yours."
        )
    site = s.get(Site, unit.site_id)
    history = service.step_history(s, unit.id)
    people = {
        u.id: u
        for u in s.exec(
            select(User).where(
                col(User.id).in_(
                    {r.performed_by_id for r in history}
                    | {r.witness_id for r in history}
                    | {r.recorded_by_id for r in history}
                    | {unit.registered_by_id}
                )
            )
        )
    }
    signatures = signatures_of(s, [r.id for r in history])
    corrections: dict[str, list] = {}
    for record in history:
        if record.corrects_id:
            corrections.setdefault(record.corrects_id, []).append(record)
    effective = {r.id for r in service.effective_records(history)}
    rows = [
        {
            "record": record,
            "fields": json.loads(record.fields),
            "findings": json.loads(record.findings),
            "signatures": signatures[record.id],
            "corrections": [
                {
                    "record": c,
                    "fields": json.loads(c.fields),
                    "findings": json.loads(c.findings),
                    "signatures": signatures[c.id],
                    "counts": c.id in effective,
                }
                for c in corrections.get(record.id, [])
            ],
            "counts": record.id in effective,
        }
        for record in history
        if record.corrects_id is None
    ]
    entry = s.get(LedgerEntry, unit.ledger_seq)
    return render_template(
        "records/unit.html",
        unit=unit,
        site=site,
        rows=rows,
        people=people,
        attributes=json.loads(unit.attributes),
        entry=entry,
        at=lambda moment: local(moment, site.timezone) if moment else "—",
    )
