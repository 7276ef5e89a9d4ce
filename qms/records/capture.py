"""Capture in the browser: register a unit, record a step (signed, witnessed), correct a record,
scan a label and check a step live. Routes of the records blueprint; the services decide."""

from __future__ import annotations

import json
import re
from datetime import datetime

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlmodel import Session, col, select

from qms.accounts import service as accounts
from qms.accounts.access import is_member
from qms.accounts.models import Site, User, UserSite, Ward
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.checklists import engine
from qms.checklists.facts import StepFacts
from qms.core.errors import FindingsNeedReason, Invalid, QmsError
from qms.core.i18n import _, checklist_text_key
from qms.db import utcnow
from qms.identifiers import identify
from qms.records import stepforms
from qms.records.corrections import correct_step
from qms.records.display import due_text
from qms.records.fields import field_label, parse_field_values, said, step_title
from qms.records.guards import equipment_check
from qms.records.loading import load_readings, load_units_by_id, unit_facts
from qms.records.models import StepRecord, Unit
from qms.records.queries import live_check
from qms.records.service import log_step, register_unit
from qms.records.signatures import WitnessCredential
from qms.records.wards import WARD_ATTRIBUTE, ward_view
from qms.storage.models import Equipment
from qms.web import signing
from qms.web.database import db_session, reads_only
from qms.web.layout import finding_text
from qms.web.registry import get_registry


def visible_unit(s: Session, unit_id: str) -> Unit:
    """The unit, if the user belongs to its site and, for ward staff, it is on one of their
    wards (or on none yet). Another site's or another ward's unit answers exactly like a
    missing one (404, without naming its site or ward): ids cannot be enumerated."""
    unit = s.get(Unit, unit_id)
    if not sees_unit(s, unit):
        abort(404, description=_("There is no unit %(unit)s.", unit=unit_id))
    return unit


def sees_unit(s: Session, unit: Unit | None) -> bool:
    """Whether the user sees this unit: of one of their sites and, for ward staff, on one of
    their wards or on none."""
    return (
        unit is not None
        and is_member(s, current_user.row, unit.site_id)
        and ward_view(s, current_user.row, unit.site_id).sees(unit)
    )


def site_choices(s: Session, site_id: str) -> tuple[list, list]:
    """Equipment in use and people of the site, as (value, label) pairs, in two queries."""
    equipment = [
        (e.id, f"{e.id} — {e.description}" if e.description else e.id)
        for e in s.exec(
            select(Equipment)
            .where(Equipment.site_id == site_id, col(Equipment.active))
            .order_by(col(Equipment.id))
        )
    ]
    people = [
        (u.username, f"{u.full_name} ({u.username})")
        for u in s.exec(
            select(User)
            .join(UserSite, col(UserSite.user_id) == col(User.id))
            .where(UserSite.site_id == site_id, col(User.active))
            .order_by(col(User.username))
        )
    ]
    return equipment, people


def forms_for(
    s: Session, unit: Unit, checklist, judgement, steps, *, values=None, failed=None, now=None
):
    """The forms of the steps this user may record now, the failed one refilled."""
    now = now or utcnow()
    site = s.get(Site, unit.site_id)
    if judgement is None or judgement.status != "in_progress":
        return []
    if Permission.LOG_STEPS not in accounts.permissions_of(current_user.role):
        return []
    equipment, people = site_choices(s, unit.site_id)
    due_of = {}
    for item in judgement.due:
        due_of.setdefault(item.step, item)
    allowed = stepforms.steps_allowed_now(checklist, judgement.due, steps, current_user.role)
    if failed and failed not in allowed and failed in checklist.steps:
        allowed.append(failed)
    return [
        stepforms.build_form(
            checklist,
            step,
            lang=checklist_text_key(),
            profile=unit.profile,
            zone=site.timezone,
            now=now,
            equipment=equipment,
            people=people,
            values=values if step == failed else None,
            due=due_of.get(step),
        )
        for step in allowed
    ]


def _witness(step_def, form) -> WitnessCredential | None:
    username = (form.get("witness_username") or "").strip()
    if not step_def.witness_required and not username:
        return None
    return WitnessCredential(username, form.get("witness_password") or "")


def refuse_foreign_labels(unit: Unit, checklist, step: str, values: dict, now: datetime) -> None:
    """Refuse before storing a scanned label that is not this unit's: another chain-of-identity
    id, an expired pack. (A bad check character is refused by the field's parser.)"""
    step_def = checklist.steps[step]
    problems = []
    for name, fdef in step_def.fields.items():
        text = values.get(name)
        if fdef.type != "identifier" or not isinstance(text, str):
            continue
        label = field_label(step_def, name)
        result = identify(text)
        if result.kind == "isbt128_coi" and unit.coi_id and result.valid:
            if result.normalised != unit.coi_id:
                problems.append(
                    _(
                        "%(label)s: the label scanned is chain-of-identity id %(scanned)s, "
                        "but this unit is %(coi)s: it belongs to another patient's product",
                        label=label,
                        scanned=result.normalised,
                        coi=unit.coi_id,
                    )
                )
        if result.kind == "gs1" and result.valid and result.parts.get("expiry"):
            if result.parts["expiry"] < now.date().isoformat():
                problems.append(
                    _(
                        "%(label)s: the pack scanned (lot %(lot)s) expired on %(expiry)s",
                        label=label,
                        lot=result.parts.get("lot") or "—",
                        expiry=result.parts["expiry"],
                    )
                )
    if problems:
        raise Invalid(
            _(
                "%(title)s: %(problems)s. Nothing was recorded.",
                title=step_title(step_def),
                problems=_("; ").join(problems),
            )
        )


def register(bp, render_unit_page) -> None:
    """Add the capture routes to the records blueprint (`render_unit_page` shows a refusal)."""

    @bp.route("/units/<unit_id>/steps/<step>", methods=["POST"])
    @permission_required(Permission.LOG_STEPS)
    def record_step(unit_id: str, step: str):
        s = db_session()
        unit = visible_unit(s, unit_id)
        registry = get_registry()
        checklist = registry.get(unit.checklist_id, unit.checklist_version)
        if step not in checklist.steps:
            abort(404, description=_("This checklist has no such step."))
        step_def = checklist.steps[step]
        site = s.get(Site, unit.site_id)
        user = s.get(User, current_user.id)
        settings = current_app.extensions["qms_settings"]
        form = request.form
        now = utcnow()
        password = form.get("password") or ""
        try:
            values = stepforms.field_values(checklist, step, form, site.timezone)
            performed_at = stepforms.parse_local_time(
                form.get("performed_at"), site.timezone, _("Performed at")
            )
            refuse_foreign_labels(unit, checklist, step, values, now)
            witness = _witness(step_def, form)
            logged = log_step(
                session=s,
                registry=registry,
                unit_id=unit.id,
                step=step,
                performed_at=performed_at,
                fields=values,
                by=user,
                credential=signing.credential(user.id, password),
                freshness_minutes=settings.signature_freshness_minutes,
                witness=witness,
                reason=form.get("reason"),
                now=now,
                lockout=accounts.Lockout.of(settings),
            )
        except Invalid as exc:
            signing.refuse(s, exc)
            refill = {k: v for k, v in form.items() if "password" not in k}
            return render_unit_page(
                unit.id,
                failed=step,
                values=refill,
                error=str(exc),
                needs_reason=isinstance(exc, FindingsNeedReason),
                status=422 if isinstance(exc, FindingsNeedReason) else 400,
            )
        s.commit()
        signing.signed(password, now)
        flash(
            _(
                "%(title)s recorded as %(record)s.",
                title=step_title(step_def),
                record=logged.record.id,
            ),
            "success",
        )
        return redirect(url_for("records.unit_page", unit_id=unit.id) + "#timeline")

    @bp.route("/units/<unit_id>/steps/<step>/check", methods=["POST"])
    @permission_required(Permission.LOG_STEPS)
    @reads_only
    def check_step(unit_id: str, step: str):
        """What the engine will say of this step as filled in so far (the live check).

        One load of the unit (its records, their people) serves the check and the due
        items; the readings of the devices they and the new record name are read only
        when the new record can change a storage finding (`engine.storage_can_change`)."""
        s = db_session()
        # The unit with its records first: `visible_unit` then finds it loaded.
        loaded = load_units_by_id(s, [unit_id], readings=False)
        unit = visible_unit(s, unit_id)
        checklist = get_registry().get(unit.checklist_id, unit.checklist_version)
        if step not in checklist.steps:
            abort(404, description=_("This checklist has no such step."))
        step_def = checklist.steps[step]
        site = s.get(Site, unit.site_id)
        now = utcnow()
        form = request.form
        errors: list[str] = []
        findings: list[str] = []
        try:
            typed = stepforms.field_values(checklist, step, form, site.timezone, partial=True)
            # Only what is typed so far: a field not filled in yet is not a finding.
            values = parse_field_values(
                step_def, typed, equipment_exists=equipment_check(s, unit.site_id, in_use=True)
            )
            refuse_foreign_labels(unit, checklist, step, values, now)
            performed_at = stepforms.parse_local_time(
                form.get("performed_at") or now.isoformat(), site.timezone, _("Performed at")
            )
            new = StepFacts(
                unit=unit.id,
                step=step,
                at=performed_at,
                by=current_user.username,
                witness=(form.get("witness_username") or "").strip() or None,
                fields=values,
                by_role=current_user.role,
                witness_role=None,
                recorded_at=now,
            )
            # The readings only when the new record can change a storage finding.
            recorded = loaded.units[0].case.steps
            prior = engine.effective_records(recorded)
            readings = None
            if engine.storage_can_change(prior, new):
                readings = engine.ReadingIndex(load_readings(s, [*recorded, new]))
            for finding in live_check(checklist, unit_facts(unit), prior, new, readings):
                if finding.kind in ("witness", "role") or _untyped(finding, step, typed):
                    continue  # decided by who signs, or by fields not filled in yet
                findings.append(finding_text(finding, checklist))
        except QmsError as exc:
            errors.append(str(exc))
        # What is due next (the storage rules' findings, which need readings, are not shown).
        judged = loaded.judge(get_registry(), now=now)[unit.id]
        due = [
            due_text(d, checklist, site.timezone)
            for d in (judged.due if judged else [])
            if d.by is not None
        ]
        return jsonify({"errors": errors, "findings": findings, "due": due})

    @bp.route("/units/<unit_id>/scan", methods=["POST"])
    @permission_required(Permission.LOG_STEPS)
    @reads_only
    def scan_label(unit_id: str):
        """A scanned label read for a field: what it is, what it fills, why it is refused."""
        s = db_session()
        unit = visible_unit(s, unit_id)
        code = request.form.get("code") or ""
        result = identify(code)
        problems = [said(p) for p in result.problems]
        if result.kind == "isbt128_coi" and result.valid and unit.coi_id:
            if result.normalised != unit.coi_id:
                problems.append(
                    _(
                        "chain-of-identity id %(scanned)s is not this unit's (%(coi)s): "
                        "this is another patient's product",
                        scanned=result.normalised,
                        coi=unit.coi_id,
                    )
                )
        expiry = result.parts.get("expiry") if result.kind == "gs1" else None
        if expiry and expiry < utcnow().date().isoformat():
            problems.append(_("the pack expired on %(expiry)s", expiry=expiry))
        parts = result.parts
        fills = {
            "coi_id": result.normalised if result.kind == "isbt128_coi" else None,
            "din": result.normalised if result.kind == "isbt128_din" else None,
            "gtin": parts.get("gtin"),
            "lot": parts.get("lot"),
            "expiry": parts.get("expiry"),
        }
        return jsonify(
            {
                "valid": not problems,
                "kind": result.kind,
                "normalised": result.normalised,
                "problems": problems,
                "fills": {k: v for k, v in fills.items() if v},
            }
        )

    @bp.route("/records/<path:record_id>/correct", methods=["POST"])
    @permission_required(Permission.LOG_STEPS)
    def correct_record(record_id: str):
        s = db_session()
        record = s.get(StepRecord, record_id)
        unit = s.get(Unit, record.unit_id) if record is not None else None
        if not sees_unit(s, unit):  # a record of another site's or ward's unit: as missing
            abort(404, description=_("There is no record %(record)s.", record=record_id))
        checklist = get_registry().get(unit.checklist_id, unit.checklist_version)
        site = s.get(Site, unit.site_id)
        user = s.get(User, current_user.id)
        settings = current_app.extensions["qms_settings"]
        form = request.form
        now = utcnow()
        password = form.get("password") or ""
        back = redirect(url_for("records.unit_page", unit_id=unit.id) + "#timeline")
        try:
            step_def = checklist.steps[record.step]
            old = json.loads(record.fields)
            changed = {}
            for name in step_def.fields:
                text = (form.get(stepforms.PREFIX + name) or "").strip()
                if text and str(old.get(name)) != text:
                    changed[name] = text
            performed_at = None
            if (form.get("performed_at") or "").strip():
                performed_at = stepforms.parse_local_time(
                    form.get("performed_at"), site.timezone, _("Performed at")
                )
            correct_step(
                session=s,
                registry=get_registry(),
                record_id=record.id,
                by=user,
                credential=signing.credential(user.id, password),
                freshness_minutes=settings.signature_freshness_minutes,
                reason=form.get("reason") or "",
                fields=changed or None,
                performed_at=performed_at,
                now=now,
                lockout=accounts.Lockout.of(settings),
            )
        except Invalid as exc:
            signing.refuse(s, exc)
            flash(str(exc), "error")
            return back
        s.commit()
        signing.signed(password, now)
        flash(_("Correction of %(record)s recorded.", record=record.id), "success")
        return back

    @bp.route("/units/new", methods=["GET", "POST"])
    @permission_required(Permission.LOG_STEPS)
    def new_unit():
        s = db_session()
        site_id = session.get("site_id")
        if site_id is None or not is_member(s, current_user.row, site_id):
            abort(403, description=_("Choose a site you belong to first."))
        registry = get_registry()
        checklists = [registry.get(cid) for cid in sorted({c.id for c in registry})]
        profiles = sorted(registry.profiles)
        wards = s.exec(select(Ward).where(Ward.site_id == site_id).order_by(col(Ward.code))).all()
        form = request.form if request.method == "POST" else {}
        error = None
        if request.method == "POST":
            try:
                coi_text = (form.get("coi_id") or "").strip()
                coi = None
                if coi_text:
                    result = identify(coi_text)
                    if result.kind != "isbt128_coi" or not result.valid:
                        raise Invalid(
                            _(
                                "Chain-of-identity id: %(code)s is not a valid ISBT 128 "
                                "chain-of-identity id (%(problems)s).",
                                code=coi_text,
                                problems=_("; ").join(said(p) for p in result.problems)
                                or said(result.kind_name),
                            )
                        )
                    coi = result.normalised
                attributes = {}
                age = (form.get("age_years") or "").strip()
                if age:
                    if not re.fullmatch(r"\d{1,3}", age):
                        raise Invalid(_("Age must be a whole number of years."))
                    attributes["age_years"] = int(age)
                if (form.get("diagnosis") or "").strip():
                    attributes["diagnosis"] = form.get("diagnosis").strip()
                ward = (form.get("ward") or "").strip()
                if ward:
                    if ward not in {w.code for w in wards}:
                        raise Invalid(_("Ward: %(ward)s is not a ward of this site.", ward=ward))
                    if not ward_view(s, current_user.row, site_id).sees_ward(ward):
                        raise Invalid(_("Ward: you are not on ward %(ward)s.", ward=ward))
                    attributes[WARD_ATTRIBUTE] = ward
                unit = register_unit(
                    session=s,
                    registry=registry,
                    by=s.get(User, current_user.id),
                    unit_id=(form.get("unit_id") or "").strip(),
                    checklist_id=form.get("checklist") or "",
                    site_id=site_id,
                    patient_ref=(form.get("patient_ref") or "").strip(),
                    coi_id=coi,
                    profile=form.get("profile") or None,
                    attributes=attributes,
                )
            except (Invalid, KeyError) as exc:
                s.rollback()
                error = str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)
            else:
                s.commit()
                flash(_("Unit %(unit)s registered.", unit=unit.id), "success")
                return redirect(url_for("records.unit_page", unit_id=unit.id))
        return (
            render_template(
                "records/new_unit.html",
                checklists=checklists,
                profiles=profiles,
                wards=wards,
                form=form,
                error=error,
                lang=checklist_text_key(),
            ),
            400 if error else 200,
        )


def _untyped(finding, step: str, typed: dict) -> bool:
    """Whether a live-check finding is only about a field of this step not typed yet."""
    field = finding.params.get("field") if isinstance(finding.params, dict) else None
    if finding.code.startswith("record.") and finding.params.get("problems"):
        return all(
            p.get("field", "").partition(".")[2] not in typed for p in finding.params["problems"]
        )
    if isinstance(field, str) and field.startswith(step + "."):
        return field.partition(".")[2] not in typed
    return False
