"""Fixtures for reports: the demonstration hospital, demonstration keys, PDF readers."""

from __future__ import annotations

import hashlib
import io

import pikepdf
import pytest

from qms.accounts.service import Actor
from qms.core import ledger
from qms.reports import service
from qms.reports.keys import make_demo_keys
from qms.reports.models import UNIT_DOSSIER, ReportVersion


@pytest.fixture
def demo(session):
    from qms.demo import load_demo

    load_demo(session=session)
    session.flush()
    return session


@pytest.fixture
def demo_keys(settings):
    return make_demo_keys(settings, site_name="Test Hospital")


@pytest.fixture
def dossier(demo, settings, demo_keys):
    """Generate a unit dossier of the demonstration's Kymriah unit (language chosen)."""

    def make(language: str = "en", unit: str = "K-2026-001"):
        return service.generate_report(
            session=demo,
            settings=settings,
            who=Actor.system("test"),
            report_type="unit-dossier",
            scope=unit,
            language=language,
        )

    return make


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def registered_dossier(session, settings, unit, by, now) -> ReportVersion:
    """An approved unit dossier registered through `service.register_report`, with a blank
    page for its file: for tests of what the registry and its pages do, not of rendering."""
    document = pikepdf.new()
    document.add_blank_page()
    out = io.BytesIO()
    document.save(out)
    pdf = out.getvalue()
    key = service.report_key(UNIT_DOSSIER, unit.site_id, unit.id, "all", "en")
    head_seq, head_hash = ledger.head(session)
    row = ReportVersion(
        id=f"{key}/v1",
        report_key=key,
        version=1,
        type=UNIT_DOSSIER,
        site_id=unit.site_id,
        scope=unit.id,
        period="all",
        language="en",
        file_name=f"{unit.site_id}/{unit.id}-dossier-v1.pdf",
        sha256=hashlib.sha256(pdf).hexdigest(),
        size=len(pdf),
        ledger_head_seq=head_seq,
        ledger_head_hash=head_hash,
        generated_at=now,
        generated_by_id=by.id,
        approved_at=now,
        approved_by_id=by.id,
        approval_method="password",
        pdf_signature="B-B",
        generator="test",
    )
    return service.register_report(
        session=session, settings=settings, prepared=service.Prepared(row, pdf)
    )
