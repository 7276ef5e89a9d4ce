"""The regulators' portal: each report delivered to them, and the date they first opened it."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, send_file, url_for
from flask_login import current_user

from qms.accounts.access import belongs_to_every, is_member
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.core.errors import NotFound
from qms.core.i18n import _
from qms.db import utcnow
from qms.delivery import service
from qms.delivery.models import PORTAL, Delivery
from qms.reports.service import visible_version
from qms.web.database import db_session

bp = Blueprint("delivery", __name__)


@bp.route("/portal")
@permission_required(Permission.VIEW_REPORTS)
def portal():
    s = db_session()
    user = current_user.row
    from qms.reports.models import ReportVersion
    from qms.reports.service import covered_sites

    reports = {}
    rows = []
    for delivery, opened in service.portal_deliveries(s, user.username):
        report = s.get(ReportVersion, delivery.report_version_id)
        # A regional report is listed only while they belong to every site it covers.
        if belongs_to_every(s, user.id, covered_sites(s, report)):
            reports[report.id] = report
            rows.append((delivery, opened))
    return render_template("delivery/portal.html", rows=rows, reports=reports)


@bp.route("/portal/<delivery_id>")
@permission_required(Permission.VIEW_REPORTS)
def open_report(delivery_id: str):
    s = db_session()
    user = current_user.row
    delivery = s.get(Delivery, delivery_id)
    # Another site's delivery (or one no longer of the regulator's sites) answers as missing.
    if delivery is None or delivery.channel != PORTAL or not is_member(s, user, delivery.site_id):
        abort(404, description=_("There is no such report in your portal."))
    if delivery.recipient != user.username:
        # Someone else of the site reads the report where reports are read, if they may
        # (its opening is the recipient's to record); else the same 404.
        try:
            row = visible_version(
                s, user, delivery.report_version_id, permission=Permission.VIEW_REPORTS
            )
        except NotFound:
            abort(404, description=_("There is no such report in your portal."))
        return redirect(url_for("reports.version", version_id=row.id))
    from qms.reports.files import reports_dir
    from qms.reports.models import ReportVersion
    from qms.reports.service import covered_sites

    report = s.get(ReportVersion, delivery.report_version_id)
    # A regional report stays theirs only while they belong to every site it covers.
    if not belongs_to_every(s, user.id, covered_sites(s, report)):
        abort(404, description=_("There is no such report in your portal."))
    path = reports_dir(current_app.extensions["qms_settings"]) / report.file_name
    if not path.is_file():
        abort(404, description=_("The file of this report is missing; tell the hospital."))
    service.record_open(s, delivery, current_user.row.id, utcnow())
    s.commit()
    return send_file(path, mimetype="application/pdf", download_name=path.name)
