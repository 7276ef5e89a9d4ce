"""The storage pages: a site's equipment, one device's readings (chart, table, gaps, units inside),
manual readings and data-logger CSV imports."""

from __future__ import annotations

from datetime import datetime, timedelta

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

from qms.accounts.access import is_member
from qms.accounts.models import Site, User
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.accounts.service import Actor, Lockout, permissions_of
from qms.core.errors import Invalid, QmsError
from qms.core.i18n import _, format_datetime
from qms.db import utcnow
from qms.records.stepforms import parse_local_time
from qms.records.wards import WardView, ward_view
from qms.storage import excursions
from qms.storage.chart import readings_chart
from qms.storage.loggers import SHOWN_PROBLEMS, gap_limit, gaps, import_log, parse_log
from qms.storage.models import Equipment, Reading
from qms.storage.service import record_reading
from qms.web import signing
from qms.web.database import db_session
from qms.web.registry import get_registry

bp = Blueprint("storage", __name__)

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def _site():
    s = db_session()
    site_id = session.get("site_id")
    if site_id is None or not is_member(s, current_user.row, site_id):
        abort(403, description=_("Choose a site you belong to first."))
    return s, s.get(Site, site_id)


def _equipment(equipment_id: str) -> tuple[object, Site, Equipment]:
    """The session, the equipment's own site and the equipment, if the user belongs to
    that site (one of several, for a quality officer of a hospital group): as a unit's
    page is its unit's site's, whichever site the user is working at."""
    s = db_session()
    equipment = s.get(Equipment, equipment_id)
    if equipment is None or not is_member(s, current_user.row, equipment.site_id):
        # Another site's equipment is answered like missing equipment.
        abort(404, description=_("There is no equipment %(equipment)s.", equipment=equipment_id))
    return s, s.get(Site, equipment.site_id), equipment


def units_inside(s, site_id: str, view: WardView):
    """Per device, the units in it now that this person sees, how many others are inside (on
    wards they are not on), and the storage limits of every unit's product."""
    inside: dict[str, list] = {}
    hidden: dict[str, int] = {}
    limits: dict[str, tuple] = {}
    for device, device_stays in excursions.stays(s, site_id, get_registry()).items():
        now_in = [x for x in device_stays if x.end is None]
        inside[device], hidden[device] = view.seen_units(x.unit for x in now_in)
        limits[device] = excursions.band(now_in)  # the limits hold for every unit inside
    return inside, hidden, limits


@bp.route("/storage")
@permission_required(Permission.VIEW_RECORDS)
def equipment_list():
    s, site = _site()
    devices = list(
        s.exec(select(Equipment).where(Equipment.site_id == site.id).order_by(col(Equipment.id)))
    )
    latest = {}
    for device in devices:  # one query a device: a site has a handful of them
        latest[device.id] = s.exec(
            select(Reading)
            .where(Reading.equipment_id == device.id)
            .order_by(col(Reading.at).desc())
            .limit(1)
        ).first()
    inside, hidden, limits = units_inside(s, site.id, ward_view(s, current_user.row, site.id))
    return render_template(
        "storage/equipment_list.html",
        site=site,
        devices=devices,
        latest=latest,
        inside=inside,
        hidden=hidden,
        bands={d.id: limits.get(d.id, (None, None)) for d in devices},
        at=lambda moment: format_datetime(moment, zone=site.timezone),
    )


@bp.route("/storage/<equipment_id>")
@permission_required(Permission.VIEW_RECORDS)
def equipment_page(equipment_id: str):
    s, site, equipment = _equipment(equipment_id)
    period = request.args.get("period", "24h")
    if period not in PERIODS:
        abort(400, description=_("Choose a period of 24h, 7d or 30d."))
    now = utcnow()
    since = now - PERIODS[period]
    readings = list(
        s.exec(
            select(Reading)
            .where(Reading.equipment_id == equipment.id, col(Reading.at) >= since)
            .order_by(col(Reading.at))
        )
    )
    device_stays = excursions.stays(s, site.id, get_registry()).get(equipment.id, [])
    now_in = [x for x in device_stays if x.end is None]
    low, high = excursions.band(now_in)
    runs = excursions.find_excursions(readings, device_stays)
    acks = excursions.acknowledgements(s, equipment.id)
    # Every reading outside the limits of the units inside at its time is marked.
    marked = {r.at for r in readings for e, _inside in runs if e.started_at <= r.at <= e.ended_at}
    # Silence up to now counts too: a logger that stopped sending is the gap that matters.
    limit = gap_limit(s, site.id)  # the site's setting (30 minutes unless set)
    silent = gaps([r.at for r in readings] + [now], limit) if readings else []
    chart = readings_chart(
        [(r.at, r.temperature_c, r.at in marked) for r in readings],
        start=since,
        end=now,
        low=low,
        high=high,
        title=_("Readings of %(equipment)s", equipment=equipment.id),
    )
    may_manage = Permission.MANAGE_STORAGE in permissions_of(current_user.role)
    # Ward staff see the units of their wards inside; the others are counted, never named.
    view = ward_view(s, current_user.row, site.id)
    units, hidden = view.seen_units(x.unit for x in now_in)
    shown_runs = []
    for excursion, inside in runs:
        seen, others = view.seen_units(x.unit for x in inside)
        shown_runs.append((excursion, seen, others))
    return render_template(
        "storage/equipment.html",
        site=site,
        equipment=equipment,
        period=period,
        periods=list(PERIODS),
        readings=readings,
        latest=readings[-1] if readings else None,
        runs=shown_runs,
        acks=acks,
        may_acknowledge=Permission.MANAGE_STORAGE in permissions_of(current_user.role)
        or Permission.AUDIT in permissions_of(current_user.role),
        freshness=current_app.extensions["qms_settings"].signature_freshness_minutes,
        gaps=silent,
        gap_minutes=int(limit.total_seconds() // 60),
        units=units,
        hidden=hidden,
        low=low,
        high=high,
        chart=chart,
        may_manage=may_manage,
        now_local=now.astimezone(_zone(site)).strftime("%Y-%m-%dT%H:%M"),
        at=lambda moment: format_datetime(moment, zone=site.timezone),
    )


def _zone(site: Site):
    from qms.core.clock import zone_of

    return zone_of(site.timezone)


@bp.route("/storage/<equipment_id>/readings", methods=["POST"])
@permission_required(Permission.MANAGE_STORAGE)
def add_reading(equipment_id: str):
    s, site, equipment = _equipment(equipment_id)
    back = redirect(url_for("storage.equipment_page", equipment_id=equipment.id))
    try:
        at = parse_local_time(request.form.get("at"), site.timezone, _("Time of the reading"))
        text = (request.form.get("temperature_c") or "").strip().replace("−", "-")
        try:
            temperature = float(text)
        except ValueError:
            raise Invalid(_("%(value)s is not a temperature.", value=repr(text))) from None
        record_reading(
            session=s,
            actor=Actor.of(current_user.row),
            equipment_id=equipment.id,
            at=at,
            temperature_c=temperature,
        )
    except Invalid as exc:
        s.rollback()
        flash(str(exc), "error")
        return back
    s.commit()
    flash(_("Reading recorded."), "success")
    return back


@bp.route("/storage/<equipment_id>/import", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_STORAGE)
def import_readings(equipment_id: str):
    """A logger's CSV: a preview (first lines and every problem), then the import."""
    s, site, equipment = _equipment(equipment_id)
    context = {
        "site": site,
        "equipment": equipment,
        "unit": request.form.get("unit", "C"),
        "zone": request.form.get("zone") or site.timezone,
        "parsed": None,
        "shown": SHOWN_PROBLEMS,
        "at": lambda moment: format_datetime(moment, zone=site.timezone),
    }
    if request.method == "GET":
        return render_template("storage/import.html", **context)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        context["error"] = _("Choose the logger's CSV file.")
        return render_template("storage/import.html", **context), 400
    text = upload.read().decode("utf-8-sig", errors="replace")
    try:
        parsed = parse_log(text, unit=context["unit"], zone=context["zone"])
    except Invalid as exc:
        context["error"] = str(exc)
        return render_template("storage/import.html", **context), 400
    context["parsed"] = parsed
    if parsed.problems:
        context["error"] = _(
            "%(count)s lines are wrong: nothing was stored. Correct the file and send it again.",
            count=len(parsed.problems),
        )
        return render_template("storage/import.html", **context), 400
    if request.form.get("action") != "import":
        return render_template("storage/import.html", **context)
    try:
        count = import_log(
            session=s,
            actor=Actor.of(current_user.row),
            equipment_id=equipment.id,
            readings=parsed.readings,
        )
    except Invalid as exc:
        s.rollback()
        context["error"] = str(exc)
        return render_template("storage/import.html", **context), 400
    s.commit()
    flash(_("%(count)s readings imported.", count=count), "success")
    return redirect(url_for("storage.equipment_page", equipment_id=equipment.id, period="30d"))


@bp.route("/storage/<equipment_id>/excursions", methods=["POST"])
@permission_required(Permission.VIEW_RECORDS)
def acknowledge_excursion(equipment_id: str):
    """A pharmacist's or quality officer's signed acknowledgement of one excursion."""
    s, site, equipment = _equipment(equipment_id)
    back = redirect(url_for("storage.equipment_page", equipment_id=equipment.id, period="30d"))
    settings = current_app.extensions["qms_settings"]
    user = s.get(User, current_user.id)
    password = request.form.get("password") or ""
    now = utcnow()
    try:
        try:
            started = datetime.fromisoformat(request.form.get("started_at") or "")
        except ValueError:
            raise Invalid(_("Choose the excursion to acknowledge.")) from None
        credential = signing.credential(user.id, password)
        excursions.acknowledge(
            session=s,
            registry=get_registry(),
            by=user,
            credential=credential,
            freshness_minutes=settings.signature_freshness_minutes,
            equipment_id=equipment.id,
            started_at=started,
            comment=request.form.get("comment") or "",
            now=now,
            lockout=Lockout.of(settings),
        )
    except QmsError as exc:
        signing.refuse(s, exc)
        if not isinstance(exc, Invalid):
            raise
        flash(str(exc), "error")
        return back
    s.commit()
    signing.signed(password, now)
    flash(_("Excursion acknowledged."), "success")
    return back
