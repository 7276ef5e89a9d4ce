"""The schedules page (quality officers and administrators): schedules with their history,
periods, alerts, the delivery log, editing and retiring a schedule, the site settings;
and the panel of alerts and failed deliveries on the home page."""

from __future__ import annotations

import json

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlmodel import select
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, NumberRange, Optional

from qms.accounts.access import member_site_ids
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.core.errors import Invalid, QmsError
from qms.core.i18n import LANGUAGE_NAMES, _, _l
from qms.db import utcnow
from qms.reports.models import REPORT_TYPE_LABELS
from qms.scheduling import alerts, service
from qms.scheduling import settings as site_settings
from qms.scheduling.models import RELEASE_LABELS, RETIRED
from qms.web.database import db_session

bp = Blueprint("scheduling", __name__)

# Quality officers and administrators both hold it (the service asks for either flag).
VIEW_PERMISSION = Permission.MANAGE_CHECKLISTS

CADENCE_LABELS = {
    "monthly": _l("monthly"),
    "quarterly": _l("quarterly"),
    "yearly": _l("yearly"),
}


DELIVERY_STATUS = {
    "delivered": _l("delivered"),
    "failed": _l("not delivered"),
    "waiting": _l("waiting for the next attempt"),
}
ATTEMPT_OUTCOMES = {
    "accepted": _l("accepted"),
    "temporary": _l("refused for now"),
    "permanent": _l("refused"),
}
CHANNELS = {"email": _l("email"), "portal": _l("portal")}
CHANGE_LABELS = {"edited": _l("edited"), "retired": _l("retired")}
STATUS_LABELS = {"active": _l("active"), "retired": _l("retired")}


class ScheduleForm(FlaskForm):
    report_type = SelectField(
        _l("Report"),
        choices=[SelectChoice(t, REPORT_TYPE_LABELS[t]) for t in service.REPORT_CADENCES],
    )
    site_id = SelectField(_l("Site"), validators=[DataRequired()])
    region_id = SelectField(_l("Region (regional annual report)"), validators=[Optional()])
    cadence = SelectField(
        _l("Cadence"), choices=[SelectChoice(k, v) for k, v in CADENCE_LABELS.items()]
    )
    day = IntegerField(_l("Day of the month"), default=1, validators=[NumberRange(1, 31)])
    at = StringField(_l("Time (site's zone)"), default="08:00", validators=[DataRequired()])
    language = SelectField(
        _l("Language"), choices=[SelectChoice(k, v) for k, v in LANGUAGE_NAMES.items()]
    )
    recipients = StringField(
        _l("Mail to: email addresses or regulator usernames (comma separated)"),
        validators=[Optional()],
    )
    regulators = StringField(_l("Regulator usernames (comma separated)"), validators=[Optional()])
    first_period = StringField(_l("First period (e.g. 2026-10)"), validators=[Optional()])
    auto_release = BooleanField(_l("Release without approval (needs a configured signing key)"))
    schedule_id = StringField(validators=[Optional()])  # set when editing
    reason = StringField(_l("Reason for the change"), validators=[Optional()])


class RetireForm(FlaskForm):
    schedule_id = StringField(validators=[Optional()])
    reason = StringField(_l("Reason for retiring it"), validators=[Optional()])


class SettingsForm(FlaskForm):
    site_id = SelectField(_l("Site"), validators=[DataRequired()])
    quality_address = StringField(
        site_settings.LABELS[site_settings.QUALITY_ADDRESS], validators=[Optional()]
    )
    logger_gap_minutes = StringField(
        site_settings.LABELS[site_settings.LOGGER_GAP_MINUTES], validators=[Optional()]
    )
    reminder_lead_days = StringField(
        site_settings.LABELS[site_settings.REMINDER_LEAD_DAYS], validators=[Optional()]
    )
    reason = StringField(_l("Reason for the change"), validators=[Optional()])


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _spec_from(form: ScheduleForm) -> service.ScheduleSpec:
    return service.ScheduleSpec(
        report_type=form.report_type.data,
        site_id=form.site_id.data,
        day=form.day.data,
        at=(form.at.data or "").strip(),
        cadence=form.cadence.data,
        language=form.language.data,
        recipients=_split(form.recipients.data),
        regulators=_split(form.regulators.data),
        auto_release=form.auto_release.data,
        first_period=(form.first_period.data or "").strip() or None,
        region_id=_region_asked(form),
    )


def _region_asked(form: ScheduleForm) -> str | None:
    # The region matters to a regional report alone (the field stays on the form).
    if form.report_type.data != service.REGIONAL_ANNUAL:
        return None
    return form.region_id.data or None


def _sites() -> list[str]:
    return sorted(member_site_ids(db_session(), current_user.row.id))


def _regions(sites: list[str]) -> list:
    """The regions every site of which is the person's (whose schedules they may keep)."""
    from qms.regions.models import Region, RegionSite

    s = db_session()
    members: dict[str, set[str]] = {}
    for site_id, region_id in s.exec(select(RegionSite.site_id, RegionSite.region_id)).all():
        members.setdefault(region_id, set()).add(site_id)
    return [
        region
        for region in s.exec(select(Region).order_by(Region.id)).all()
        if members.get(region.id) and members[region.id] <= set(sites)
    ]


def _schedule_form(sites: list[str]) -> ScheduleForm:
    form = ScheduleForm()
    form.site_id.choices = [SelectChoice(site, site) for site in sites]
    form.region_id.choices = [SelectChoice("", "—")] + [
        SelectChoice(region.id, f"{region.id} — {region.name}") for region in _regions(sites)
    ]
    return form


def _settings_form(sites: list[str]) -> SettingsForm:
    form = SettingsForm()
    form.site_id.choices = [SelectChoice(site, site) for site in sites]
    return form


def _fill_from(form: ScheduleForm, row) -> None:
    form.report_type.data = row.report_type
    form.site_id.data = row.site_id
    form.cadence.data = row.cadence
    form.day.data = row.day
    form.at.data = row.at_time
    form.language.data = row.language
    form.recipients.data = ", ".join(json.loads(row.recipients))
    form.regulators.data = ", ".join(json.loads(row.regulators))
    form.first_period.data = row.first_period
    form.region_id.data = service.region_of(db_session(), row) or ""
    form.auto_release.data = row.release == "automatic"
    form.schedule_id.data = row.schedule_id


@bp.route("/schedules", methods=["GET", "POST"])
@permission_required(VIEW_PERMISSION)
def schedules():
    s = db_session()
    user = current_user.row
    sites = _sites()
    form = _schedule_form(sites)
    error = None
    if request.method == "POST" and form.validate_on_submit():
        try:
            service.add_schedule(session=s, actor=user, spec=_spec_from(form), now=utcnow())
            s.commit()
            return redirect(url_for("scheduling.schedules"))
        except Invalid as exc:
            s.rollback()
            error = str(exc)
    elif request.method == "POST":
        error = _form_errors(form)
    editing = None
    wanted = request.args.get("edit")
    if request.method == "GET" and wanted:
        try:
            editing = service.current_schedule(session=s, actor=user, schedule_id=wanted)
        except QmsError as exc:
            error = str(exc)
        else:
            if editing.status == RETIRED:
                error = _("schedule %(schedule)s is retired; make a new schedule instead",
                          schedule=editing.schedule_id)  # fmt: skip
                editing = None
            else:
                _fill_from(form, editing)
    return _page(form, error, editing=editing)


@bp.route("/schedules/edit", methods=["POST"])
@permission_required(VIEW_PERMISSION)
def edit_schedule():
    s = db_session()
    user = current_user.row
    form = _schedule_form(_sites())
    schedule_id = (form.schedule_id.data or "").strip()
    if not form.validate_on_submit():
        return _page(form, _form_errors(form), editing=_editing(schedule_id))
    if not schedule_id:
        return _page(form, _("choose the schedule to change"))
    try:
        service.change_schedule(
            session=s,
            actor=user,
            schedule_id=schedule_id,
            spec=_spec_from(form),
            reason=form.reason.data,
            now=utcnow(),
        )
        s.commit()
    except QmsError as exc:
        s.rollback()
        return _page(form, str(exc), editing=_editing(schedule_id))
    return redirect(url_for("scheduling.schedules"))


@bp.route("/schedules/retire", methods=["POST"])
@permission_required(VIEW_PERMISSION)
def retire_schedule():
    s = db_session()
    user = current_user.row
    form = RetireForm()
    schedule_id = (form.schedule_id.data or "").strip()
    if not form.validate_on_submit():
        return _page(_schedule_form(_sites()), _form_errors(form))
    if not schedule_id:
        return _page(_schedule_form(_sites()), _("choose the schedule to retire"))
    try:
        service.retire_schedule(
            session=s, actor=user, schedule_id=schedule_id, reason=form.reason.data, now=utcnow()
        )
        s.commit()
    except QmsError as exc:
        s.rollback()
        return _page(_schedule_form(_sites()), str(exc))
    return redirect(url_for("scheduling.schedules"))


@bp.route("/schedules/settings", methods=["POST"])
@permission_required(Permission.AUDIT)
def site_settings_post():
    s = db_session()
    user = current_user.row
    form = _settings_form(_sites())
    if not form.validate_on_submit():
        return _page(_schedule_form(_sites()), _form_errors(form))
    try:
        changed = 0
        for name, field_ in (
            (site_settings.QUALITY_ADDRESS, form.quality_address),
            (site_settings.LOGGER_GAP_MINUTES, form.logger_gap_minutes),
            (site_settings.REMINDER_LEAD_DAYS, form.reminder_lead_days),
        ):
            if not (field_.data or "").strip():
                continue  # left empty: stays as it is
            changed += 1
            site_settings.set_site_setting(
                session=s,
                actor=user,
                site_id=form.site_id.data,
                name=name,
                value=field_.data,
                reason=form.reason.data or "",
                now=utcnow(),
            )
        if not changed:
            raise Invalid(_("fill in the setting to change"))
        s.commit()
    except QmsError as exc:
        s.rollback()
        return _page(_schedule_form(_sites()), str(exc))
    return redirect(url_for("scheduling.schedules"))


def _editing(schedule_id: str):
    if not schedule_id:
        return None
    try:
        return service.current_schedule(
            session=db_session(), actor=current_user.row, schedule_id=schedule_id
        )
    except QmsError:
        return None


def _form_errors(form) -> str:
    if "csrf_token" in form.errors:
        return _("The form expired; load the page again and resubmit.")
    return "; ".join(
        f"{getattr(form, name).label.text}: {', '.join(map(str, errors))}"
        for name, errors in form.errors.items()
    ) or _("Check the form.")


def _page(form: ScheduleForm, error: str | None, *, editing=None):
    s = db_session()
    user = current_user.row
    sites = _sites()
    rows = service.list_schedules(session=s, actor=user)
    runs = service.runs_of(session=s, schedule_ids=[r.schedule_id for r in rows])
    changes = service.changes_of(s, [r.schedule_id for r in rows])
    from qms.scheduling.models import Schedule

    versions: dict[str, list] = {}
    if rows:
        for version in s.exec(
            select(Schedule)
            .where(Schedule.schedule_id.in_([r.schedule_id for r in rows]))
            .order_by(Schedule.schedule_id, Schedule.version)
        ).all():
            versions.setdefault(version.schedule_id, []).append((version, changes.get(version.id)))
    from qms.scheduling.runner import made_reports, report_of

    made = made_reports(s)
    by_version = {v.id: v for history in versions.values() for v, _c in history}
    regions = service.regions_of(s, by_version)
    periods = {}
    for run in runs:
        schedule = by_version.get(run.schedule_version) or next(
            r for r in rows if r.schedule_id == run.schedule_id
        )
        versions_made = made.get(report_of(schedule, run, regions.get(schedule.id)), [])
        periods.setdefault(run.schedule_id, []).append(
            (run, versions_made[-1] if versions_made else None)
        )
    shown = [
        {
            "row": row,
            "recipients": json.loads(row.recipients),
            "regulators": json.loads(row.regulators),
            "release": RELEASE_LABELS[row.release],
            "report": REPORT_TYPE_LABELS.get(row.report_type, row.report_type),
            "language": LANGUAGE_NAMES.get(row.language, row.language),
            "cadence": CADENCE_LABELS.get(row.cadence, row.cadence),
            "status": STATUS_LABELS.get(row.status, row.status),
            "region": regions.get(row.id),
            "periods": periods.get(row.schedule_id, []),
            "history": versions.get(row.schedule_id, []),
        }
        for row in rows
    ]
    recent = [(a, alerts.alert_text(a)) for a in alerts.recent_alerts(s, set(sites))]
    from qms.delivery.models import Delivery
    from qms.delivery.service import states as delivery_states

    deliveries = delivery_states(
        s,
        list(
            s.exec(
                select(Delivery)
                .where(Delivery.site_id.in_(sites))
                .order_by(Delivery.created_at.desc())
                .limit(100)
            ).all()
        ),
    )
    from qms.accounts.roles import permissions_of

    may_set = Permission.AUDIT in permissions_of(user.role)
    settings_shown = [
        (site, site_settings.site_settings(s, site), site_settings.setting_history(s, site)[:10])
        for site in sites
    ]
    return render_template(
        "scheduling/schedules.html",
        schedules=shown,
        alerts=recent,
        deliveries=deliveries,
        delivery_status=DELIVERY_STATUS,
        outcomes=ATTEMPT_OUTCOMES,
        channels=CHANNELS,
        changes=CHANGE_LABELS,
        form=form,
        editing=editing,
        retire_form=RetireForm(formdata=None),
        settings_form=_settings_form(sites) if may_set else None,
        settings_shown=settings_shown,
        setting_labels=site_settings.LABELS,
        error=error,
    ), (400 if error else 200)


# --- the home page's panel -------------------------------------------------------------


@bp.app_context_processor
def _scheduling_home():
    # A callable: the panel's queries run only on the page that includes it.
    return {"scheduling_home": home_panel_context}


def home_panel_context() -> dict:
    """For templates/scheduling/_home_panel.html: the alerts for this person at their
    sites (reminders naming them, logger gaps for their role; every alert for quality
    officers), and for quality officers the deliveries that failed for good."""
    from qms.delivery.models import Delivery
    from qms.delivery.service import FAILED
    from qms.delivery.service import states as delivery_states

    s = db_session()
    user = current_user.row
    sites = set(member_site_ids(s, user.id))
    shown = [(a, alerts.alert_text(a)) for a in alerts.alerts_for(s, user, sites, limit=10)]
    failed = []
    if user.role == "quality_officer" and sites:
        recent = s.exec(
            select(Delivery)
            .where(Delivery.site_id.in_(sorted(sites)))
            .order_by(Delivery.created_at.desc())
            .limit(200)
        ).all()
        failed = [d for d in delivery_states(s, list(recent)) if d.status == FAILED]
    return {"alerts": shown, "failed": failed, "channels": CHANNELS}
