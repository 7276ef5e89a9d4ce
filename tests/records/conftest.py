"""Fixtures for record tests: a small test checklist, units, and signed steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qms.checklists.language import Registry
from qms.records import service
from qms.records.signatures import PasswordEntry, WitnessCredential
from qms.web.app import runtime_of

DEFAULT_PASSWORD = "correct-horse-battery"  # the root conftest's make_user default

CHECKLISTS = Path(__file__).parent / "checklists"
FRESHNESS = 5


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry.from_directory(CHECKLISTS)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def make_unit(session, registry, make_user) -> Callable:
    counter = iter(range(1, 10_000))

    def make(*, by=None, unit_id: str | None = None, site: str = "SH-01", at=None, **kwargs):
        by = by or make_user("nurse", sites=(site,))
        unit = service.register_unit(
            session=session,
            registry=registry,
            by=by,
            unit_id=unit_id or f"U-{next(counter)}",
            checklist_id=kwargs.pop("checklist_id", "testcart"),
            site_id=site,
            patient_ref=kwargs.pop("patient_ref", "P-0042"),
            coi_id=kwargs.pop("coi_id", "CHG123426ABC123"),
            now=at or datetime.now(UTC) - timedelta(hours=2),
            **kwargs,
        )
        session.flush()
        return unit

    return make


@pytest.fixture
def log(session, registry) -> Callable:
    """Record a step as `by`, signing with the password (and a witness if given)."""

    def do(unit, step, *, by, at=None, fields=None, witness=None, reason=None, **kwargs):
        return service.log_step(
            session=session,
            registry=registry,
            unit_id=unit.id,
            step=step,
            performed_at=at or datetime.now(UTC) - timedelta(minutes=30),
            fields=fields or {},
            by=by,
            credential=kwargs.pop("credential", PasswordEntry(DEFAULT_PASSWORD)),
            witness=WitnessCredential(
                witness.username, kwargs.pop("witness_password", DEFAULT_PASSWORD)
            )
            if witness is not None
            else None,
            reason=reason,
            freshness_minutes=FRESHNESS,
            **kwargs,
        )

    return do


@pytest.fixture
def app(app, registry):
    """The app judges units with the same checklists as the records the test wrote."""
    runtime_of(app).registry = registry
    return app
