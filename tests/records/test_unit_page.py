"""The unit page shows each record with its signatures, and corrections beside the original."""

from __future__ import annotations

import json
import re
from datetime import timedelta

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
    other = client.get(f"/units/{unit.id}")
    missing = client.get("/units/U-does-not-exist")
    # Another site's unit answers exactly like a missing one: ids cannot be enumerated.
    assert other.status_code == missing.status_code == 404
    assert "SH-01" not in other.get_data(as_text=True)


def test_regulators_do_not_see_unit_records(client, login, make_user, corrected_unit):
    unit, _, _ = corrected_unit
    login(make_user("regulator"))
    assert client.get(f"/units/{unit.id}").status_code == 403


@pytest.fixture
def unit_with_findings(session, registry, make_user, make_unit, log, now):
    """Findings that stay after a correction, one that a correction removes, a window overdue."""
    nurse = make_user("nurse", username="li.na", full_name="Li Na")
    witness = make_user("physician", username="zhang.min", full_name="Dr Zhang Min")
    quality = make_user("quality_officer", username="liu.yang", full_name="Liu Yang")
    unit = make_unit(by=nurse, unit_id="U-88", at=now - timedelta(hours=5))
    log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        at=now - timedelta(hours=4),
        fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0043"},
        reason="wristband replaced after the check",
    )
    first = log(
        unit,
        "thaw_end",
        by=nurse,
        at=now - timedelta(hours=3),
        fields={"temperature_c": 30},
        reason="bath too warm",
    ).record
    for value, why in ((28, "misread the display"), (27, "misread it again")):
        correct_step(
            session=session,
            registry=registry,
            record_id=first.id,
            by=quality,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            reason=why,
            fields={"temperature_c": value},
        )
    log(unit, "receipt", by=nurse, at=now - timedelta(hours=4, minutes=30), fields={})
    return unit, nurse


def test_unit_page_shows_the_findings_and_due_items_of_the_records_that_count(
    client, login, unit_with_findings
):
    unit, nurse = unit_with_findings
    login(nurse)
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    checks = html.split('data-testid="assessment"')[1].split("</section>")[0]
    shown = re.findall(r'data-testid="finding"><strong>(\w+)</strong> ([\w.]+) — ', checks)
    # Critical first; the thaw temperature judged on the latest correction (27 °C); the
    # infusion is late (its window is open past its limit).
    assert shown == [
        ("critical", "testcart.same_patient"),
        ("major", "testcart.thaw_temperature"),
        ("major", "testcart.thaw_to_infusion"),
    ]
    assert "actual 27" in checks and "actual 30" not in checks and "actual 28" not in checks
    due = re.findall(r'<li data-testid="due">(.*?)</li>', checks)
    assert len(due) == 1 and due[0].startswith("Infusion finished by ")
    assert "(overdue by 2h30m" in due[0]
    # The original and both corrections stay on the page; the last correction counts.
    assert html.count('data-testid="correction"') == 2
    assert html.count('class="superseded"') == 1  # the original
    assert html.count(", superseded</div>") == 1  # the first correction


def test_switching_the_language_changes_the_finding_text(
    client, login, session, make_user, make_unit, log
):
    """A finding is chained as a code and parameters; its words follow the reader's language,
    both the live finding and the one stored with the record."""
    nurse = make_user("nurse", username="li.na", full_name="Li Na")
    unit = make_unit(by=nurse, unit_id="U-88")
    logged = log(unit, "thaw_end", by=nurse, fields={"temperature_c": 31}, reason="bath too warm")
    (finding,) = [f for f in logged.findings if f.code == "field.out_of_range"]
    stored = json.loads(logged.record.findings)
    assert finding.code in [doc["code"] for doc in stored]
    assert not any("message" in doc for doc in stored)
    login(nurse)
    english = client.get(f"/units/{unit.id}", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "above the maximum of 25" in english
    nurse.language = "zh_CN"
    session.add(nurse)
    session.flush()
    chinese = client.get(f"/units/{unit.id}", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "above the maximum" not in chinese
    assert chinese.count("高于最大值") >= 2  # the live finding and the one kept with the record


def test_bidi_controls_in_record_text_are_shown_escaped(
    client, login, session, registry, make_user, make_unit, log
):
    nurse = make_user("nurse", username="li.na", full_name="Li \u202eaN")
    unit = make_unit(by=nurse, unit_id="U-78")
    original = log(
        unit, "thaw_end", by=nurse, fields={"temperature_c": 2.1}, reason="late \u2066entry"
    ).record
    correct_step(
        session=session,
        registry=registry,
        record_id=original.id,
        by=make_user("quality_officer"),
        credential=PasswordEntry(PASSWORD),
        freshness_minutes=5,
        reason="typo \u202egnorw\u202c fixed",
        fields={"temperature_c": 21},
    )
    login(nurse)
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert "\u202e" not in html and "\u202c" not in html
    assert "typo [U+202E]gnorw[U+202C] fixed" in html
    assert "Li [U+202E]aN" in html and "late [U+2066]entry" in html
