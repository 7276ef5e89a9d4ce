"""Generating, approving, listing and verifying reports: the only code that writes them.

`generate_report` collects the data from the ledger up to its head, renders the PDF/A-3
in a child process (`render.render_pdf`), seals it with the site's key (PAdES), writes
the file atomically and appends its registry row (`ReportVersion`). `approve_report`
takes the quality officer's password signature (`records.signatures.authenticate_signer`)
and signs the draft's PDF again as a new version that supersedes it. The caller commits
(a rollback removes the file; a crash leaves a file `files.sweep` removes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from qms.accounts.access import belongs_to_every, require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission
from qms.accounts.service import Actor
from qms.config import Settings
from qms.core import ledger
from qms.core.anchors import anchor
from qms.core.clock import local
from qms.core.errors import Conflict, Invalid, NotFound
from qms.core.i18n import _, _l
from qms.core.models import LedgerEntry
from qms.db import utcnow
from qms.paths import TEMPLATES_DIR
from qms.records.models import Unit
from qms.reports import data as report_data
from qms.reports import files, keys, pdf, render
from qms.reports.language import in_language, render_template
from qms.reports.models import (
    REGIONAL_ANNUAL,
    REPORT_LANGUAGES,
    REPORT_TYPE_LABELS,
    REPORT_TYPES,
    SITE_MONTHLY,
    UNIT_DOSSIER,
    ReportSite,
    ReportVersion,
)

LANGUAGE_ALIASES = {"en": "en", "zh": "zh_CN", "zh_CN": "zh_CN", "zh-CN": "zh_CN"}
PERIOD_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2]))?$")
# The report types this branch can build today; the others need audit runs.
BUILDABLE = (UNIT_DOSSIER, SITE_MONTHLY, REGIONAL_ANNUAL)
YEAR_RE = re.compile(r"^\d{4}$")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
JSON_NAME, CSV_NAME = "report.json", "report.csv"


def generator_version() -> str:
    from importlib.metadata import version

    return f"qms {version('qms')} (WeasyPrint {version('weasyprint')})"


def language_code(raw: str | None) -> str:
    code = LANGUAGE_ALIASES.get((raw or "en").strip())
    if code not in REPORT_LANGUAGES:
        raise Invalid(_("unknown report language %(language)s: use en or zh", language=repr(raw)))
    return code


def report_key(report_type: str, site_id: str, scope: str, period: str, language: str) -> str:
    return f"{report_type}:{site_id}:{scope}:{period}:{language}"


def _who_id(who: User | Actor | None) -> int | None:
    return None if who is None else who.id


def _scope_of(
    session: Session, report_type: str, site_id: str | None, scope: str | None, period: str | None
) -> tuple[str, str, str]:
    """(site id, scope, period) checked for the report type."""
    if report_type not in REPORT_TYPES:
        raise Invalid(
            _(
                "unknown report type %(type)s: use %(types)s",
                type=repr(report_type),
                types=", ".join(REPORT_TYPES),
            )
        )
    if report_type not in BUILDABLE:
        raise Invalid(
            _(
                "%(type)s reports are built from audit runs, which this installation does not "
                "have yet",
                type=report_type,
            )
        )
    if report_type == UNIT_DOSSIER:
        unit = session.get(Unit, scope or "") if scope else None
        if unit is None or (site_id and unit.site_id != site_id):
            raise NotFound(_("there is no unit %(unit)s", unit=scope or ""))
        return unit.site_id, unit.id, "all"
    if report_type == REGIONAL_ANNUAL:
        from qms.regions.models import Region
        from qms.regions.service import sites_of_region

        region = session.get(Region, scope or "") if scope else None
        if region is None:
            raise NotFound(_("there is no region %(region)s", region=scope or ""))
        sites = sites_of_region(session, region.id)
        if not sites:
            raise Invalid(_("the region %(region)s has no sites", region=region.id))
        if not period or not YEAR_RE.match(period):
            raise Invalid(_("a regional annual report covers a year: give the period as 2026"))
        return sites[0], region.id, period
    if not site_id or session.get(Site, site_id) is None:
        raise NotFound(_("there is no site %(site)s", site=site_id or ""))
    if not period or not PERIOD_RE.match(period):
        raise Invalid(_("the period is a month (2026-10) or a year (2026)"))
    if report_type == SITE_MONTHLY and not MONTH_RE.match(period):
        raise Invalid(_("a site monthly report covers a month: give the period as 2026-10"))
    return site_id, site_id, period


def _next_version(session: Session, key: str) -> int:
    versions = session.exec(
        select(ReportVersion.version).where(ReportVersion.report_key == key)
    ).all()
    return max(versions, default=0) + 1


def _file_name(site_id: str, version_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", version_id)
    return f"{site_id}/{safe}.pdf"


def _report_block(version_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": version_id,
        "type": row["type"],
        "site": row["site_id"],
        "scope": row["scope"],
        "period": row["period"],
        "language": row["language"],
        "ledger_head": {"seq": row["ledger_head_seq"], "hash": row["ledger_head_hash"]},
        "audit_run": row.get("audit_run_id"),
        **({"region": row["region"], "audit_runs": row["audit_runs"]} if "region" in row else {}),
        "prepared_by": row.get("prepared_by"),
        "ledger_verified": row.get("ledger_verified"),
        "generated_at": row["generated_at"],
        "generator": row["generator"],
    }


def _dossier_html(content: dict[str, Any], report: dict[str, Any], people: dict[str, str]) -> str:
    tz = content["site"]["timezone"]
    records = content["records"]
    corrected_by: dict[str, list[str]] = {}
    for r in records:
        if r.get("corrects"):
            corrected_by.setdefault(r["corrects"], []).append(r["id"])
    signatures: dict[str, list[dict]] = {}
    for s in content["signatures"]:
        signatures.setdefault(s["record"], []).append(s)
    return render_template(
        "reports/unit_dossier.html",
        report=report,
        title=str(REPORT_TYPE_LABELS[UNIT_DOSSIER]),
        data=content,
        records=records,
        corrected_by=corrected_by,
        signatures=signatures,
        people=people,
        when=lambda iso: (
            local(datetime.fromisoformat(iso.replace("Z", "+00:00")), tz) if iso else "—"
        ),
        generated_local=local(datetime.fromisoformat(report["generated_at"]), tz),
        html_lang="zh-CN" if report["language"] == "zh_CN" else "en",
    )


def _site_monthly_html(content: dict[str, Any], report: dict[str, Any]) -> str:
    from qms.checklists.facts import Finding

    tz = content["site"]["timezone"]
    # Each finding's words in the report's language, from its code and parameters.
    from qms.records.guards import SEVERITY_LABELS
    from qms.records.models import STATUS_LABELS

    messages = [Finding.from_record(f).message for f in content["audit"]["findings"]]
    return render_template(
        "reports/site_monthly.html",
        charts=_site_monthly_charts(content, SEVERITY_LABELS),
        capa_status_label=_capa_status_label,
        classification_label=_classification_label,
        deviation_status_label=_deviation_status_label,
        status_label=lambda code: str(STATUS_LABELS.get(code, code)),
        severity_label=lambda code: str(SEVERITY_LABELS.get(code, code)),
        report=report,
        title=str(REPORT_TYPE_LABELS[SITE_MONTHLY]),
        data=content,
        messages=messages,
        when=lambda iso: (
            local(datetime.fromisoformat(iso.replace("Z", "+00:00")), tz) if iso else "—"
        ),
        generated_local=local(datetime.fromisoformat(report["generated_at"]), tz),
        html_lang="zh-CN" if report["language"] == "zh_CN" else "en",
    )


def _capa_status_label(code: str) -> str:
    from qms.quality.capa import STATUS_LABELS

    return str(STATUS_LABELS.get(code, code))


def _classification_label(code: str) -> str:
    from qms.quality.deviations import CLASSIFICATION_LABELS

    return str(CLASSIFICATION_LABELS.get(code, code or "—"))


def _deviation_status_label(code: str) -> str:
    from qms.quality.deviations import STATUS_LABELS

    return str(STATUS_LABELS.get(code, code))


def _site_monthly_charts(content: dict[str, Any], severity_labels) -> list:
    """Compliance per rule and per product, and the findings by severity, as charts."""
    from qms import charts

    rules = sorted({r["rule"] for r in content["rules"]})
    compliance = {r["rule"]: r["compliant_percent"] for r in content["rules"]}
    made = [
        charts.bar_chart(
            _("Compliance per rule (units without a finding of the rule, %)"),
            [rule.split(".", 1)[-1] for rule in rules] or [_("none")],
            [(_("Compliant"), [compliance[rule] or 0 for rule in rules] or [100])],
            category_header=_("Rule"),
        ),
        charts.bar_chart(
            _("Findings by severity"),
            [str(severity_labels.get(s, s)) for s in content["findings_by_severity"]],
            [(_("Findings"), list(content["findings_by_severity"].values()))],
            category_header=_("Severity"),
        ),
        charts.bar_chart(
            _("Compliance per product (units without findings, %)"),
            [row["checklist"] for row in content["compliance"]] or [_("none")],
            [(_("Compliant"), [row["compliant_percent"] for row in content["compliance"]] or [0])],
            category_header=_("Checklist"),
        ),
    ]
    return made


def build_data(session: Session, report: dict[str, Any]) -> dict[str, Any]:
    """The report's data from the ledger up to its head (what the PDF embeds; what verify
    rebuilds), from the report block (type, scope, period, ledger head, audit run).

    Built in English whatever the report's language: the data is compared byte for byte.
    """
    head_seq = report["ledger_head"]["seq"]
    with in_language("en"):
        if report["type"] == UNIT_DOSSIER:
            return report_data.unit_dossier_data(session, report["scope"], head_seq)
        if report["type"] == SITE_MONTHLY:
            return report_data.site_monthly_data(
                session, report["site"], report["period"], report["audit_run"]
            )
        if report["type"] == REGIONAL_ANNUAL:
            return report_data.regional_annual_data(
                session, report["region"], report["period"], report["audit_runs"]
            )
    raise Invalid(_("%(type)s reports cannot be built yet", type=report["type"]))


def _people(session: Session, content: dict[str, Any]) -> dict[str, str]:
    names = {s["signer"]: s["printed_name"] for s in content.get("signatures", [])}
    return names


@dataclass
class Rendered:
    pdf: bytes
    level: str


def _render_and_seal(
    key: keys.SigningKey,
    *,
    report_type: str,
    content: dict[str, Any],
    report: dict[str, Any],
    people: dict[str, str],
    timeout_s: float,
    pending: render.PendingRender | None = None,
) -> Rendered:
    """Fill the template, render it (in `pending`, a child started ahead, or a new one)
    and seal it; the signer is loaded from the key while the child renders."""
    with in_language(report["language"]):
        if report_type == UNIT_DOSSIER:
            html = _dossier_html(content, report, people)
            csv_bytes = report_data.dossier_csv(content)
        elif report_type == REGIONAL_ANNUAL:
            from qms.reports.regional import regional_html

            html = regional_html(content, report)
            csv_bytes = report_data.regional_csv(content)
        else:
            html = _site_monthly_html(content, report)
            csv_bytes = report_data.findings_csv(content)
        title = f"{REPORT_TYPE_LABELS[report_type]} {report['scope']} {report['period']}"
        json_description = _("The report's data (JSON): what the pages summarise")
        csv_description = _("The report's records, one line each (CSV)")
    document = {"report": report, "data": content}
    attachments = [
        render.Attachment(
            JSON_NAME,
            json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8"),
            "application/json",
            json_description,
        ),
        render.Attachment(CSV_NAME, csv_bytes, "text/csv", csv_description),
    ]
    xmp = pdf.report_xmp(
        title=title,
        values={
            "reportId": report["id"],
            "reportType": report_type,
            "site": report["site"],
            "scope": report["scope"],
            "period": report["period"],
            "ledgerHeadSeq": str(report["ledger_head"]["seq"]),
            "ledgerHeadHash": report["ledger_head"]["hash"],
            "generator": report["generator"],
        },
    )
    with pending or render.start_render() as child:
        child.submit(
            html,
            base_url=str(TEMPLATES_DIR / "reports") + "/",
            attachments=attachments,
            xmp=xmp,
            timeout_s=timeout_s,
        )
        signer = pdf.load_signer(key)
        unsigned = child.result()
    files.crash_point("after-render")
    signed, level = pdf.sign(
        unsigned,
        key,
        field_name="qms-seal",
        reason=f"qms report {report['id']}",
        tsa_url=os.environ.get("QMS_TSA_URL") or None,
        signer=signer,
    )
    return Rendered(signed, level)


def _store(
    session: Session,
    settings: Settings,
    row: ReportVersion,
    content: bytes,
    sites: tuple[str, ...] = (),
) -> None:
    files.hold_generation_lock(session, settings)
    path = files.reports_dir(settings) / row.file_name
    if path.exists():
        raise Conflict(_("a report file %(name)s exists already", name=row.file_name))
    files.track(session, path)
    files.write_atomically(path, content)
    files.crash_point("after-link")
    ledger.write(session, row)
    for site_id in sites:
        session.add(ReportSite(report_version_id=row.id, site_id=site_id))
    anchor(
        session,
        source="report",
        source_ref=row.id,
        head_seq=row.ledger_head_seq,
        head_hash=row.ledger_head_hash,
    )
    files.crash_point("after-row")


def _run_for(session: Session, who, site_id: str, run_id: str | None):
    from qms.quality.models import AuditRun

    if not run_id:
        raise Invalid(_("a site monthly report is built from an audit run: name one"))
    run = session.get(AuditRun, run_id)
    if run is None or run.site_id != site_id:
        raise NotFound(_("there is no audit run %(run)s", run=run_id))
    return run


def _ledger_verified(session: Session) -> dict[str, Any]:
    """The ledger check at generation, as the report states it (see `ledgercheck`)."""
    from qms.reports.ledgercheck import ledger_check

    return ledger_check(session)


def month_scope(site_id: str, period: str):
    """The audit scope of a site's month (every unit with a step performed in it)."""
    from qms.quality.audits import AuditScope

    first, last = report_data.month_bounds(period)
    return AuditScope(site_id=site_id, date_from=first, date_to=last)


def _prepared_by(who: User | Actor) -> str:
    return who.full_name if isinstance(who, User) else (getattr(who, "name", None) or "system")


def _regional_scope(
    session: Session, who: User | Actor, region_id: str, period: str, runs: dict[str, str]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The region's sites (who generates must prepare reports at every one of them) and
    the audit run of the year of each: one per site, of that site, covering the year."""
    from qms.quality.models import AuditRun
    from qms.regions.models import Region
    from qms.regions.service import sites_of_region

    region = session.get(Region, region_id)
    sites = tuple(sites_of_region(session, region_id))
    for site_id in sites:
        require(session, who, Permission.SIGN_REPORTS, site_id, action=_l("generate reports"))
    missing = [s for s in sites if s not in runs]
    if missing:
        raise Invalid(
            _(
                "a regional annual report is built from one audit run of the year per site: "
                "none named for %(sites)s",
                sites=", ".join(missing),
            )
        )
    first, last = report_data.year_bounds(period)
    heads = []
    for site_id in sites:
        run = session.get(AuditRun, runs[site_id])
        if run is None or run.site_id != site_id:
            raise NotFound(_("there is no audit run %(run)s", run=runs[site_id]))
        scope = json.loads(run.scope)
        if scope.get("from") != first.isoformat() or scope.get("to") != last.isoformat():
            raise Invalid(
                _(
                    "the audit run %(run)s does not cover the year %(year)s",
                    run=run.id,
                    year=period,
                )
            )
        heads.append(json.loads(run.covers))
    head = max(heads, key=lambda h: h["seq"])
    return sites, {
        "region": {"id": region.id, "name": region.name},
        "audit_runs": {s: runs[s] for s in sites},
        "head": (head["seq"], head["hash"]),
    }


def year_scope(site_id: str, period: str):
    """The audit scope of a site's year (every unit with a step performed in it)."""
    from qms.quality.audits import AuditScope

    first, last = report_data.year_bounds(period)
    return AuditScope(site_id=site_id, date_from=first, date_to=last)


@dataclass
class Prepared:
    """A rendered, sealed report not yet registered (`register_report` stores it)."""

    row: ReportVersion
    pdf: bytes
    sites: tuple[str, ...] = ()  # the sites a regional report covers


def prepare_report(
    *,
    session: Session,
    settings: Settings,
    who: User | Actor,
    report_type: str,
    site_id: str | None = None,
    scope: str | None = None,
    period: str | None = None,
    language: str = "en",
    audit_run_id: str | None = None,
    audit_run_ids: dict[str, str] | None = None,
    now: datetime | None = None,
    timeout_s: float | None = None,
    renderer: render.PendingRender | None = None,
) -> Prepared:
    """Read the data up to the ledger's head, render and seal: nothing is written.

    A read session serves: appends are serialised and committed in seq order, so every
    entry up to the committed head is there to read, and no lock is held while rendering.
    `renderer`: a child the caller started (`render.start_render`) before the audit run
    the report is built from, so that WeasyPrint loads meanwhile; else one starts here.
    """
    now = now or utcnow()
    language = language_code(language)
    site_id, scope, period = _scope_of(session, report_type, site_id, scope, period)
    require(session, who, Permission.SIGN_REPORTS, site_id, action=_l("generate reports"))
    # The key first: without one, nothing is read or rendered for a report never sealed.
    signing = keys.signing_key(settings)
    head_seq, head_hash = report_data.ledger_head(session)
    extra: dict[str, Any] = {}
    sites: tuple[str, ...] = ()
    if report_type == REGIONAL_ANNUAL:
        sites, extra = _regional_scope(session, who, scope, period, audit_run_ids or {})
        head_seq, head_hash = extra.pop("head")
        audit_run_id = None
    elif report_type == SITE_MONTHLY:
        run = _run_for(session, who, site_id, audit_run_id)
        covers = json.loads(run.covers)
        head_seq, head_hash = covers["seq"], covers["hash"]
        audit_run_id = run.id
    else:
        audit_run_id = None
    # WeasyPrint starts in its child (if it has not yet) while the data is read and the
    # template filled.
    with renderer or render.start_render() as pending:
        key = report_key(report_type, site_id, scope, period, language)
        number = _next_version(session, key)
        version_id = f"{key}/v{number}"
        generator = generator_version()
        report = _report_block(
            version_id,
            {
                "type": report_type,
                "site_id": site_id,
                "scope": scope,
                "period": period,
                "language": language,
                "ledger_head_seq": head_seq,
                "ledger_head_hash": head_hash,
                "generated_at": now.isoformat(timespec="seconds"),
                "generator": generator,
                "audit_run_id": audit_run_id,
                "prepared_by": _prepared_by(who),
                "ledger_verified": _ledger_verified(session),
                **extra,
            },
        )
        content = build_data(session, report)
        rendered = _render_and_seal(
            signing,
            report_type=report_type,
            content=content,
            report=report,
            people=_people(session, content),
            timeout_s=timeout_s or float(os.environ.get("QMS_REPORT_TIMEOUT_S", "120")),
            pending=pending,
        )
    row = ReportVersion(
        id=version_id,
        report_key=key,
        version=number,
        type=report_type,
        site_id=site_id,
        scope=scope,
        period=period,
        language=language,
        file_name=_file_name(site_id, version_id),
        sha256=hashlib.sha256(rendered.pdf).hexdigest(),
        size=len(rendered.pdf),
        ledger_head_seq=head_seq,
        ledger_head_hash=head_hash,
        audit_run_id=audit_run_id,
        generated_at=now,
        generated_by_id=_who_id(who),
        pdf_signature=rendered.level,
        generator=generator,
    )
    return Prepared(row, rendered.pdf, sites)


def register_report(*, session: Session, settings: Settings, prepared: Prepared) -> ReportVersion:
    """Write the file atomically and append its registry row; the caller commits.

    Conflict if another version of the report was registered meanwhile (generate again).
    """
    row = prepared.row
    if _next_version(session, row.report_key) != row.version:
        raise Conflict(
            _(
                "another version of %(report)s was registered meanwhile: generate it again",
                report=row.report_key,
            )
        )
    _store(session, settings, row, prepared.pdf, prepared.sites)
    return row


def generate_report(*, session: Session, settings: Settings, **request) -> ReportVersion:
    """`prepare_report` and `register_report` in one session (see both); the caller commits."""
    prepared = prepare_report(session=session, settings=settings, **request)
    return register_report(session=session, settings=settings, prepared=prepared)


def approve_report(
    *,
    session: Session,
    settings: Settings,
    version_id: str,
    by: User,
    credential,
    freshness_minutes: int,
    now: datetime | None = None,
    lockout=None,
) -> ReportVersion:
    """The quality officer's approval: a password signature, then the PDF signed again."""
    from qms.records.signatures import authenticate_signer

    now = now or utcnow()
    draft = visible_version(session, by, version_id, permission=Permission.SIGN_REPORTS)
    for site_id in covered_sites(session, draft) or (draft.site_id,):
        require(session, by, Permission.SIGN_REPORTS, site_id, action=_l("approve reports"))
    state = status_of(session, draft)
    if state.superseded_by is not None:
        raise Conflict(
            _(
                "%(report)s is superseded by %(newer)s: approve the current version",
                report=draft.id,
                newer=state.superseded_by,
            )
        )
    if draft.approved_at is not None:
        raise Conflict(_("%(report)s is approved already", report=draft.id))
    method = authenticate_signer(
        session=session,
        user=by,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
    )
    original = read_file(settings, draft)
    number = _next_version(session, draft.report_key)
    version_id = f"{draft.report_key}/v{number}"
    signed, level = pdf.sign(
        original,
        keys.signing_key(settings),
        field_name="qms-approval",
        reason=f"approved: {draft.id}",
        name=by.full_name,
        tsa_url=os.environ.get("QMS_TSA_URL") or None,
        xmp_values={"reportId": version_id},
    )
    row = ReportVersion(
        id=version_id,
        report_key=draft.report_key,
        version=number,
        type=draft.type,
        site_id=draft.site_id,
        scope=draft.scope,
        period=draft.period,
        language=draft.language,
        file_name=_file_name(draft.site_id, version_id),
        sha256=hashlib.sha256(signed).hexdigest(),
        size=len(signed),
        ledger_head_seq=draft.ledger_head_seq,
        ledger_head_hash=draft.ledger_head_hash,
        audit_run_id=draft.audit_run_id,
        generated_at=draft.generated_at,
        generated_by_id=draft.generated_by_id,
        approves_id=draft.id,
        approved_at=now,
        approved_by_id=by.id,
        approval_method=method,
        pdf_signature=level,
        generator=draft.generator,
    )
    _store(session, settings, row, signed, covered_sites(session, draft))
    return row


# --- reading the registry --------------------------------------------------------------


@dataclass(frozen=True)
class VersionState:
    current: bool
    superseded_by: str | None


def status_of(session: Session, row: ReportVersion) -> VersionState:
    """Current, or superseded by the next version of the same report (derived, never stored)."""
    newer = session.exec(
        select(ReportVersion.id)
        .where(ReportVersion.report_key == row.report_key, ReportVersion.version > row.version)
        .order_by(col(ReportVersion.version))
        .limit(1)
    ).first()
    return VersionState(newer is None, newer)


def states_of(rows: list[ReportVersion]) -> dict[str, VersionState]:
    """The state of each of `rows`, from the rows themselves (all versions of their keys)."""
    by_key: dict[str, list[ReportVersion]] = {}
    for row in rows:
        by_key.setdefault(row.report_key, []).append(row)
    out = {}
    for versions in by_key.values():
        versions.sort(key=lambda r: r.version)
        for before, after in zip(versions, versions[1:] + [None], strict=True):
            out[before.id] = VersionState(after is None, after.id if after else None)
    return out


def list_versions(
    session: Session,
    who: User | Actor,
    *,
    approved_only: bool = False,
    site_id: str | None = None,
) -> list[ReportVersion]:
    """Every version the person may see (their sites), newest first."""
    from qms.accounts.access import member_site_ids

    require(session, who, Permission.VIEW_REPORTS | Permission.SIGN_REPORTS, site_id)
    statement = select(ReportVersion)
    if isinstance(who, User) or who.id is not None:
        statement = statement.where(
            col(ReportVersion.site_id).in_(member_site_ids(session, who.id))
        )
    if site_id is not None:
        statement = statement.where(ReportVersion.site_id == site_id)
    rows = list(session.exec(statement.order_by(col(ReportVersion.ledger_seq).desc())))
    if isinstance(who, User) or who.id is not None:
        mine = set(member_site_ids(session, who.id))
        covered = _covered_sites_of(session, [r.id for r in rows if r.type == REGIONAL_ANNUAL])
        rows = [r for r in rows if covered.get(r.id, set()) <= mine]
    if approved_only or not _prepares_reports(who):
        rows = [r for r in rows if r.approved_at is not None]
    return rows


def visible_version(
    session: Session, who: User | Actor, version_id: str, *, permission: Permission
) -> ReportVersion:
    """One version, if `who` may see it; another site's answers like a missing one."""
    row = session.get(ReportVersion, version_id)
    if row is None:
        raise NotFound(_("there is no report %(report)s", report=version_id))
    sites = covered_sites(session, row) or (row.site_id,)
    if (isinstance(who, User) or who.id is not None) and not belongs_to_every(
        session, who.id, sites
    ):
        # A regional report is seen only by someone of every site it covers.
        raise NotFound(_("there is no report %(report)s", report=version_id))
    for site_id in sites:
        require(session, who, permission, site_id, action=_l("read reports"))
    if row.approved_at is None and not _prepares_reports(who):
        # Regulators see approved reports only: a draft answers like a missing report.
        raise NotFound(_("there is no report %(report)s", report=version_id))
    return row


def covered_sites(session: Session, row: ReportVersion) -> tuple[str, ...]:
    """The sites a regional report version covers (empty for a site's own report)."""
    return tuple(sorted(_covered_sites_of(session, [row.id]).get(row.id, ())))


def _covered_sites_of(session: Session, version_ids: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for start in range(0, len(version_ids), 500):
        for version_id, site_id in session.exec(
            select(ReportSite.report_version_id, ReportSite.site_id).where(
                col(ReportSite.report_version_id).in_(version_ids[start : start + 500])
            )
        ):
            out.setdefault(version_id, set()).add(site_id)
    return out


def _prepares_reports(who: User | Actor) -> bool:
    from qms.accounts.roles import permissions_of

    granted = permissions_of(who.role) if isinstance(who, User) else who.permissions
    return Permission.SIGN_REPORTS in granted


def read_file(settings: Settings, row: ReportVersion) -> bytes:
    path = files.reports_dir(settings) / row.file_name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise Conflict(
            _("the file of %(report)s is missing: %(path)s", report=row.id, path=str(path))
        ) from None
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise Conflict(
            _("the file of %(report)s no longer matches its registered hash", report=row.id)
        )
    return content


def find_by_hash(session: Session, sha256: str) -> ReportVersion | None:
    return session.exec(select(ReportVersion).where(ReportVersion.sha256 == sha256)).first()


# --- verifying a file ------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    sha256: str
    row: ReportVersion | None
    state: VersionState | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def verify_file(session: Session, settings: Settings, content: bytes) -> Verification:
    """Is this PDF a registered, intact, signed report whose data matches the ledger?"""
    digest = hashlib.sha256(content).hexdigest()
    row = find_by_hash(session, digest)
    result = Verification(digest, row, status_of(session, row) if row else None)
    add = result.checks.append
    if row is None:
        add(Check("registry", False, _("sha256 %(hash)s is not in the registry", hash=digest)))
    else:
        add(Check("registry", True, _("registered as %(report)s", report=row.id)))
        if result.state.current:
            add(Check("status", True, _("current version")))
        else:
            add(
                Check(
                    "status",
                    True,
                    _("superseded by %(newer)s", newer=result.state.superseded_by),
                )
            )
    # Signatures.
    try:
        roots_path = keys.trust_roots_path(settings)
        roots = [roots_path.read_bytes()] if roots_path.is_file() else []
        signatures = pdf.check_signatures(content, roots)
    except Exception as exc:  # a damaged file: pyHanko's own errors are many
        signatures = []
        add(
            Check(
                "signature",
                False,
                _("the signatures cannot be read: %(problem)s", problem=str(exc)[:200]),
            )
        )
    else:
        if not signatures:
            add(Check("signature", False, _("the file carries no signature")))
        for s in signatures:
            add(
                Check(
                    "signature",
                    s.ok,
                    _(
                        "%(field)s by %(signer)s: intact %(intact)s, trusted %(trusted)s",
                        field=s.field,
                        signer=s.signer,
                        intact=s.intact,
                        trusted=s.trusted,
                    ),
                )
            )
        if signatures and not signatures[-1].covers_whole_file:
            add(Check("signature", False, _("bytes were added after the last signature")))
    # What can be checked of PDF/A-3 without veraPDF.
    try:
        pdfa = pdf.pdfa_problems(content)
    except Exception as exc:
        pdfa = [str(exc)[:200]]
    add(
        Check(
            "pdf/a",
            not pdfa,
            _("PDF/A-3 identification, output intent, embedded fonts and attachments in order")
            if not pdfa
            else _("PDF/A-3: %(problems)s", problems="; ".join(pdfa)),
        )
    )
    # Embedded data against the ledger.
    try:
        embedded = json.loads(pdf.attachments(content)[JSON_NAME])
        report = embedded["report"]
        head_seq, head_hash = report["ledger_head"]["seq"], report["ledger_head"]["hash"]
    except Exception:
        add(Check("data", False, _("the file carries no readable report data")))
        return result
    entry = session.get(LedgerEntry, head_seq) if head_seq else None
    if head_seq and (entry is None or entry.hash != head_hash):
        add(
            Check(
                "ledger",
                False,
                _("the ledger entry %(seq)s the report covers has changed or gone", seq=head_seq),
            )
        )
        return result
    add(
        Check(
            "ledger",
            True,
            _("ledger head %(seq)s %(hash)s is in the chain", seq=head_seq, hash=head_hash[:12]),
        )
    )
    try:
        rebuilt = build_data(session, report)
    except Exception as exc:
        add(Check("data", False, str(exc)))
        return result
    same = rebuilt == embedded["data"]
    add(
        Check(
            "data",
            same,
            _("the embedded data matches the ledger up to entry %(seq)s", seq=head_seq)
            if same
            else _("the embedded data differs from the ledger up to entry %(seq)s", seq=head_seq),
        )
    )
    return result
