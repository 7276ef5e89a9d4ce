"""The storage pages: equipment with its limits and units inside, the chart with excursions
marked, manual readings, and data-logger CSV imports that store all or nothing."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import func, select

from qms.accounts.service import Actor
from qms.core.verify import verify
from qms.records import service as records
from qms.records.signatures import PasswordEntry
from qms.storage.loggers import parse_log
from qms.storage.models import ExcursionAck, Reading
from qms.storage.service import register_equipment
from tests.conftest import DEFAULT_PASSWORD

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def registry():
    from qms.checklists.language import Registry

    return Registry.from_directory()


@pytest.fixture
def freezer(session, make_user, registry):
    pharmacist = make_user("pharmacist", full_name="Chen Jie")
    register_equipment(
        session=session, actor=Actor.system("test"), equipment_id="LN2-01",
        kind="ln2_vapour", site_id="SH-01", description="vapour-phase LN2",
    )  # fmt: skip
    session.commit()
    return pharmacist


def _count(session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(Reading)).one()


def _csv(lines) -> dict:
    return {"file": (io.BytesIO("\n".join(lines).encode()), "logger.csv")}


def _token(client, url) -> str:
    return re.search(
        r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)
    ).group(1)


def _lines(start: datetime, temps) -> list[str]:
    return ["time,temperature"] + [
        f"{(start + timedelta(minutes=10 * i)).strftime('%Y-%m-%d %H:%M')},{t}"
        for i, t in enumerate(temps)
    ]


def test_a_csv_with_one_bad_line_stores_nothing_and_names_the_line(client, login, freezer, session):
    login(freezer)
    url = "/storage/LN2-01/import"
    start = datetime.now(SHANGHAI).replace(tzinfo=None) - timedelta(hours=3)
    lines = _lines(start, [-160, -161, -159])
    lines.insert(3, "2026-13-45 99:00,-160")
    response = client.post(
        url, data={**_csv(lines), "unit": "C", "zone": "Asia/Shanghai",
                   "action": "import", "csrf_token": _token(client, url)},
        content_type="multipart/form-data",
    )  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "line 4:" in html and "nothing was stored" in html
    assert _count(session) == 0


def test_a_good_csv_is_previewed_then_imported_in_the_units_asked(client, login, freezer, session):
    login(freezer)
    url = "/storage/LN2-01/import"
    start = datetime.now(SHANGHAI).replace(tzinfo=None) - timedelta(hours=3)
    fahrenheit = [-256, -250, -238]  # −160, −156.7, −150 °C
    form = {"unit": "F", "zone": "Asia/Shanghai"}
    preview = client.post(
        url, data={**_csv(_lines(start, fahrenheit)), **form, "action": "preview",
                   "csrf_token": _token(client, url)},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert preview.status_code == 200 and "Preview: 3 readings" in preview.get_data(as_text=True)
    assert _count(session) == 0
    done = client.post(
        url, data={**_csv(_lines(start, fahrenheit)), **form, "action": "import",
                   "csrf_token": _token(client, url)},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert done.status_code == 302
    temps = sorted(session.exec(select(Reading.temperature_c)).all())
    assert temps == [-160.0, -156.667, -150.0]
    first = session.exec(select(Reading).order_by(Reading.at)).first()
    assert first.at.astimezone(SHANGHAI).replace(tzinfo=None) == start.replace(
        second=0, microsecond=0
    )
    assert verify(session).ok


def test_the_equipment_page_marks_excursions_and_lists_units_inside(
    client, login, freezer, session, registry, make_user
):
    nurse = make_user("nurse")
    unit = records.register_unit(
        session=session, registry=registry, by=freezer, unit_id="K-1", checklist_id="kymriah",
        site_id="SH-01", patient_ref="P-1", coi_id="CHG123426ABC123", profile="us",
        now=datetime.now(UTC) - timedelta(hours=5),
    )  # fmt: skip
    records.log_step(
        session=session, registry=registry, unit_id=unit.id, step="storage_in",
        performed_at=datetime.now(UTC) - timedelta(hours=4), by=freezer,
        fields={"equipment": "LN2-01", "temperature_c": -160},
        credential=PasswordEntry(DEFAULT_PASSWORD), freshness_minutes=5,
        reason="receipt recorded on paper",
    )  # fmt: skip
    session.commit()
    del nurse
    login(freezer)
    url = "/storage/LN2-01/import"
    start = datetime.now(SHANGHAI).replace(tzinfo=None) - timedelta(hours=3)
    client.post(
        url, data={**_csv(_lines(start, [-160, -110, -158] + [-160] * 3)), "unit": "C",
                   "zone": "Asia/Shanghai", "action": "import", "csrf_token": _token(client, url)},
        content_type="multipart/form-data",
    )  # fmt: skip
    html = client.get("/storage/LN2-01").get_data(as_text=True)
    assert "≤ -120" in html  # Kymriah's storage limit, from the unit inside
    assert 'href="/units/K-1"' in html
    assert html.count('class="excursion"') == 1
    assert "1 excursion" in html and "warmest -110.0 °C" in html
    # The logger was silent between the last reading and now: more than 30 minutes.
    assert 'data-testid="gaps"' in html
    listing = client.get("/storage").get_data(as_text=True)
    assert "K-1" in listing and "LN2-01" in listing


def test_a_manual_reading_is_recorded(client, login, freezer, session):
    login(freezer)
    token = _token(client, "/storage/LN2-01")
    at = (datetime.now(SHANGHAI) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/storage/LN2-01/readings", data={"at": at, "temperature_c": "-155", "csrf_token": token}
    )
    assert response.status_code == 302 and _count(session) == 1


def test_another_sites_equipment_is_not_found(client, login, freezer, make_user):
    login(make_user("pharmacist", sites=("BJ-02",)))
    assert client.get("/storage/LN2-01").status_code == 404


def test_parse_log_names_every_bad_line():
    text = "time,t\n2026-01-01 00:00,-150\n2026-01-01 00:10,warm\nnonsense\n2026-01-01 00:00,-151\n"
    parsed = parse_log(text, unit="C", zone="UTC")
    assert [p.split(":")[0] for p in parsed.problems] == ["line 3", "line 4", "line 5"]
    assert len(parsed.readings) == 1


def test_an_excursion_is_acknowledged_as_a_signed_record_naming_the_units(
    client, login, freezer, session, registry
):
    unit = records.register_unit(
        session=session, registry=registry, by=freezer, unit_id="K-2", checklist_id="kymriah",
        site_id="SH-01", patient_ref="P-2", coi_id="CHG123426ABC123", profile="us",
        now=datetime.now(UTC) - timedelta(hours=5),
    )  # fmt: skip
    records.log_step(
        session=session, registry=registry, unit_id=unit.id, step="storage_in",
        performed_at=datetime.now(UTC) - timedelta(hours=4), by=freezer,
        fields={"equipment": "LN2-01", "temperature_c": -160},
        credential=PasswordEntry(DEFAULT_PASSWORD), freshness_minutes=5,
        reason="receipt recorded on paper",
    )  # fmt: skip
    session.commit()
    login(freezer)
    url = "/storage/LN2-01/import"
    start = datetime.now(SHANGHAI).replace(tzinfo=None) - timedelta(hours=3)
    client.post(
        url, data={**_csv(_lines(start, [-160, -110, -105, -158])), "unit": "C",
                   "zone": "Asia/Shanghai", "action": "import", "csrf_token": _token(client, url)},
        content_type="multipart/form-data",
    )  # fmt: skip
    html = client.get("/storage/LN2-01").get_data(as_text=True)
    started = re.search(r'name="started_at" value="([^"]+)"', html).group(1)
    token = _token(client, "/storage/LN2-01")
    wrong = client.post(
        "/storage/LN2-01/excursions",
        data={"started_at": started, "comment": "door left open", "password": "nope",
              "csrf_token": token},
    )  # fmt: skip
    assert wrong.status_code == 302
    session.expire_all()
    assert session.exec(select(func.count()).select_from(ExcursionAck)).one() == 0
    done = client.post(
        "/storage/LN2-01/excursions",
        data={"started_at": started, "comment": "door left open 20 min; product assessed",
              "password": DEFAULT_PASSWORD, "csrf_token": token},
    )  # fmt: skip
    assert done.status_code == 302
    session.expire_all()
    (ack,) = session.exec(select(ExcursionAck)).all()
    assert json.loads(ack.units) == ["K-2"] and ack.warmest_c == -105.0
    page = client.get("/storage/LN2-01").get_data(as_text=True)
    assert 'data-testid="acknowledged"' in page and "door left open 20 min" in page
    assert verify(session).ok
