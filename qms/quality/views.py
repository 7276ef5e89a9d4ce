"""Quality pages: audit runs and their review, deviations, CAPA, the site's dashboard, and
the regulator's read-only view. Thin: parse the form, call a service, commit, redirect."""

from __future__ import annotations

import json
from datetime import datetime, time

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
from flask import session as web_session
from flask_login import current_user
from sqlmodel import col, select

from qms import charts
from qms.accounts import service as accounts
from qms.accounts.access import is_member, member_site_ids
from qms.accounts.models import Site, User
from qms.accounts.permissions import permission_required
from qms.accounts.roles import Permission
from qms.core.clock import zone_of
from qms.core.errors import Invalid, NotFound, QmsError
from qms.core.i18n import _, checklist_text_key, format_datetime
from qms.db import utcnow
from qms.quality import audits, capa, dashboard, parameters, reviews
from qms.quality import deviations as dv
from qms.quality.models import AUDIT_KINDS, CLASSIFICATIONS
from qms.records.wards import ward_view
from qms.web import signing
from qms.web.database import db_session
from qms.web.registry import get_registry

bp = Blueprint("quality", __name__, url_prefix="/quality")


@bp.app_template_global("deviation_title")
def deviation_title(deviation) -> str:
    """A deviation's title as the reader reads it (`deviations.title_in`)."""
    return dv.title_in(deviation, get_registry(), checklist_text_key())


@bp.app_context_processor
def _quality_home():
    # A callable: the panel's queries run only on the page that includes it.
    return {"quality_home": home_panel_context}


def _now() -> datetime:
    return utcnow()


def _user() -> User:
    return db_session().get(User, current_user.id)


def _site() -> Site:
    s = db_session()
    site_id = web_session.get("site_id")
    if site_id is None or not is_member(s, current_user.row, site_id):
        abort(403, description=_("Choose a site you belong to first."))
    return s.get(Site, site_id)


def _signer() -> dv.Signer:
    settings = current_app.extensions["qms_settings"]
    return dv.Signer(
        signing.credential(current_user.id, request.form.get("password")),
        settings.signature_freshness_minutes,
        accounts.Lockout.of(settings),
    )


def _act(back: str, work, done, *, then=None, missing_is_404: bool = True):
    """Run a write, commit, say so; or roll back and say why. `done` and `then` may be
    functions of what the write returned (the message, and where to go next). A missing
    object in the URL reaches the error page; one named in the form (`missing_is_404`
    false) is a message on the form's page."""
    s = db_session()
    try:
        result = work(s)
    except QmsError as exc:
        if isinstance(exc, NotFound) and missing_is_404:
            s.rollback()
            raise
        signing.refuse(s, exc)
        flash(str(exc), "error")
        return redirect(back)
    s.commit()
    signing.signed(request.form.get("password"), _now())
    flash(done(result) if callable(done) else done, "success")
    return redirect(then(result) if then else back)


def _at(site: Site):
    return lambda moment: format_datetime(moment, zone=site.timezone)


def _people(ids) -> dict[int, User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in db_session().exec(select(User).where(col(User.id).in_(wanted)))}


# --- audit runs ------------------------------------------------------------------------------


@bp.route("/runs")
@permission_required(Permission.AUDIT)
def runs():
    site = _site()
    rows = audits.runs_of(db_session(), _user(), site.id)
    return render_template(
        "quality/runs.html",
        site=site,
        runs=[(r, json.loads(r.scope), json.loads(r.counts)) for r in rows],
        kinds=[(k, audits.AUDIT_KIND_LABELS[k]) for k in AUDIT_KINDS if k != "effectiveness"],
        kind_labels=audits.AUDIT_KIND_LABELS,
        products=sorted(c.id for c in get_registry()),
        people=_people({r.by_id for r in rows}),
        at=_at(site),
    )


@bp.route("/runs", methods=["POST"])
@permission_required(Permission.AUDIT)
def start_run():
    site = _site()
    s = db_session()
    try:
        start, end = audits.parse_dates(request.form.get("from"), request.form.get("to"))
        scope = audits.AuditScope(
            site_id=site.id,
            date_from=start,
            date_to=end,
            checklists=tuple(c for c in request.form.getlist("checklist") if c),
            wards=tuple(w.strip() for w in request.form.get("wards", "").split(",") if w.strip()),
            units=audits.scope_units(request.form.get("units", "").replace(",", " ").split()),
            kind=request.form.get("kind", "routine"),
        )
        run = audits.run_audit(
            session=s, registry=get_registry(), by=_user(), scope=scope, now=_now()
        )
    except Invalid as exc:
        s.rollback()
        flash(str(exc), "error")
        return redirect(url_for("quality.runs"))
    s.commit()
    flash(_("Audit %(run)s recorded.", run=run.id), "success")
    return redirect(url_for("quality.run_page", run_id=run.id))


@bp.route("/runs/<run_id>")
@permission_required(Permission.AUDIT)
def run_page(run_id: str):
    s = db_session()
    view = audits.load_run(s, _user(), run_id)
    site = s.get(Site, view.run.site_id)
    registry = get_registry()
    findings = audits.run_findings(view.run, registry)
    suggested = reviews.open_deviations_for(s, [f.doc for f in view.findings])
    people = _people({view.run.by_id} | {r.by_id for f in view.findings for r in f.reviews})
    return render_template(
        "quality/run.html",
        site=site,
        view=view,
        rows=list(zip(view.findings, findings, strict=True)),
        suggested=suggested,
        people=people,
        kind_labels=audits.AUDIT_KIND_LABELS,
        decision_labels=reviews.DECISION_LABELS,
        at=_at(site),
    )


@bp.route("/runs/<run_id>/findings/<int:index>", methods=["POST"])
@permission_required(Permission.AUDIT)
def review(run_id: str, index: int):
    back = url_for("quality.run_page", run_id=run_id) + f"#finding-{index}"
    decision = request.form.get("decision", "")

    def work(s):
        reviews.review_finding(
            session=s,
            by=_user(),
            run_id=run_id,
            finding=index,
            decision=decision,
            rationale=request.form.get("rationale"),
            deviation_id=request.form.get("deviation") or None,
            signer=_signer(),
            now=_now(),
        )

    return _act(back, work, _("Finding %(n)s reviewed.", n=index + 1))


# --- deviations ------------------------------------------------------------------------------


@bp.route("/deviations")
@permission_required(Permission.VIEW_RECORDS)
def deviation_list():
    site = _site()
    s = db_session()
    user = _user()
    states = dv.deviations_of(s, user, site.id, status=request.args.get("status") or None)
    return render_template(
        "quality/deviations.html",
        site=site,
        states=states,
        officer=dv.audience(user) == "officer",
        people=_people({x.owner_id for x in states}),
        status_labels=dv.STATUS_LABELS,
        class_labels=dv.CLASSIFICATION_LABELS,
        classifications=CLASSIFICATIONS,
        now=_now(),
        at=_at(site),
    )


@bp.route("/deviations", methods=["POST"])
@permission_required(Permission.AUDIT)
def open_deviation():
    site = _site()
    form = request.form

    def work(s):
        return dv.open_deviation(
            session=s,
            by=_user(),
            site_id=site.id,
            title=form.get("title", ""),
            description=form.get("description", ""),
            classification=form.get("classification", ""),
            units=form.get("units", "").replace(",", " ").split(),
            signer=_signer(),
            now=_now(),
        )

    return _act(
        url_for("quality.deviation_list"),
        work,
        lambda opened: _("Deviation %(deviation)s opened.", deviation=opened.id),
        then=lambda opened: url_for("quality.deviation_page", deviation_id=opened.id),
        missing_is_404=False,
    )


@bp.route("/deviations/<deviation_id>")
@permission_required(Permission.VIEW_RECORDS)
def deviation_page(deviation_id: str):
    s = db_session()
    user = _user()
    state = dv.get_deviation(s, user, deviation_id)
    site = s.get(Site, state.site_id)
    events = [(e, json.loads(e.details)) for e in state.events]
    people = _people({state.deviation.opened_by_id, state.owner_id} | {e.by_id for e, _d in events})
    officers = []
    if dv.audience(user) == "officer":
        officers = [
            u
            for u in s.exec(select(User).where(User.active).order_by(col(User.username)))
            if u.role == "quality_officer" and is_member(s, u, site.id)
        ]
    units, findings, records, hidden = _concerns(s, user, state)
    return render_template(
        "quality/deviation.html",
        site=site,
        state=state,
        events=events,
        findings=findings,
        units=units,
        units_elsewhere=hidden,
        records=records,
        recurrence=dv.recurrence(s, state),
        capas=capa.capas_for(s, state.id),
        officer=dv.audience(user) == "officer",
        officers=officers,
        people=people,
        status_labels=dv.STATUS_LABELS,
        class_labels=dv.CLASSIFICATION_LABELS,
        action_labels=dv.ACTION_LABELS,
        classifications=CLASSIFICATIONS,
        fishbone=dv.FISHBONE,
        pending_due=datetime.fromisoformat(json.loads(state.pending_extension.details)["due_at"])
        if state.pending_extension
        else None,
        now=_now(),
        at=_at(site),
        local_date=lambda moment: moment.astimezone(zone_of(site.timezone)).date().isoformat(),
    )


def _concerns(s, user: User, state) -> tuple[list[str], list[dict], list[str], int]:
    """The units, findings and records a deviation concerns, as this person sees them: ward
    staff see those of their wards' units (and units on no ward), and how many other units
    it concerns, never their ids, records or findings (which may quote patient references)."""
    deviation = state.deviation
    units, findings = json.loads(deviation.units), json.loads(deviation.findings)
    view = ward_view(s, user, deviation.site_id)
    named = list(dict.fromkeys([*units, *(f["unit"] for f in findings if f.get("unit"))]))
    seen = set(view.seen_ids(s, named)[0])
    return (
        [u for u in units if u in seen],
        [f for f in findings if not f.get("unit") or f["unit"] in seen],
        view.seen_records(s, json.loads(deviation.records)),
        len(set(named) - seen),
    )


@bp.route("/deviations/<deviation_id>/events", methods=["POST"])
@permission_required(Permission.AUDIT)
def deviation_event(deviation_id: str):
    back = url_for("quality.deviation_page", deviation_id=deviation_id)
    action = request.form.get("action", "")
    form = request.form
    details: dict = {}
    if action == "classified":
        details = {"classification": form.get("classification", "")}
    elif action == "assigned":
        details = {"owner": form.get("owner", "")}
    elif action == "investigation_recorded":
        details = {k: form.get(k, "") for k in dv.INVESTIGATION_FIELDS}
        details["whys"] = [form.get(f"why{i}", "") for i in range(1, 6)]
        details["fishbone"] = {k: form.get(f"fishbone_{k}", "") for k in dv.FISHBONE}

    def work(s):
        if action == "extension_requested":
            site = s.get(Site, dv.get_deviation(s, _user(), deviation_id).site_id)
            details["due_at"] = _local_day_end(form.get("due_date", ""), site.timezone)
        dv.record_event(
            session=s,
            by=_user(),
            deviation_id=deviation_id,
            action=action,
            reason=form.get("reason"),
            details=details,
            signer=_signer(),
            now=_now(),
        )

    return _act(back, work, _("Deviation %(deviation)s updated.", deviation=deviation_id))


def _local_day_end(text: str, timezone: str) -> str:
    day, _unused = audits.parse_dates(text, None)
    if day is None:
        raise Invalid(_("give the new due date"))
    return datetime.combine(day, time(23, 59), tzinfo=zone_of(timezone)).isoformat()


# --- CAPA ------------------------------------------------------------------------------------


@bp.route("/capa")
@permission_required(Permission.VIEW_RECORDS)
def capa_list():
    site = _site()
    s = db_session()
    states = capa.capas_of(s, _user(), site.id)
    return render_template(
        "quality/capas.html",
        site=site,
        states=states,
        people=_people({c.capa.owner_id for c in states}),
        status_labels=capa.STATUS_LABELS,
        now=_now(),
        at=_at(site),
    )


@bp.route("/capa", methods=["POST"])
@permission_required(Permission.AUDIT)
def open_capa():
    site = _site()
    form = request.form
    deviation = form.get("deviation", "")

    def work(s):
        return capa.open_capa(
            session=s,
            by=_user(),
            site_id=site.id,
            title=form.get("title", ""),
            description=form.get("description", ""),
            deviations=form.get("deviations", deviation).replace(",", " ").split(),
            owner=form.get("owner", ""),
            signer=_signer(),
            now=_now(),
        )

    back = (
        url_for("quality.deviation_page", deviation_id=deviation)
        if deviation
        else url_for("quality.capa_list")
    )
    return _act(
        back,
        work,
        lambda opened: _("Opened %(capa)s.", capa=opened.id),
        then=lambda opened: url_for("quality.capa_page", capa_id=opened.id),
        missing_is_404=False,
    )


@bp.route("/capa/<capa_id>")
@permission_required(Permission.VIEW_RECORDS)
def capa_page(capa_id: str):
    s = db_session()
    user = _user()
    state = capa.get_capa(s, user, capa_id)
    site = s.get(Site, state.capa.site_id)
    runs = (
        [
            r
            for r in audits.runs_of(s, user, site.id)
            if r.kind == "effectiveness" and json.loads(r.scope).get("capa") == state.id
        ]
        if dv.audience(user) == "officer"
        else []
    )
    prepared = runs[0] if runs else None
    staff = [
        u
        for u in s.exec(select(User).where(User.active).order_by(col(User.username)))
        if u.role in ("nurse", "physician", "pharmacist", "quality_officer")
        and is_member(s, u, site.id)
    ]
    people = _people(
        {state.capa.owner_id, state.capa.opened_by_id} | {e.by_id for e in state.events}
    )
    return render_template(
        "quality/capa.html",
        site=site,
        state=state,
        officer=dv.audience(user) == "officer",
        me=user,
        staff=staff,
        people=people,
        status_labels=capa.STATUS_LABELS,
        change_labels=capa.CHANGE_LABELS,
        prepared=prepared,
        recurred=capa.recurred(state, prepared) if prepared else [],
        now=_now(),
        at=_at(site),
    )


@bp.route("/capa/<capa_id>/actions", methods=["POST"])
@permission_required(Permission.AUDIT)
def capa_action(capa_id: str):
    back = url_for("quality.capa_page", capa_id=capa_id)

    def work(s):
        site = s.get(Site, capa.get_capa(s, _user(), capa_id).capa.site_id)
        capa.add_action(
            session=s,
            by=_user(),
            capa_id=capa_id,
            title=request.form.get("title", ""),
            owner=request.form.get("owner", ""),
            due_at=datetime.fromisoformat(
                _local_day_end(request.form.get("due_date", ""), site.timezone)
            ),
            signer=_signer(),
            now=_now(),
        )

    return _act(back, work, _("Action added to %(capa)s.", capa=capa_id))


@bp.route("/capa/<capa_id>/actions/<number>/evidence", methods=["POST"])
@permission_required(Permission.VIEW_RECORDS)
def capa_evidence(capa_id: str, number: str):
    back = url_for("quality.capa_page", capa_id=capa_id) + f"#action-{number}"
    files = [(f.filename or "file", f.read()) for f in request.files.getlist("files") if f.filename]

    def work(s):
        capa.add_evidence(
            session=s,
            by=_user(),
            capa_id=capa_id,
            action=number,
            text=request.form.get("text", ""),
            files=files,
            store=_evidence_store(),
            signer=_signer(),
            now=_now(),
        )

    return _act(back, work, _("Evidence recorded on action %(n)s.", n=number))


@bp.route("/capa/<capa_id>/actions/<number>/done", methods=["POST"])
@permission_required(Permission.VIEW_RECORDS)
def capa_done(capa_id: str, number: str):
    back = url_for("quality.capa_page", capa_id=capa_id) + f"#action-{number}"

    def work(s):
        capa.complete_action(
            session=s, by=_user(), capa_id=capa_id, action=number, signer=_signer(), now=_now()
        )

    return _act(back, work, _("Action %(n)s is done.", n=number))


@bp.route("/capa/<capa_id>/close", methods=["POST"])
@permission_required(Permission.AUDIT)
def capa_close(capa_id: str):
    def work(s):
        capa.approve_closure(
            session=s,
            by=_user(),
            capa_id=capa_id,
            reason=request.form.get("reason"),
            signer=_signer(),
            now=_now(),
        )

    return _act(
        url_for("quality.capa_page", capa_id=capa_id),
        work,
        _("Closure of %(capa)s approved.", capa=capa_id),
    )


@bp.route("/capa/<capa_id>/effectiveness/prepare", methods=["POST"])
@permission_required(Permission.AUDIT)
def capa_prepare(capa_id: str):
    def work(s):
        capa.prepare_effectiveness(
            session=s, registry=get_registry(), by=_user(), capa_id=capa_id, now=_now()
        )

    return _act(
        url_for("quality.capa_page", capa_id=capa_id),
        work,
        _("Effectiveness check of %(capa)s prepared.", capa=capa_id),
    )


@bp.route("/capa/<capa_id>/effectiveness", methods=["POST"])
@permission_required(Permission.AUDIT)
def capa_verdict(capa_id: str):
    def work(s):
        capa.record_effectiveness(
            session=s,
            by=_user(),
            capa_id=capa_id,
            run_id=request.form.get("run", ""),
            effective=request.form.get("effective") == "yes",
            reason=request.form.get("reason"),
            signer=_signer(),
            now=_now(),
        )

    return _act(
        url_for("quality.capa_page", capa_id=capa_id),
        work,
        _("Effectiveness of %(capa)s recorded.", capa=capa_id),
    )


@bp.route("/capa/<capa_id>/evidence/<sha256>")
@permission_required(Permission.VIEW_RECORDS)
def evidence_file(capa_id: str, sha256: str):
    state = capa.get_capa(db_session(), _user(), capa_id)
    for action in state.actions.values():
        for item in action.evidence:
            for doc in item.get("files", ()):
                if doc["sha256"] == sha256:
                    path = capa.evidence_path(_evidence_store(), sha256)
                    if not path.exists():
                        abort(404, description=_("The file is no longer in the evidence store."))
                    return send_file(path, as_attachment=True, download_name=doc["name"])
    abort(404, description=_("There is no such file of evidence."))


def _evidence_store():
    return current_app.extensions["qms_settings"].instance_path / "evidence"


# --- the dashboard and the regulator's view --------------------------------------------------


@bp.route("/dashboard")
@permission_required(Permission.AUDIT)
def site_dashboard():
    site = _site()
    s = db_session()
    figures = dashboard.site_figures(s, get_registry(), site.id, now=_now())
    month = _("Month")
    made = [
        charts.line_chart(
            _("Compliance per product (units without findings)"),
            figures.months,
            list(figures.compliance.items()),
            category_header=month,
        ),
        charts.bar_chart(
            _("Findings per rule"),
            figures.months,
            list(figures.rules.items()),
            category_header=month,
        ),
    ]
    for product, window in sorted(figures.windows.items()):
        made.append(
            charts.histogram(
                _("%(product)s: %(rule)s (minutes)", product=product, rule=window["rule"]),
                window["minutes"],
                limit=window["limit_minutes"],
                unit="m",
                count_header=_("Units"),
                range_header=_("Minutes"),
                limit_label=_("limit"),
            )
        )
    ages = [_("under 7 days"), _("7–30 days"), _("30–90 days"), _("over 90 days")]
    made.append(
        charts.bar_chart(
            _("Open deviations by age and classification"),
            ages,
            [(str(dv.CLASSIFICATION_LABELS[c]), v) for c, v in figures.deviation_ages.items()],
            stacked=True,
            category_header=_("Age"),
        )
    )
    made.append(
        charts.bar_chart(
            _("Excursions per equipment"),
            list(figures.excursions) or [_("none")],
            [(_("Excursions"), list(figures.excursions.values()) or [0])],
            category_header=_("Equipment"),
        )
    )
    return render_template(
        "quality/dashboard.html",
        site=site,
        charts=made,
        figures=figures,
        parameters=parameters.site_parameters(s, site.id),
        parameter_labels=parameters.LABELS,
        now=_now(),
        at=_at(site),
    )


@bp.route("/parameters", methods=["POST"])
@permission_required(Permission.AUDIT)
def set_parameter():
    site = _site()

    def work(s):
        try:
            value = int(request.form.get("value", ""))
        except ValueError:
            raise Invalid(_("give a whole number")) from None
        parameters.set_parameter(
            session=s,
            by=_user(),
            site_id=site.id,
            name=request.form.get("name", ""),
            value=value,
            reason=request.form.get("reason", ""),
            now=_now(),
        )

    return _act(url_for("quality.site_dashboard"), work, _("Quality parameter set."))


@bp.route("/oversight")
@permission_required(Permission.VIEW_REPORTS)
def oversight():
    """Confirmed deviations and CAPA status of the regulator's sites: no patient reference."""
    s = db_session()
    user = _user()
    if dv.audience(user) not in ("regulator", "officer"):
        abort(403, description=_("Your role does not see deviations."))
    sites = []
    for site_id in sorted(member_site_ids(s, user.id)):
        states = [
            x for x in dv.deviations_of(s, user, site_id) if x.confirmed or x.status != dv.OPEN
        ]
        capas = [
            c for c in capa.capas_of(s, user, site_id) if set(c.deviations) & {x.id for x in states}
        ]
        sites.append((s.get(Site, site_id), states, capas))
    return render_template(
        "quality/oversight.html",
        sites=sites,
        status_labels=dv.STATUS_LABELS,
        capa_labels=capa.STATUS_LABELS,
        class_labels=dv.CLASSIFICATION_LABELS,
        now=_now(),
        at=lambda moment, zone: format_datetime(moment, zone=zone),
    )


def home_panel_context() -> dict:
    """For templates/quality/_home_panel.html on a quality officer's home page."""
    return dashboard.home_panel(db_session(), _user(), now=_now())
