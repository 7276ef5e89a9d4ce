"""The pages of a regional annual report: blocks per site, charts from `qms.charts`.

The report summarises (sites × products, a year); the records travel in its attachments.
Words come in the report's language; the numbers are those of the data the PDF embeds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qms import charts
from qms.core.clock import local
from qms.core.i18n import _
from qms.reports.language import render_template
from qms.reports.models import REGIONAL_ANNUAL, REPORT_TYPE_LABELS


def regional_charts(content: dict[str, Any]) -> list[charts.Chart]:
    """Volumes, compliance and findings per site, and the monthly trends of the region."""
    from qms.records.guards import SEVERITY_LABELS

    sites = [s["id"] for s in content["sites"]]
    months = [m[-2:] for m in content["months"]]
    units = {s: 0 for s in sites}
    doses = {s: 0 for s in sites}
    for row in content["volumes"]:
        units[row["site"]] += row["units"]
        doses[row["site"]] += row["doses"]
    made = [
        charts.bar_chart(
            _("Units and doses administered per site"),
            sites,
            [(_("Units"), [units[s] for s in sites]), (_("Doses"), [doses[s] for s in sites])],
            category_header=_("Site"),
        ),
        charts.bar_chart(
            _("Findings by severity per site"),
            sites,
            [
                (
                    str(SEVERITY_LABELS.get(severity, severity)),
                    [row[severity] for row in content["findings_by_severity"]],
                )
                for severity in ("critical", "major", "minor")
            ],
            stacked=True,
            category_header=_("Site"),
        ),
        charts.line_chart(
            _("Compliance per month (units without findings)"),
            months,
            [(row["site"], row["compliant_percent"]) for row in content["trends"]],
            category_header=_("Month"),
        ),
        charts.bar_chart(
            _("Units per month"),
            months,
            [(row["site"], row["units"]) for row in content["trends"]],
            stacked=True,
            category_header=_("Month"),
        ),
        charts.bar_chart(
            _("Deviations opened and closed per site"),
            sites,
            [
                (_("Opened"), [row["opened"] for row in content["deviation_counts"]]),
                (_("Closed"), [row["closed"] for row in content["deviation_counts"]]),
            ],
            category_header=_("Site"),
        ),
    ]
    return made


def regional_html(content: dict[str, Any], report: dict[str, Any]) -> str:
    from qms.quality.capa import STATUS_LABELS as CAPA_STATUS_LABELS
    from qms.quality.deviations import CLASSIFICATION_LABELS
    from qms.quality.deviations import STATUS_LABELS as DEVIATION_STATUS_LABELS

    tz = content["site"]["timezone"]
    per_site: dict[str, dict[str, Any]] = {
        s["id"]: {"site": s, "volumes": [], "compliance": []} for s in content["sites"]
    }
    for row in content["volumes"]:
        per_site[row["site"]]["volumes"].append(row)
    for row in content["compliance"]:
        per_site[row["site"]]["compliance"].append(row)
    for key in ("findings_by_severity", "deviation_counts", "excursions", "trends"):
        for row in content[key]:
            per_site[row["site"]][key] = row
    for run in content["audit_runs"]:
        per_site[run["site"]]["run"] = run
    totals = {
        "units": sum(r["units"] for r in content["volumes"]),
        "doses": sum(r["doses"] for r in content["volumes"]),
        "findings": sum(r["counts"]["findings"] for r in content["audit_runs"]),
        "records": sum(r["counts"]["records"] for r in content["audit_runs"]),
        "opened": sum(r["opened"] for r in content["deviation_counts"]),
        "closed": sum(r["closed"] for r in content["deviation_counts"]),
    }
    return render_template(
        "reports/regional_annual.html",
        report=report,
        title=str(REPORT_TYPE_LABELS[REGIONAL_ANNUAL]),
        data=content,
        per_site=per_site,
        volumes={(r["site"], r["checklist"]): r for r in content["volumes"]},
        totals=totals,
        charts=regional_charts(content),
        classification_label=lambda c: str(CLASSIFICATION_LABELS.get(c, c or "—")),
        deviation_status_label=lambda c: str(DEVIATION_STATUS_LABELS.get(c, c)),
        capa_status_label=lambda c: str(CAPA_STATUS_LABELS.get(c, c)),
        when=lambda iso: (
            local(datetime.fromisoformat(iso.replace("Z", "+00:00")), tz) if iso else "—"
        ),
        generated_local=local(datetime.fromisoformat(report["generated_at"]), tz),
        html_lang="zh-CN" if report["language"] == "zh_CN" else "en",
    )
