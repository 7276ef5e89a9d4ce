"""Capture in the browser (server side): forms from the checklist, scanning, signatures, the live
check, corrections and registration, with the shipped Kymriah checklist."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlmodel import select

from qms.accounts.models import LoginEvent
from qms.accounts.service import Actor
from qms.checklists.language import Registry
from qms.records.models import StepRecord, Unit
from qms.storage.service import register_equipment
from tests.records.conftest import DEFAULT_PASSWORD

COI = "CHG123426ABC123"
OTHER_COI = "CHG123426XYZ999"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_directory()


@pytest.fixture
def ward(session, make_user, make_unit, log):
    """A Kymriah unit, its pharmacist, two nurses and a physician, and the site's freezer."""
    people = {
        "pharmacist": make_user("pharmacist", full_name="Chen Jie"),
        "nurse": make_user("nurse", full_name="Li Na"),
        "nurse2": make_user("nurse", full_name="Wang Wei"),
        "physician": make_user("physician", full_name="Zhang Min"),
    }
    register_equipment(
        session=session,
        actor=Actor.system("test"),
        equipment_id="LN2-01",
        kind="ln2_vapour",
        site_id="SH-01",
        description="vapour-phase LN2",
    )
    unit = make_unit(
        by=people["pharmacist"],
        checklist_id="kymriah",
        profile="us",
        coi_id=COI,
        at=datetime.now(UTC) - timedelta(hours=6),
    )
    session.commit()
    return unit, people


def _forms(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-step="([^"]+)"(.*?)</form>', html, re.S))


def _token(client, unit) -> str:
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _local(moment: datetime) -> str:
    return moment.astimezone(datetime.now().astimezone().tzinfo).strftime("%Y-%m-%dT%H:%M")


def _post_step(client, unit, step, fields, *, at=None, **extra):
    data = {f"f-{k}": v for k, v in fields.items()}
    data.update(extra)
    data.setdefault("password", DEFAULT_PASSWORD)
    data["csrf_token"] = _token(client, unit)
    if at is not None:
        data["performed_at"] = at
    else:
        data.setdefault("performed_at", _site_now())
    return client.post(f"/units/{unit.id}/steps/{step}", data=data)


def _site_now(minus: int = 10) -> str:
    # The test site's zone is Asia/Shanghai (make_site's default site).
    from zoneinfo import ZoneInfo

    moment = datetime.now(UTC) - timedelta(minutes=minus)
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


def _records(session, unit, step=None):
    session.expire_all()
    query = select(StepRecord).where(StepRecord.unit_id == unit.id)
    rows = list(session.exec(query))
    return [r for r in rows if step is None or r.step == step]


def test_forms_come_from_the_checklist_for_this_role_without_ids(client, login, ward):
    unit, people = ward
    login(people["pharmacist"])
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    forms = _forms(html)
    # A pharmacist may check the prescription and receive the unit now; storage waits.
    assert list(forms) == ["prescription_check", "receipt", "tocilizumab_check"]
    receipt = forms["receipt"]
    assert "Receipt from the manufacturer" in receipt
    assert "chain-of-identity id on the shipper" in receipt and 'class="scan"' in receipt
    assert 'type="radio"' in receipt  # yes/no
    assert "(°C)" in receipt  # the temperature's unit
    # No step or field id is shown as text: only as form names.
    shown = re.sub(r"<[^>]+>", " ", receipt)
    assert "shipper_temperature_c" not in shown and "receipt" not in shown.split()


def test_a_nurse_sees_the_ward_steps_only(client, login, ward):
    unit, people = ward
    login(people["nurse"])
    nurse_forms = _forms(client.get(f"/units/{unit.id}").get_data(as_text=True))
    assert "receipt" not in nurse_forms and "tocilizumab_check" in nurse_forms


def test_the_rate_limit_is_shown_next_to_its_field(client, login, ward, log):
    unit, people = ward
    _walk_to_infusion(log, unit, people)
    login(people["nurse"])
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    form = _forms(html)["infusion_start"]
    assert re.search(r"infusion rate.*?limit 10–20 mL/min", form, re.S)


def test_a_receipt_with_a_scanned_label_is_recorded_and_signed(client, login, ward, session):
    unit, people = ward
    login(people["pharmacist"])
    fields = {
        "coi_id": f" {COI}\r\n",  # as a keyboard-wedge scanner types it
        "shipper_id": "DS-1",
        "logger_id": "LG-1",
        "logger_reviewed": "yes",
        "shipper_temperature_c": "-170",
    }
    response = _post_step(client, unit, "receipt", fields)
    assert response.status_code == 302, re.findall(
        r"role=.alert.[^>]*>([^<]*)", response.get_data(as_text=True)
    )
    (record,) = _records(session, unit, "receipt")
    assert json.loads(record.fields)["coi_id"] == COI
    page = client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert "Chen Jie — performed" in page


def test_another_patients_label_is_refused_naming_the_label(client, login, ward, session):
    unit, people = ward
    login(people["pharmacist"])
    fields = {
        "coi_id": OTHER_COI,
        "shipper_id": "DS-1",
        "logger_id": "LG-1",
        "logger_reviewed": "yes",
        "shipper_temperature_c": "-170",
    }
    response = _post_step(client, unit, "receipt", fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "chain-of-identity id on the shipper" in html and OTHER_COI in html
    assert "another patient" in html and "Nothing was recorded" in html
    assert _records(session, unit, "receipt") == []


def test_the_scan_endpoint_fills_and_refuses(client, login, ward):
    unit, people = ward
    login(people["pharmacist"])
    token = _token(client, unit)
    good = client.post(f"/units/{unit.id}/scan", data={"code": f"{COI}\r", "csrf_token": token})
    assert good.json["valid"] and good.json["fills"] == {"coi_id": COI}
    other = client.post(f"/units/{unit.id}/scan", data={"code": OTHER_COI, "csrf_token": token})
    assert not other.json["valid"] and "another patient" in other.json["problems"][-1]
    bad = client.post(
        f"/units/{unit.id}/scan", data={"code": "G123417654321 70"[:-1] + "1", "csrf_token": token}
    )
    assert not bad.json["valid"]
    expired = client.post(
        f"/units/{unit.id}/scan",
        data={"code": "]d201095060001343521701010110ABC", "csrf_token": token},
    )
    assert not expired.json["valid"] and "expired" in expired.json["problems"][-1]


def _released(log, unit, people, start):
    """The prescription and the pharmacy's records up to the release from storage (200
    minutes after `start`): what the bedside identity check comes after."""

    def at(minutes):
        return start + timedelta(minutes=minutes)

    log(unit, "prescription_check", by=people["physician"], at=at(0),
        fields={"diagnosis": "DLBCL", "indication_confirmed": True})  # fmt: skip
    log(unit, "receipt", by=people["pharmacist"], at=at(10),
        fields={"coi_id": COI, "shipper_id": "S", "logger_id": "L", "logger_reviewed": True,
                "shipper_temperature_c": -170})  # fmt: skip
    log(unit, "storage_in", by=people["pharmacist"], at=at(20),
        fields={"equipment": "LN2-01", "temperature_c": -160})  # fmt: skip
    log(unit, "storage_out", by=people["pharmacist"], at=at(200),
        fields={"equipment": "LN2-01"})  # fmt: skip


def _walk_to_infusion(log, unit, people):
    start = datetime.now(UTC) - timedelta(hours=5)

    def at(minutes):
        return start + timedelta(minutes=minutes)

    _released(log, unit, people, start)
    log(unit, "tocilizumab_check", by=people["pharmacist"], at=at(205),
        fields={"doses_on_hand": 2})  # fmt: skip
    log(unit, "identity_check", by=people["nurse"], witness=people["nurse2"], at=at(210),
        fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042",
                "coi_id": COI})  # fmt: skip
    # Premedication 40 minutes before the infusion that starts now (the label's 30–60 min).
    log(unit, "premedication", by=people["nurse"], at=at(260),
        fields={"paracetamol": True, "antihistamine": True, "corticosteroid": False})  # fmt: skip
    log(unit, "thaw_start", by=people["nurse"], at=at(280), fields={"temperature_c": 37})
    log(unit, "thaw_end", by=people["nurse"], at=at(285), fields={"temperature_c": 37})


def test_a_rate_out_of_limits_needs_a_reason_and_is_flagged_live(client, login, ward, log, session):
    unit, people = ward
    _walk_to_infusion(log, unit, people)
    session.commit()
    login(people["nurse"])
    token = _token(client, unit)
    live = client.post(
        f"/units/{unit.id}/steps/infusion_start/check",
        data={"f-rate_ml_min": "150", "csrf_token": token, "performed_at": _site_now(2)},
    )
    assert live.status_code == 200, live.json
    assert any("150" in text and "20" in text for text in live.json["findings"]), live.json
    assert any("left" in text for text in live.json["due"])  # the thaw window runs
    fields = {"rate_ml_min": "150", "filter": "none"}
    refused = _post_step(client, unit, "infusion_start", fields, at=_site_now(2))
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "give a reason" in html and 'value="150"' in html  # refilled
    assert _records(session, unit, "infusion_start") == []
    stored = _post_step(
        client, unit, "infusion_start", fields, at=_site_now(2), reason="pump set wrongly"
    )
    assert stored.status_code == 302
    (record,) = _records(session, unit, "infusion_start")
    assert record.reason == "pump set wrongly" and json.loads(record.findings)


def test_a_live_check_still_on_its_way_when_the_step_is_sent_keeps_its_message(client, login, ward):
    """The live check and the scan read the session but never send it back: answered after
    the step (as they can be while a form is sent), their cookie would put back the session
    from before the step and lose its "recorded" message."""
    unit, people = ward
    login(people["pharmacist"])
    token = _token(client, unit)
    before = client.get_cookie("qms_session").value  # what a live check in flight carries
    fields = {"coi_id": COI, "shipper_id": "DS-1", "logger_id": "LG-1",
              "logger_reviewed": "yes", "shipper_temperature_c": "-170"}  # fmt: skip
    assert _post_step(client, unit, "receipt", fields).status_code == 302
    after = client.get_cookie("qms_session").value
    late = client.application.test_client()
    late.set_cookie("qms_session", before)
    for path, data in [
        (f"/units/{unit.id}/steps/storage_in/check", {"f-temperature_c": "-160"}),
        (f"/units/{unit.id}/scan", {"code": COI}),
    ]:
        answer = late.post(path, data={**data, "csrf_token": token})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert "Set-Cookie" not in answer.headers, path
    assert client.get_cookie("qms_session").value == after
    page = client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert "recorded as" in page


def test_a_witness_with_a_wrong_password_stores_nothing_and_counts(
    client, login, ward, log, session
):
    unit, people = ward
    _released(log, unit, people, datetime.now(UTC) - timedelta(hours=5))
    login(people["nurse"])
    fields = {"product_patient_id": "P-0042", "wristband_patient_id": "P-0042", "coi_id": COI}
    witness = people["nurse2"]
    response = _post_step(
        client,
        unit,
        "identity_check",
        fields,
        witness_username=witness.username,
        witness_password="wrong-password-here",
    )
    assert response.status_code == 400
    assert "username or password is wrong" in response.get_data(as_text=True), re.findall(
        r"role=.alert.[^>]*>([^<]*)", response.get_data(as_text=True)
    )
    assert _records(session, unit, "identity_check") == []
    failures = session.exec(
        select(LoginEvent).where(
            LoginEvent.username == witness.username, LoginEvent.kind == "sign_failure"
        )
    ).all()
    assert len(failures) == 1
    ok = _post_step(
        client,
        unit,
        "identity_check",
        fields,
        witness_username=witness.username,
        witness_password=DEFAULT_PASSWORD,
    )
    assert ok.status_code == 302
    (record,) = _records(session, unit, "identity_check")
    assert record.witness_id == witness.id


def test_a_correction_with_its_reason_is_shown_under_the_original(
    client, login, ward, log, session
):
    unit, people = ward
    log(unit, "tocilizumab_check", by=people["nurse"], fields={"doses_on_hand": 3})
    session.commit()
    (original,) = _records(session, unit, "tocilizumab_check")
    login(people["nurse"])
    data = {
        "f-doses_on_hand": "4",
        "reason": "a fourth vial was found in the ward fridge",
        "password": DEFAULT_PASSWORD,
        "csrf_token": _token(client, unit),
    }
    missing = client.post(
        f"/records/{quote(original.id, safe='')}/correct", data={**data, "reason": ""}
    )
    assert missing.status_code == 302 and len(_records(session, unit)) == 1
    response = client.post(f"/records/{quote(original.id, safe='')}/correct", data=data)
    assert response.status_code == 302
    html = client.get(f"/units/{unit.id}").get_data(as_text=True)
    assert "a fourth vial was found in the ward fridge" in html
    rows = re.findall(r'data-testid="(record|correction)"', html)
    assert rows == ["record", "correction"]
    assert html.index(original.id) < html.index("a fourth vial")


def test_a_pharmacist_registers_a_unit(client, login, ward, session):
    _, people = ward
    login(people["pharmacist"])
    page = client.get("/units/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = {
        "csrf_token": token,
        "checklist": "kymriah",
        "unit_id": "K-NEW-1",
        "coi_id": "CHG123426NEW001",
        "patient_ref": "P-0100",
        "profile": "cn",
        "age_years": "40",
    }
    response = client.post("/units/new", data=data)
    assert response.status_code == 302
    session.expire_all()
    unit = session.get(Unit, "K-NEW-1")
    assert unit.coi_id == "CHG123426NEW001" and json.loads(unit.attributes) == {"age_years": 40}
    again = client.post("/units/new", data={**data, "coi_id": "CH123"})
    assert again.status_code == 400 and "chain-of-identity" in again.get_data(as_text=True)


def test_a_nurse_of_another_site_cannot_record(client, login, ward, make_user, session):
    unit, _ = ward
    login(make_user("nurse", sites=("BJ-02",)))
    response = _post_step(client, unit, "tocilizumab_check", {"doses_on_hand": "2"})
    assert response.status_code in (403, 404)
    assert _records(session, unit) == []


def _worklist(client):
    html = client.get("/").get_data(as_text=True)
    return html, re.findall(
        r'<tr data-unit="([^"]+)" data-testid="work-item" class="([^"]*)"', html
    )


def test_the_nurses_worklist_puts_the_thawed_bag_first_in_red(
    client, login, ward, log, make_unit, session, engine
):
    unit, people = ward
    waiting = make_unit(by=people["pharmacist"], unit_id="A-WAIT", checklist_id="kymriah",
                        profile="us", at=datetime.now(UTC) - timedelta(hours=6))  # fmt: skip
    _walk_to_infusion(log, unit, people)  # thawed: the infusion's window runs
    session.commit()
    login(people["nurse"])
    html, rows = _worklist(client)
    assert [u for u, _ in rows] == [unit.id, waiting.id]  # by deadline, not by id
    assert rows[0][1] in ("urgent", "overdue")
    assert 'http-equiv="refresh" content="30"' in html
    assert "Infusion completed by" in html or "left" in html


def test_the_worklist_needs_the_same_queries_for_many_units(
    client, login, ward, make_unit, session, engine
):
    from sqlalchemy import event

    _, people = ward
    login(people["nurse"])
    client.get("/")

    def count():
        n = [0]

        def hit(*args):
            n[0] += 1

        event.listen(engine, "before_cursor_execute", hit)
        try:
            client.get("/")
        finally:
            event.remove(engine, "before_cursor_execute", hit)
        return n[0]

    few = count()
    for i in range(12):
        make_unit(by=people["pharmacist"], unit_id=f"M-{i:02d}", checklist_id="kymriah",
                  profile="us", at=datetime.now(UTC) - timedelta(hours=1))  # fmt: skip
    session.commit()
    many = count()
    assert many == few
    assert len(_worklist(client)[1]) == 13
