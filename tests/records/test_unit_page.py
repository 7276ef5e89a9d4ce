"""The unit page shows each record with its signatures, and corrections beside the original."""

from __future__ import annotations

import pytest

from qms.records.corrections import correct_step
from qms.records.signatures import PasswordEntry

PASSWORD = "correct-horse-battery"


@pytest.fixture
def corrected_unit(session, registry, make_user, make_unit, log):
    nurse = make_user("nurse", username="li.na", full_name="Li Na")
    witness = make_user("physician", username="zhang.min", full_name="Dr Zhang Min")
    quality = make_user("quality_officer", username="liu.yang", full_name="Liu Yang")
    unit = make_unit(by=nurse, unit_id="U-77")
    log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
    )
    original = log(unit, "thaw_end", by=nurse, fields={"temperature_c": 2.1}).record
    correct_step(
        session=session,
        registry=registry,
        record_id=original.id,
        by=quality,
        credential=PasswordEntry(PASSWORD),
        freshness_minutes=5,
        reason="decimal point misplaced",
        fields={"temperature_c": 21},
    )
    return unit, nurse, quality


def test_unit_page_shows_original_correction_who_when_why(client, login, corrected_unit):
    unit, nurse, _ = corrected_unit
    login(nurse)
    page = client.get(f"/units/{unit.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Li Na — performed" in html and "Dr Zhang Min — witnessed" in html
    assert "2.1" in html and "21" in html  # the original value stays visible
    assert "decimal point misplaced" in html
    assert "corrected" in html and "by Liu Yang (liu.yang)" in html
    assert "Liu Yang — performed" in html  # the correction is signed
    assert html.count('data-testid="correction"') == 1
    assert "+08:00" in html  # times in the site's zone


def test_unit_page_is_limited_to_the_units_site(client, login, make_user, corrected_unit):
    unit, _, _ = corrected_unit
    login(make_user("nurse", sites=("BJ-02",)))
    assert client.get(f"/units/{unit.id}").status_code == 403
    assert client.get("/units/U-does-not-exist").status_code == 404


def test_regulators_do_not_see_unit_records(client, login, make_user, corrected_unit):
    unit, _, _ = corrected_unit
    login(make_user("regulator"))
    assert client.get(f"/units/{unit.id}").status_code == 403
