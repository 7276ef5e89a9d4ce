"""Ward staff see and record only the units of their wards (and units on no ward yet): another
ward's unit answers exactly like a missing one, in the unit page, its forms, the scan and the
live check, the units list and the worklist. Pharmacists see the whole site."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from qms.accounts import service as accounts
from qms.checklists.language import Registry
from qms.records.models import StepRecord
from tests.records.conftest import DEFAULT_PASSWORD

SYSTEM = accounts.Actor.system("test")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_directory()


@pytest.fixture
def wards(session, make_user, make_unit, make_site):
    make_site("SH-01")
    ward = {
        code: accounts.create_ward(session=session, site_id="SH-01", code=code, name=code)
        for code in ("HEM", "CTU")
    }
    session.flush()
    pharmacist = make_user("pharmacist")
    people = {"pharmacist": pharmacist}
    for name, role, held in (("hem", "nurse", ["HEM"]), ("ctu", "nurse", ["CTU"]),
                             ("both", "physician", ["HEM", "CTU"]), ("none", "nurse", [])):  # fmt: skip
        people[name] = make_user(role)
        for code in held:
            accounts.grant_ward(session=session, actor=SYSTEM, user=people[name],
                                ward_id=ward[code].id, reason="test")  # fmt: skip
    units = {
        code: make_unit(
            by=pharmacist,
            unit_id=f"K-{code or 'NONE'}",
            checklist_id="kymriah",
            profile="us",
            attributes={"ward": code} if code else {},
            at=datetime.now(UTC) - timedelta(hours=6),
        )  # fmt: skip
        for code in ("HEM", "CTU", None)
    }
    session.commit()
    return units, people


def _token(client, url="/units/new") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True))[
        1
    ]


def _site_now() -> str:
    from zoneinfo import ZoneInfo

    moment = datetime.now(UTC) - timedelta(minutes=5)
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


def _refusal_of(response) -> str:
    return " ".join(re.findall(r'role="alert"[^>]*>(.*?)</div>', response.get_data(as_text=True)))


def _no_token(html: str) -> str:
    return re.sub(r'value="[^"]+"', "", html)  # the sign-out form's CSRF token varies


SEEN = {  # who sees which unit
    "pharmacist": {"HEM", "CTU", None},
    "hem": {"HEM", None},
    "ctu": {"CTU", None},
    "both": {"HEM", "CTU", None},
    "none": {None},
}


@pytest.mark.parametrize("who", sorted(SEEN))
def test_each_sees_the_units_of_their_wards_and_none_of_another(client, login, wards, who):
    units, people = wards
    login(people[who])
    missing = client.get("/units/K-MISSING")
    listed = client.get("/units").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    for code, unit in units.items():
        page = client.get(f"/units/{unit.id}")
        if code in SEEN[who]:
            assert page.status_code == 200, (who, code)
            assert f'href="/units/{unit.id}"' in listed
        else:
            assert page.status_code == 404 == missing.status_code, (who, code)
            text = page.get_data(as_text=True).replace(unit.id, "K-MISSING")
            assert _no_token(text) == _no_token(missing.get_data(as_text=True))
            assert unit.id not in listed and unit.id not in home


def test_a_nurse_of_another_ward_cannot_record_scan_check_or_correct(
    client, login, wards, log, session
):
    units, people = wards
    hem = units["HEM"]
    record = log(hem, "tocilizumab_check", by=people["pharmacist"], fields={"doses_on_hand": 2})
    session.commit()
    before = len(session.exec(select(StepRecord)).all())
    login(people["ctu"])
    token = _token(client, f"/units/{units['CTU'].id}")
    data = {"csrf_token": token, "password": DEFAULT_PASSWORD, "f-doses_on_hand": "2"}
    for url in (
        f"/units/{hem.id}/steps/premedication",
        f"/units/{hem.id}/steps/premedication/check",
        f"/units/{hem.id}/scan",
        f"/records/{record.record.id}/correct",
        f"/units/{hem.id}/status",
    ):
        sent = {**data, "reason": "r", "code": "x", "status": "cancelled"}
        assert client.post(url, data=sent).status_code == 404, url
    session.expire_all()
    assert len(session.exec(select(StepRecord)).all()) == before
    # The same nurse on her own ward: the form is there.
    assert 'data-step="premedication"' in client.get(f"/units/{units['CTU'].id}").get_data(
        as_text=True
    )


def test_registration_offers_the_sites_wards_and_refuses_an_unknown_one(
    client, login, wards, session
):
    _, people = wards
    login(people["pharmacist"])
    page = client.get("/units/new").get_data(as_text=True)
    assert '<option value="HEM"' in page and '<option value="CTU"' in page
    data = {"csrf_token": _token(client), "checklist": "kymriah", "unit_id": "K-NEW",
            "patient_ref": "P-1", "profile": "us", "ward": "ICU"}  # fmt: skip
    refused = client.post("/units/new", data=data)
    assert refused.status_code == 400
    assert "ICU is not a ward of this site" in refused.get_data(as_text=True)
    assert client.post("/units/new", data={**data, "ward": "HEM"}).status_code == 302
    client._cookies.clear()  # signed out
    login(people["ctu"])
    assert client.get("/units/K-NEW").status_code == 404
    client._cookies.clear()
    login(people["hem"])
    assert client.get("/units/K-NEW").status_code == 200


def test_a_witness_of_another_ward_cannot_co_sign(client, login, wards, session):
    units, people = wards
    ctu = units["CTU"]
    login(people["ctu"])
    before = len(session.exec(select(StepRecord)).all())
    response = client.post(
        f"/units/{ctu.id}/steps/identity_check",
        data={
            "csrf_token": _token(client, f"/units/{ctu.id}"),
            "password": DEFAULT_PASSWORD,
            "f-product_patient_id": "P-0042",
            "f-wristband_patient_id": "P-0042",
            "f-coi_id": "CHG123426ABC123",
            "witness_username": people["hem"].username,
            "witness_password": DEFAULT_PASSWORD,
            "performed_at": _site_now(),
        },
    )
    assert response.status_code == 400
    text = _refusal_of(response)
    assert f"the witness {people['hem'].username} is not on ward CTU" in text
    session.expire_all()
    assert len(session.exec(select(StepRecord)).all()) == before


# --- the services refuse by themselves, whoever calls them ---------------------------------


def _off_ward(user, unit) -> str:
    return (
        f"{user.username} is not on ward HEM, where unit {unit.id} is: nurses and physicians "
        "record, correct, witness and close only the units of their own wards"
    )


def test_the_record_services_refuse_a_nurse_of_another_ward(session, wards, log, registry):
    """Not only the pages: log_step, corrections, the status and registration refuse a nurse
    who is not on the unit's ward, with one message, and store nothing."""
    from qms.core.errors import Denied
    from qms.records.corrections import correct_step
    from qms.records.service import register_unit
    from qms.records.signatures import PasswordEntry
    from qms.records.status import set_unit_status

    units, people = wards
    hem, nurse = units["HEM"], people["ctu"]
    record = log(hem, "tocilizumab_check", by=people["pharmacist"], fields={"doses_on_hand": 2})
    session.flush()
    before = len(session.exec(select(StepRecord)).all())
    signed = {"credential": PasswordEntry(DEFAULT_PASSWORD), "freshness_minutes": 5}
    attempts = {
        "log_step": lambda: log(hem, "tocilizumab_check", by=nurse, fields={"doses_on_hand": 2}),
        "correct_step": lambda: correct_step(
            session=session, registry=registry, record_id=record.record.id, by=nurse,
            reason="two doses, not three", fields={"doses_on_hand": 3}, **signed,
        ),
        "set_unit_status": lambda: set_unit_status(
            session=session, registry=registry, unit_id=hem.id, status="cancelled", by=nurse,
            reason="stopped", **signed,
        ),
    }  # fmt: skip
    for name, attempt in attempts.items():
        with pytest.raises(Denied) as refused:
            attempt()
        assert str(refused.value) == _off_ward(nurse, hem), name
    with pytest.raises(Denied) as refused:
        register_unit(session=session, registry=registry, by=nurse, unit_id="K-NEW",
                      checklist_id="kymriah", site_id="SH-01", patient_ref="P-0100",
                      attributes={"ward": "HEM"})  # fmt: skip
    assert str(refused.value) == _off_ward(nurse, units["HEM"]).replace(hem.id, "K-NEW")
    session.expire_all()
    assert len(session.exec(select(StepRecord)).all()) == before
    # Her own ward's unit, a unit on no ward, and the pharmacist anywhere: recorded.
    for unit in (units["CTU"], units[None]):
        log(unit, "tocilizumab_check", by=nurse, fields={"doses_on_hand": 2})
    log(hem, "premedication", by=people["both"],
        fields={"paracetamol": True, "antihistamine": True, "corticosteroid": False})  # fmt: skip
    register_unit(session=session, registry=registry, by=nurse, unit_id="K-NEW",
                  checklist_id="kymriah", site_id="SH-01", patient_ref="P-0100",
                  attributes={"ward": "CTU"})  # fmt: skip


def test_the_record_service_refuses_a_witness_of_another_ward(session, wards, log):
    from qms.core.errors import SignatureError

    units, people = wards
    identity = {"product_patient_id": "P-0042", "wristband_patient_id": "P-0042",
                "coi_id": "CHG123426ABC123"}  # fmt: skip
    with pytest.raises(SignatureError) as refused:
        log(units["HEM"], "identity_check", by=people["hem"], fields=identity,
            witness=people["ctu"])  # fmt: skip
    assert str(refused.value) == (
        f"the witness {people['ctu'].username} is not on ward HEM, where this unit is: "
        "ask someone of this ward to co-sign. Nothing was recorded."
    )
    # Recorded before the pharmacy's records: findings, hence the reason.
    logged = log(units["HEM"], "identity_check", by=people["hem"], fields=identity,
                 witness=people["both"], reason="the pharmacy records later")  # fmt: skip
    assert logged.record.witness_id == people["both"].id


def _file(unit_id: str, ward: str, author: str) -> list[str]:
    import json

    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return [
        json.dumps(line)
        for line in (
            {
                "type": "unit",
                "id": unit_id,
                "checklist": "kymriah",
                "site": "SH-01",
                "profile": "us",
                "patient": "P-0100",
                "attributes": {"ward": ward},
            },
            {
                "type": "step",
                "unit": unit_id,
                "step": "tocilizumab_check",
                "at": at,
                "by": author,
                "by_role": "nurse",
                "fields": {"doses_on_hand": 2},
            },
        )  # fmt: skip
    ]


def test_an_import_answers_for_its_units_by_the_importers_wards(
    session, wards, make_user, registry
):
    """Importing is a quality officer's or an administrator's: the whole site, and the
    records keep their authors whatever wards those hold today. An importer scoped to wards
    (a nurse's account given the right to import) brings only their wards' units, refused
    with the words the services use."""
    from qms.accounts.roles import Permission
    from qms.records.importer import ImportFileError, import_interchange

    _, people = wards
    nurse = people["ctu"]
    officer = accounts.Actor.of(make_user("quality_officer"))
    summary = import_interchange(session=session, registry=registry, source="a.jsonl",
                                 lines=_file("K-IMP-1", "HEM", nurse.username), actor=officer)  # fmt: skip
    assert summary.units == 1 and summary.steps == 1
    importer = accounts.Actor(id=nurse.id, name=nurse.username,
                              permissions=Permission.IMPORT_EXPORT)  # fmt: skip
    with pytest.raises(ImportFileError) as refused:
        import_interchange(session=session, registry=registry, source="b.jsonl",
                           lines=_file("K-IMP-2", "HEM", nurse.username), actor=importer)  # fmt: skip
    assert refused.value.problems == [
        f"b.jsonl:1: {nurse.username} is not on ward HEM, where unit K-IMP-2 is: nurses and "
        "physicians record, correct, witness and close only the units of their own wards"
    ]
    summary = import_interchange(session=session, registry=registry, source="c.jsonl",
                                 lines=_file("K-IMP-3", "CTU", nurse.username), actor=importer)  # fmt: skip
    assert summary.units == 1


# --- pages that name units: another ward's are counted, never named ----------------------


def test_the_freezer_and_the_deviation_name_only_the_units_of_ones_wards(
    client, login, wards, log, session
):
    """K-HEM sits in the freezer through an excursion, and its bedside check found another
    patient's wristband (a deviation quoting both ids). The pharmacist and the HEM nurse read
    its id; the CTU nurse reads that one unit on another ward is concerned, never which."""
    from qms.quality.models import Deviation
    from qms.storage.service import record_reading, register_equipment

    units, people = wards
    hem, pharmacist = units["HEM"], people["pharmacist"]
    register_equipment(session=session, actor=SYSTEM, equipment_id="LN2-T", kind="ln2_vapour",
                       site_id="SH-01")  # fmt: skip
    start = datetime.now(UTC) - timedelta(hours=5)
    receipt = {"coi_id": "CHG123426ABC123", "shipper_id": "S-1", "logger_id": "L-1",
               "logger_reviewed": True, "shipper_temperature_c": -170}  # fmt: skip
    log(hem, "receipt", by=pharmacist, at=start, fields=receipt)
    log(hem, "storage_in", by=pharmacist, at=start + timedelta(minutes=10),
        fields={"equipment": "LN2-T", "temperature_c": -160})  # fmt: skip
    for minutes, temperature in ((20, -90.0), (30, -160.0)):
        record_reading(session=session, actor=SYSTEM, equipment_id="LN2-T",
                       at=start + timedelta(minutes=minutes), temperature_c=temperature)  # fmt: skip
    checked = log(hem, "identity_check", by=people["hem"], at=start + timedelta(minutes=40),
                  fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0099",
                          "coi_id": "CHG123426ABC123"},
                  witness=people["both"], reason="wristband of the neighbouring bed")  # fmt: skip
    deviation = session.exec(
        select(Deviation).where(Deviation.step_record_id == checked.record.id)
    ).one()
    session.commit()
    pages = ("/storage", "/storage/LN2-T", f"/quality/deviations/{deviation.id}")
    for who, names in (("pharmacist", True), ("hem", True), ("ctu", False)):
        client._cookies.clear()
        login(people[who])
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, (who, url)
            text = response.get_data(as_text=True)
            assert (f'href="/units/{hem.id}"' in text) is names, (who, url)
            assert ("P-0099" in text) is (names and "deviations" in url), (who, url)
            assert ("1 unit on a ward you are not on" in text) is not names, (who, url)
            assert (checked.record.id in text) is (names and "deviations" in url), (who, url)
            if url == "/storage/LN2-T":  # the excursion lists the units inside as well
                excursion = text.split('data-testid="excursion"')[1]
                assert (f'href="/units/{hem.id}"' in excursion) is names, who
                assert ("1 unit on a ward you are not on" in excursion) is not names, who
