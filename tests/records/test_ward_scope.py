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
    ):
        assert client.post(url, data={**data, "reason": "r", "code": "x"}).status_code == 404, url
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
