"""The schedules page (quality officers and administrators): schedules, periods, alerts."""

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
from qms.core.errors import Invalid
from qms.core.i18n import LANGUAGE_NAMES, _l
from qms.db import utcnow
from qms.reports.models import REPORT_TYPE_LABELS
from qms.scheduling import alerts, service
from qms.scheduling.models import RELEASE_LABELS
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


class ScheduleForm(FlaskForm):
    report_type = SelectField(
        _l("Report"),
        choices=[SelectChoice(t, REPORT_TYPE_LABELS[t]) for t in service.REPORT_CADENCES],
    )
    site_id = SelectField(_l("Site"), validators=[DataRequired()])
    cadence = SelectField(
        _l("Cadence"), choices=[SelectChoice(k, v) for k, v in CADENCE_LABELS.items()]
    )
    day = IntegerField(_l("Day of the month"), default=1, validators=[NumberRange(1, 31)])
    at = StringField(_l("Time (site's zone)"), default="08:00", validators=[DataRequired()])
    language = SelectField(
        _l("Language"), choices=[SelectChoice(k, v) for k, v in LANGUAGE_NAMES.items()]
    )
    recipients = StringField(_l("Email addresses (comma separated)"), validators=[Optional()])
    regulators = StringField(_l("Regulator usernames (comma separated)"), validators=[Optional()])
    first_period = StringField(_l("First period (e.g. 2026-10)"), validators=[Optional()])
    auto_release = BooleanField(_l("Release without approval (needs a configured signing key)"))


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@bp.route("/schedules", methods=["GET", "POST"])
@permission_required(VIEW_PERMISSION)
def schedules():
    s = db_session()
    user = current_user.row
    sites = sorted(member_site_ids(s, user.id))
    form = ScheduleForm()
    form.site_id.choices = [SelectChoice(site, site) for site in sites]
    error = None
    if request.method == "POST" and form.validate_on_submit():
        spec = service.ScheduleSpec(
            report_type=form.report_type.data,
            site_id=form.site_id.data,
            day=form.day.data,
            at=form.at.data.strip(),
            cadence=form.cadence.data,
            language=form.language.data,
            recipients=_split(form.recipients.data),
            regulators=_split(form.regulators.data),
            auto_release=form.auto_release.data,
            first_period=(form.first_period.data or "").strip() or None,
        )
        try:
            service.add_schedule(session=s, actor=user, spec=spec, now=utcnow())
            s.commit()
            return redirect(url_for("scheduling.schedules"))
        except Invalid as exc:
            s.rollback()
            error = str(exc)
    rows = service.list_schedules(session=s, actor=user)
    runs = service.runs_of(session=s, schedule_ids=[r.schedule_id for r in rows])
    made = _reports_by_key(s)
    periods = {}
    for run in runs:
        schedule = next(r for r in rows if r.schedule_id == run.schedule_id)
        from qms.scheduling.runner import report_key_of

        periods.setdefault(run.schedule_id, []).append(
            (run, made.get(report_key_of(schedule, run)))
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
            "periods": periods.get(row.schedule_id, []),
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
    return render_template(
        "scheduling/schedules.html",
        schedules=shown,
        alerts=recent,
        deliveries=deliveries,
        delivery_status=DELIVERY_STATUS,
        outcomes=ATTEMPT_OUTCOMES,
        channels=CHANNELS,
        form=form,
        error=error,
    ), (400 if error else 200)


def _reports_by_key(s) -> dict:
    try:
        from qms.reports.models import ReportVersion
    except ImportError:  # pragma: no cover - reports are part of the installation
        return {}
    found: dict = {}
    for row in s.exec(select(ReportVersion).order_by(ReportVersion.version)).all():
        found[row.report_key] = row
    return found
