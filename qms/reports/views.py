"""Report pages: the quality officer's (generate, preview, approve and sign, list), the
regulator's portal (approved reports of their sites, download, check a file), and the
public check page (no sign-in: is this hash registered, which report, superseded?)."""

from __future__ import annotations

import hashlib
import subprocess

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from sqlmodel import col, select

from qms.accounts import service as accounts
from qms.accounts.models import User
from qms.accounts.permissions import has_permission, permission_required, public
from qms.accounts.roles import Permission
from qms.accounts.service import sites_of
from qms.core.errors import Invalid, NotFound, QmsError
from qms.core.i18n import _
from qms.db import utcnow
from qms.reports import files, render, service
from qms.reports.models import REPORT_TYPE_LABELS, REPORT_TYPES, ReportVersion
from qms.web import signing
from qms.web.database import db_session, get_database
from qms.web.registry import get_registry

bp = Blueprint("reports", __name__, url_prefix="/reports")
public_bp = Blueprint("report_check", __name__)

PREVIEW_TIMEOUT_S = 30
MAX_CHECK_BYTES = 32 * 1024 * 1024


def _settings():
    return current_app.extensions["qms_settings"]


def _user() -> User:
    return db_session().get(User, current_user.id)


@bp.route("/")
@permission_required(Permission.VIEW_REPORTS)
def index():
    """Versions with their status; a quality officer also sees drafts and the generate form."""
    s = db_session()
    user = _user()
    rows = service.list_versions(s, user)
    states = {row.id: service.status_of(s, row) for row in rows}
    return render_template(
        "reports/index.html",
        rows=rows,
        states=states,
        labels=REPORT_TYPE_LABELS,
        types=[t for t in REPORT_TYPES if t in service.BUILDABLE],
        sites=sites_of(session=s, user=user),
        regions=_regions_of(s, user),
        prepares=has_permission(Permission.SIGN_REPORTS),
    )


def _regions_of(s, user: User):
    """The regions every site of which the user belongs to (whose report they may make)."""
    from qms.accounts.access import member_site_ids
    from qms.regions.models import Region
    from qms.regions.service import sites_of_region

    mine = set(member_site_ids(s, user.id))
    regions = s.exec(select(Region).order_by(col(Region.id))).all()
    return [r for r in regions if (sites := sites_of_region(s, r.id)) and set(sites) <= mine]


@bp.route("/generate", methods=["POST"])
@permission_required(Permission.SIGN_REPORTS)
def generate():
    """Audit (for a site report), read and render with a read session, so that no write
    lock is held while the audit judges or WeasyPrint renders (in its child process); then
    short writes record the audit run and register the file."""
    s = db_session()
    form = request.form
    report_type = form.get("type", "")
    site_id = form.get("site") or None
    period = (form.get("period") or "").strip() or None
    database = get_database()
    reader = s if database.bound else database.session()
    try:
        # WeasyPrint loads in its child process while the audit runs.
        with render.start_render() as renderer:
            files.sweep(reader, _settings())
            user = reader.get(User, current_user.id)
            run_id = (form.get("run") or "").strip() or None
            if report_type == "site-monthly" and run_id is None:
                run_id = _audit_month(reader, s, user, site_id, period)
            run_ids, scope = None, (form.get("unit") or "").strip() or None
            if report_type == "regional-annual":
                scope = (form.get("region") or "").strip() or None
                run_ids = _audit_year(reader, s, user, scope, period)
            prepared = service.prepare_report(
                session=reader,
                settings=_settings(),
                who=user,
                report_type=report_type,
                site_id=site_id,
                scope=scope,
                period=period,
                language=form.get("language", "en"),
                audit_run_id=run_id,
                audit_run_ids=run_ids,
                renderer=renderer,
            )
            if reader is not s:
                reader.close()
            row = service.register_report(session=s, settings=_settings(), prepared=prepared)
    except (Invalid, NotFound) as exc:
        s.rollback()
        flash(str(exc), "error")
        return redirect(url_for("reports.index"))
    finally:
        if reader is not s:
            reader.close()
    s.commit()
    flash(_("%(report)s generated: check page 1, then approve and sign.", report=row.id), "success")
    return redirect(url_for("reports.version", version_id=row.id))


def _audit_month(reader, s, user, site_id, period) -> str:
    """A new audit run of the month: judged with the read session, recorded and committed
    with the request's (it stands as a record of its own, report or not)."""
    from qms.quality.audits import assess_scope, record_run

    if not site_id or not period or not service.MONTH_RE.match(period):
        raise Invalid(_("a site monthly report covers a month: give the period as 2026-10"))
    result = assess_scope(
        session=reader,
        registry=get_registry(),
        by=user,
        scope=service.month_scope(site_id, period),
    )
    run = record_run(session=s, by=s.get(User, user.id), result=result, now=utcnow())
    s.commit()
    if reader is not s:
        reader.rollback()  # a fresh snapshot that sees the run just committed
    return run.id


def _audit_year(reader, s, user, region_id, period) -> dict[str, str]:
    """A new audit run of the year at each site of the region (judged with the read
    session, recorded and committed with the request's), by site."""
    from qms.quality.audits import assess_scope, record_run
    from qms.regions.models import Region
    from qms.regions.service import sites_of_region

    if not region_id or reader.get(Region, region_id) is None:
        raise NotFound(_("there is no region %(region)s", region=region_id or ""))
    if not period or not service.YEAR_RE.match(period):
        raise Invalid(_("a regional annual report covers a year: give the period as 2026"))
    sites = sites_of_region(reader, region_id)
    results = [
        assess_scope(
            session=reader,
            registry=get_registry(),
            by=user,
            scope=service.year_scope(site_id, period),
        )
        for site_id in sites
    ]
    runs = {}
    for site_id, result in zip(sites, results, strict=True):
        run = record_run(session=s, by=s.get(User, user.id), result=result, now=utcnow())
        runs[site_id] = run.id
    s.commit()
    if reader is not s:
        reader.rollback()
    return runs


def _visible(version_id: str) -> ReportVersion:
    return service.visible_version(
        db_session(), _user(), version_id, permission=Permission.VIEW_REPORTS
    )


@bp.route("/v/<path:version_id>")
@permission_required(Permission.VIEW_REPORTS)
def version(version_id: str):
    s = db_session()
    row = _visible(version_id)
    return render_template(
        "reports/version.html",
        row=row,
        state=service.status_of(s, row),
        label=REPORT_TYPE_LABELS[row.type],
        prepares=has_permission(Permission.SIGN_REPORTS),
        people={
            u.id: u.full_name
            for u in (s.get(User, i) for i in (row.generated_by_id, row.approved_by_id) if i)
        },
    )


@bp.route("/download/<path:version_id>")
@permission_required(Permission.VIEW_REPORTS)
def download(version_id: str):
    row = _visible(version_id)
    content = service.read_file(_settings(), row)
    import io

    name = row.file_name.rsplit("/", 1)[-1]
    return send_file(
        io.BytesIO(content), mimetype="application/pdf", as_attachment=True, download_name=name
    )


@bp.route("/preview/<path:version_id>")
@permission_required(Permission.SIGN_REPORTS)
def preview(version_id: str):
    """Page 1 as a PNG (pdftoppm in a child process with a timeout), kept by the file's hash."""
    row = _visible(version_id)
    settings = _settings()
    folder = settings.instance_path / "previews"
    png = folder / f"{row.sha256}.png"
    if not png.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source = files.reports_dir(settings) / row.file_name
        service.read_file(settings, row)  # the file is there and matches its hash
        stem = folder / f".{row.sha256}.tmp"
        try:
            subprocess.run(
                [
                    "pdftoppm",
                    "-png",
                    "-r",
                    "70",
                    "-f",
                    "1",
                    "-l",
                    "1",
                    "-singlefile",
                    str(source),
                    str(stem),
                ],
                check=True,
                capture_output=True,
                timeout=PREVIEW_TIMEOUT_S,
            )
        except (OSError, subprocess.SubprocessError):
            abort(409, description=_("page 1 could not be drawn (is pdftoppm installed?)"))
        stem.with_suffix(".tmp.png").rename(png)
    return send_file(png, mimetype="image/png")


@bp.route("/approve/<path:version_id>", methods=["POST"])
@permission_required(Permission.SIGN_REPORTS)
def approve(version_id: str):
    s = db_session()
    user = _user()
    settings = _settings()
    now = utcnow()
    password = request.form.get("password") or ""
    credential = signing.credential(user.id, password)
    back = redirect(url_for("reports.version", version_id=version_id))
    try:
        row = service.approve_report(
            session=s,
            settings=settings,
            version_id=version_id,
            by=user,
            credential=credential,
            freshness_minutes=settings.signature_freshness_minutes,
            now=now,
            lockout=accounts.Lockout.of(settings),
        )
    except Invalid as exc:
        signing.refuse(s, exc)
        flash(str(exc), "error")
        return back
    s.commit()
    signing.signed(password, now)
    flash(_("%(report)s approved and signed.", report=row.id), "success")
    return redirect(url_for("reports.version", version_id=row.id))


def _uploaded_hash() -> tuple[bytes | None, str | None]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None, None
    content = upload.read(MAX_CHECK_BYTES + 1)
    return content, hashlib.sha256(content).hexdigest()


@bp.route("/check", methods=["GET", "POST"])
@permission_required(Permission.VIEW_REPORTS)
def check():
    """A regulator uploads a PDF: is it genuine (registered, signed, data intact), current?"""
    result = None
    if request.method == "POST":
        content, _digest = _uploaded_hash()
        if content is None:
            flash(_("Choose a PDF file to check."), "error")
        else:
            result = service.verify_file(db_session(), _settings(), content)
            if result.row is not None:
                try:
                    _visible(result.row.id)
                except QmsError:
                    result = service.Verification(result.sha256, None, None, [])
    return render_template("reports/check.html", result=result, public=False)


@public_bp.route("/check-report", methods=["GET", "POST"])
@public  # anyone holding a printed report may check it, on purpose
def public_check():
    """No sign-in: only whether the hash is registered, which report, superseded or not."""
    found = state = digest = None
    if request.method == "POST":
        content, digest = _uploaded_hash()
        if content is None:
            flash(_("Choose a PDF file to check."), "error")
        else:
            s = db_session()
            found = service.find_by_hash(s, digest)
            state = service.status_of(s, found) if found else None
    return render_template("reports/public_check.html", found=found, state=state, digest=digest)
