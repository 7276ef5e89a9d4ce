"""Typed field values: a number is a number, a scan is parsed, a freezer exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qms.accounts import service as accounts
from qms.checklists.language import Registry
from qms.core.errors import Invalid
from qms.records import queries, service
from qms.records.fields import parse_field_values
from qms.records.models import StepRecord
from qms.records.signatures import PasswordEntry
from qms.storage import service as storage

SHIPPED = Registry.from_directory()
KYMRIAH = SHIPPED.get("kymriah")


def parse(step: str, **values):
    return parse_field_values(KYMRIAH.steps[step], values, equipment_exists=lambda e: e == "LN2-01")


def test_form_text_is_read_as_the_field_type():
    assert parse("infusion_start", rate_ml_min="15", filter="none") == {
        "rate_ml_min": 15,
        "filter": "none",
    }
    assert parse("infusion_start", rate_ml_min="12,5 mL/min")["rate_ml_min"] == 12.5
    assert parse("storage_in", equipment="LN2-01", temperature_c="−160")["temperature_c"] == -160
    assert parse("receipt", logger_reviewed="yes")["logger_reviewed"] is True
    # A scanned chain-of-identity id, as a scanner in lower case with spaces sends it.
    assert parse("receipt", coi_id="  chg123426abc123 ")["coi_id"] == "CHG123426ABC123"


@pytest.mark.parametrize(
    ("step", "values", "message"),
    [
        ("infusion_start", {"rate_ml_min": "fast"}, "must be a number in mL/min"),
        ("infusion_start", {"rate_ml_min": True}, "not yes/no"),
        ("infusion_start", {"filter": "sieve"}, "must be one of none, leukodepleting, 0.2um"),
        ("receipt", {"logger_reviewed": "maybe"}, "must be yes or no"),
        ("receipt", {"coi_id": "=G12341765432170"}, "chain"),
        ("storage_in", {"equipment": "FREEZER-9"}, "not storage equipment in use"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(step, values, message):
    with pytest.raises(Invalid, match=message) as refused:
        parse(step, **values)
    assert "Nothing was recorded" in str(refused.value)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(Invalid) as refused:
        parse("infusion_start", rate_ml_min="x", filter="y")
    # Each by its label ("infusion rate", "in-line filter"), never by its id.
    text = str(refused.value)
    assert "infusion rate" in text and "in-line filter" in text and "rate_ml_min" not in text


def test_log_step_checks_types_and_stores_scans_normalised(session, make_user):
    pharmacist = make_user("pharmacist")
    storage.register_equipment(
        session=session,
        actor=accounts.Actor.of(pharmacist),
        equipment_id="LN2-01",
        kind="ln2_vapour",
        site_id="SH-01",
    )
    start = datetime.now(UTC) - timedelta(hours=3)
    service.register_unit(
        session=session,
        registry=SHIPPED,
        by=pharmacist,
        unit_id="K-1",
        checklist_id="kymriah",
        site_id="SH-01",
        patient_ref="P-0042",
        coi_id="CHG123426ABC123",
        profile="cn",
        now=start,
    )

    def log(step, minutes, fields):
        return service.log_step(
            session=session,
            registry=SHIPPED,
            unit_id="K-1",
            step=step,
            performed_at=start + timedelta(minutes=minutes),
            fields=fields,
            by=pharmacist,
            credential=PasswordEntry("correct-horse-battery"),
            freshness_minutes=5,
        )

    receipt = {
        "coi_id": "chg123426abc123",
        "shipper_id": "DS-1",
        "logger_id": "LG-1",
        "logger_reviewed": "yes",
        "shipper_temperature_c": "-170",
    }
    done = log("receipt", 10, receipt)
    assert done.findings == []  # the scan matches the unit once normalised
    stored = session.get(StepRecord, done.record.id)
    assert '"coi_id":"CHG123426ABC123"' in stored.fields
    assert '"logger_reviewed":true' in stored.fields
    before = len(queries.step_history(session, "K-1"))
    with pytest.raises(Invalid, match="not storage equipment in use at this site"):
        log("storage_in", 20, {"equipment": "LN2-99", "temperature_c": -160})
    assert len(queries.step_history(session, "K-1")) == before
