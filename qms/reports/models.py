"""The report registry: one append-only, chained row per report version (a file on disk).

A version is never updated. Its state is derived from the versions after it: the
latest version of a report (type, scope, period, language) is current, every earlier
one is superseded by the next. An approval is a new version: the approved file (the
draft's rendering, signed again after the quality officer's password signature) names
the draft it approves (`approves_id`) and supersedes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from qms.core.i18n import _l
from qms.core.ledger import NUMBER, TIME, USER, declare, keep_append_only
from qms.core.ledger import Chained as C
from qms.core.models import ledger_seq_column
from qms.db import UTCDateTime

SITE_MONTHLY = "site-monthly"
UNIT_DOSSIER = "unit-dossier"
REGIONAL_ANNUAL = "regional-annual"
REPORT_TYPES = (SITE_MONTHLY, UNIT_DOSSIER, REGIONAL_ANNUAL)
REPORT_TYPE_LABELS = {
    SITE_MONTHLY: _l("Site monthly report"),
    UNIT_DOSSIER: _l("Unit dossier"),
    REGIONAL_ANNUAL: _l("Regional annual report"),
}
# Reports that leave the hospital: no patient reference, no chain-of-identity id in clear.
LEAVES_THE_HOSPITAL = (SITE_MONTHLY, REGIONAL_ANNUAL)
REPORT_LANGUAGES = ("en", "zh_CN")


class ReportVersion(SQLModel, table=True):
    """One generated report file: what it covers, its hash, who made and approved it."""

    __tablename__ = "report_version"
    __table_args__ = (
        UniqueConstraint("report_key", "version"),
        Index("ix_report_version_site_type", "site_id", "type"),
    )

    id: str = Field(primary_key=True, max_length=128)  # "<report key>/v<n>"
    # type:site:scope:period:language; at most one current version per key.
    report_key: str = Field(max_length=120, index=True)
    version: int
    type: str = Field(max_length=32)
    site_id: str = Field(foreign_key="site.id", max_length=32)
    scope: str = Field(max_length=64)  # the site id, or the unit id of a dossier
    period: str = Field(max_length=16)  # 2026-10, 2026, or "all" (a dossier)
    language: str = Field(max_length=8)
    file_name: str = Field(max_length=200)  # under <instance>/reports/
    sha256: str = Field(max_length=64, index=True)
    size: int
    ledger_head_seq: int  # the ledger entries the report covers: seq 1..head
    ledger_head_hash: str = Field(max_length=64)
    audit_run_id: str | None = Field(default=None, max_length=96)
    generated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    generated_by_id: int | None = Field(default=None, foreign_key="app_user.id")  # None: system
    approves_id: str | None = Field(default=None, max_length=128)
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    approved_by_id: int | None = Field(default=None, foreign_key="app_user.id")
    approval_method: str | None = Field(default=None, max_length=16)  # password | session
    pdf_signature: str = Field(max_length=16)  # PAdES level: B-B or B-T
    generator: str = Field(max_length=120)
    ledger_seq: int = Field(sa_column=ledger_seq_column())


REPORT_VERSION = declare(
    ReportVersion,
    kind="report_version",
    chained=[
        C("id"),
        C("report_key"),
        C("version", encoding=NUMBER),
        C("report_type", "type"),
        C("site", "site_id"),
        C("scope"),
        C("period"),
        C("language"),
        C("file_name"),
        C("sha256"),
        C("size", encoding=NUMBER),
        C("ledger_head_seq", encoding=NUMBER),
        C("ledger_head_hash"),
        C("audit_run", "audit_run_id"),
        C("generated_at", encoding=TIME),
        C("generated_by", "generated_by_id", USER),
        C("approves", "approves_id"),
        C("approved_at", encoding=TIME),
        C("approved_by", "approved_by_id", USER),
        C("approval_method"),
        C("pdf_signature"),
        C("generator"),
    ],
)


@keep_append_only
class ReportSite(SQLModel, table=True):
    """The sites a regional report version covers (append-only, written with its row):
    who may see the version follows from them, whatever the region holds later."""

    __tablename__ = "report_site"

    report_version_id: str = Field(
        foreign_key="report_version.id", primary_key=True, max_length=128
    )
    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=32)
