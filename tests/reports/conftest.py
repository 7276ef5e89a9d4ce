"""Fixtures for reports: the demonstration hospital, demonstration keys, PDF readers."""

from __future__ import annotations

import io

import pytest

from qms.accounts.service import Actor
from qms.reports import service
from qms.reports.keys import make_demo_keys


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
