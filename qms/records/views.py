"""The units list and the unit page (its timeline, findings, due steps and forms); the status change."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlmodel import col, select

from qms.accounts import service as accounts
from qms.accounts.access import is_member, ward_scope
from qms.accounts.models import Site, User, Ward
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.checklists.engine.messages import _in_language
from qms.checklists.judging import counted_record_ids
from qms.core.errors import Invalid
from qms.core.i18n import _, checklist_text_key, format_datetime
from qms.core.models import LedgerEntry
from qms.db import utcnow
from qms.records import capture, loading
from qms.records.display import due_text
from qms.records.fields import step_title
from qms.records.forms import UnitStatusForm
from qms.records.loading import UnitFilter
from qms.records.models import UnitStatus
from qms.records.queries import signatures_of
from qms.records.status import STATUS_LABELS, set_unit_status
from qms.web import signing
from qms.web.database import db_session
from qms.web.registry import get_registry

bp = Blueprint("records", __name__)
bp.add_app_template_global(due_text, "due_text")


@bp.route("/units")
@permission_required(Permission.VIEW_RECORDS)
def units():
    """The units of the site the user is working at, a page at a time, open units first,
    with what the rules say of each now."""
    s = db_session()
    site_id = session.get("site_id")
    if site_id is None or not is_member(s, current_user.row, site_id):
        abort(403, description=_("Choose a site you belong to first."))
    site = s.get(Site, site_id)
    page = _page_number(request.args.get("page"))
    chosen = UnitFilter(
        status=request.args.get("status") or None,
        checklist=request.args.get("product") or None,
        ward=request.args.get("ward") or None,
        wards=ward_scope(s, current_user.row, site_id),
    )
    if chosen.status is not None and chosen.status not in STATUS_LABELS:
        abort(
            400,
            description=_(
                "There is no status %(status)s: choose one of %(statuses)s.",
                status=repr(chosen.status),
                statuses=", ".join(str(label) for label in STATUS_LABELS.values()),
            ),
        )
    batch = loading.load_units(s, site_id=site_id, filter=chosen, page=page)
    judged = batch.judge(get_registry(), now=utcnow())
    rows = [
        {
            "unit": loaded.row,
            "ward": loaded.ward,
            "last": loaded.records[-1] if loaded.records else None,
            "status": STATUS_LABELS[loaded.status],
            "judgement": judged[loaded.row.id],
            "checklist": get_registry().get(loaded.row.checklist_id, loaded.row.checklist_version)
            if judged[loaded.row.id] is not None
            else None,
        }
        for loaded in batch.units
    ]
    wards = s.exec(select(Ward).where(Ward.site_id == site_id).order_by(col(Ward.code))).all()
    filters = {
        "status": chosen.status or "",
        "product": chosen.checklist or "",
        "ward": chosen.ward or "",
    }
    return render_template(
        "records/units.html",
        site=site,
        rows=rows,
        batch=batch,
        filters=filters,
        statuses=STATUS_LABELS,
        products=loading.site_checklists(s, site_id),
        wards=wards,
        page_url=lambda n: url_for(
            "records.units", page=n, **{k: v for k, v in filters.items() if v}
        ),
        at=lambda moment: format_datetime(moment, zone=site.timezone),
        step_name=_step_name,
    )


def _step_name(checklist, step: str) -> str:
    """A step as the list names it: its checklist title in the reader's language, never its
    id (the id only when the unit's checklist version is not installed)."""
    if checklist is None or step not in checklist.steps:
        return step
    return step_title(checklist.steps[step])


def _page_number(text: str | None) -> int:
    if text is None or text == "":
        return 1
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        abort(
            400,
            description=_(
                "Page %(page)s is not a page number: pages count from 1.", page=repr(text)
            ),
        )
    return int(text)


@bp.route("/units/<unit_id>")
@permission_required(Permission.VIEW_RECORDS)
def unit_page(unit_id: str):
    return render_unit_page(unit_id)


def render_unit_page(
    unit_id: str,
    *,
    failed: str | None = None,
    values=None,
    error: str | None = None,
    needs_reason: bool = False,
    status: int = 200,
):
    """The unit page: its timeline, what the rules say, and the forms for what may be
    recorded now (the one that failed refilled, with its message)."""
    s = db_session()
    unit = capture.visible_unit(s, unit_id)
    site = s.get(Site, unit.site_id)
    loaded = loading.load_units_by_id(s, [unit.id])
    (this,) = loaded.units
    history = this.records
    judgement = loaded.judge(get_registry(), now=utcnow())[unit.id]
    if judgement is None:
        abort(
            409,
            description=_(
                "Unit %(unit)s was registered against checklist %(checklist)s version "
                "%(version)s, which is not installed on this server.",
                unit=unit.id,
                checklist=unit.checklist_id,
                version=unit.checklist_version,
            ),
        )
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
    effective = counted_record_ids(this.case.steps)
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
    status_history = list(
        s.exec(
            select(UnitStatus)
            .where(UnitStatus.unit_id == unit.id)
            .order_by(col(UnitStatus.ledger_seq))
        )
    )
    people.update(
        {
            u.id: u
            for u in s.exec(
                select(User).where(col(User.id).in_({h.by_id for h in status_history} - {None}))
            )
        }
    )
    checklist = get_registry().get(unit.checklist_id, unit.checklist_version)
    forms = capture.forms_for(
        s, unit, checklist, judgement, this.case.steps, values=values, failed=failed
    )
    correctable = Permission.LOG_STEPS in accounts.permissions_of(current_user.role)
    page = render_template(
        "records/unit.html",
        unit=unit,
        checklist=checklist,
        forms=forms,
        failed=failed,
        error=error,
        needs_reason=needs_reason,
        correctable=correctable,
        field_labels=_field_labels(checklist),
        step_titles={
            sid: _in_language(d.title, checklist_text_key()) for sid, d in checklist.steps.items()
        },
        site=site,
        rows=rows,
        people=people,
        attributes=json.loads(unit.attributes),
        attribute_labels={
            "ward": _("Ward"),
            "diagnosis": _("Diagnosis"),
            "age_years": _("Patient age (years)"),
        },
        entry=entry,
        findings=judgement.worst_first(),
        due=judgement.due,
        status=STATUS_LABELS[judgement.status],
        status_history=status_history,
        status_form=_status_form(judgement.status),
        freshness=current_app.extensions["qms_settings"].signature_freshness_minutes,
        at=lambda moment: format_datetime(moment, zone=site.timezone, seconds=True),
    )
    return page, status


def _field_labels(checklist) -> dict[str, dict[str, str]]:
    """Each step's field labels in the reader's language, by field name."""
    lang = checklist_text_key()
    return {
        sid: {
            name: _in_language(f.label, lang) if f.label else name.replace("_", " ")
            for name, f in step.fields.items()
        }
        for sid, step in checklist.steps.items()
    }


def _status_form(current: str) -> UnitStatusForm | None:
    """The statuses this user may move the unit to from `current`, or None."""
    granted = accounts.permissions_of(current_user.role)
    if Permission.LOG_STEPS not in granted and Permission.AUDIT not in granted:
        return None
    form = UnitStatusForm()
    form.status.choices = [c for c in form.status.choices if c.value != current]
    return form


@bp.route("/units/<unit_id>/status", methods=["POST"])
@permission_required(Permission.VIEW_RECORDS)
def unit_status(unit_id: str):
    """Declare a unit complete or cancelled, or reopen it: a signed record."""
    s = db_session()
    capture.visible_unit(s, unit_id)  # another site's or ward's unit: as missing (404)
    form = UnitStatusForm()
    back = redirect(url_for("records.unit_page", unit_id=unit_id))
    if not form.validate_on_submit():
        flash(_("Choose the new status."), "error")
        return back
    user = s.get(User, current_user.id)
    settings = current_app.extensions["qms_settings"]
    now = utcnow()
    credential = signing.credential(user.id, form.password.data)
    try:
        change = set_unit_status(
            session=s,
            registry=get_registry(),
            unit_id=unit_id,
            status=form.status.data,
            by=user,
            credential=credential,
            freshness_minutes=settings.signature_freshness_minutes,
            reason=form.reason.data,
            now=now,
            lockout=accounts.Lockout.of(settings),
        )
    except Invalid as exc:
        signing.refuse(s, exc)
        flash(str(exc), "error")
        return back
    s.commit()
    signing.signed(form.password.data, now)
    flash(
        _(
            "Unit %(unit)s is now %(status)s.",
            unit=unit_id,
            status=STATUS_LABELS[change.record.status],
        ),
        "success",
    )
    return back


capture.register(bp, render_unit_page)
