"""Fixtures for quality tests: the record fixtures, and a unit whose infusion came late."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.records.conftest import app, log, make_unit, now, registry  # noqa: F401

# 2026-10-02 09:00 in Shanghai.
T0 = datetime(2026, 10, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def late_infusion(make_unit, log, make_user) -> Callable:  # noqa: F811
    """A unit infused `minutes` after its thaw ended (the limit is 30: later is major)."""
    nurse = make_user("nurse", username="li.na")
    witness = make_user("physician", username="wang.wei")

    def make(unit_id: str, *, at: datetime = T0, minutes: int = 45, site: str = "SH-01"):
        by = nurse if site == "SH-01" else make_user("nurse", sites=(site,))
        unit = make_unit(unit_id=unit_id, by=by, at=at - timedelta(hours=1), site=site)
        log(
            unit,
            "identity_check",
            by=by,
            witness=witness if site == "SH-01" else make_user("physician", sites=(site,)),
            at=at - timedelta(minutes=20),
            fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
            now=at - timedelta(minutes=20),
        )
        log(unit, "thaw_end", by=by, at=at, fields={"temperature_c": 20}, now=at)
        late = minutes > 30
        log(
            unit,
            "infusion_end",
            by=by,
            at=at + timedelta(minutes=minutes),
            reason="pump alarm delayed the start" if late else None,
            now=at + timedelta(minutes=minutes),
        )
        return unit

    return make
