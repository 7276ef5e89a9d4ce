"""The units list: a page of 50, open units first, filters, and a fixed number of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from qms.accounts import service as accounts
from qms.checklists.language import Registry
from qms.records.corrections import correct_step
from qms.records.signatures import PasswordEntry
from qms.records.status import set_unit_status
from qms.storage import service as storage
from tests.records.conftest import CHECKLISTS, DEFAULT_PASSWORD

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The records' test checklist and the shipped Kymriah one (it has storage rules)."""
    shipped = Registry.from_directory()
    test = Registry.from_directory(CHECKLISTS)
    return Registry([*test, shipped.get("kymriah")], shipped.profiles.values())


@pytest.fixture
def people(make_user):
    return {
        "nurse": make_user("nurse", username="li.na", full_name="Li Na"),
        "witness": make_user("physician", username="zhang.min", full_name="Dr Zhang Min"),
        "pharmacist": make_user("pharmacist", username="chen.jie", full_name="Chen Jie"),
        "quality": make_user("quality_officer", username="liu.yang", full_name="Liu Yang"),
    }


@pytest.fixture
def freezer(session):
    """A freezer whose readings break Kymriah's storage limit for a while."""
    actor = accounts.Actor.system("test")
    storage.register_equipment(
        session=session, actor=actor, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
    )
    for hours, temperature in ((0, -150.0), (6, -110.0), (9, -150.0)):
        storage.record_reading(
            session=session,
            actor=actor,
            equipment_id="LN2-01",
            at=T0 + timedelta(hours=hours),
            temperature_c=temperature,
            now=T0 + timedelta(days=1),
        )
    return "LN2-01"


@pytest.fixture
def fill(session, registry, make_unit, log, people, freezer):
    """`fill(n)`: n testcart units with steps, plus one unit of each kind the list shows:
    a corrected one, a complete one, a Kymriah unit in the freezer."""

    def do(n: int) -> list:
        nurse, witness = people["nurse"], people["witness"]
        units = []
        for i in range(n):
            unit = make_unit(by=nurse, unit_id=f"T-{i:03d}", at=T0 + timedelta(minutes=i))
            log(
                unit,
                "identity_check",
                by=nurse,
                witness=witness,
                at=T0 + timedelta(hours=1, minutes=i),
                fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
            )
            units.append(unit)
        corrected = units[0]
        original = log(
            corrected,
            "thaw_end",
            by=nurse,
            at=T0 + timedelta(hours=2),
            fields={"temperature_c": 2.1},
        ).record
        correct_step(
            session=session,
            registry=registry,
            record_id=original.id,
            by=people["quality"],
            credential=PasswordEntry(DEFAULT_PASSWORD),
            freshness_minutes=5,
            reason="decimal point misplaced",
            fields={"temperature_c": 21},
        )
        set_unit_status(
            session=session,
            registry=registry,
            unit_id=units[1].id,
            status="complete",
            by=people["quality"],
            credential=PasswordEntry(DEFAULT_PASSWORD),
            freshness_minutes=5,
            reason="closed for the test",
        )
        kymriah = make_unit(by=nurse, unit_id="K-001", checklist_id="kymriah", profile="us", at=T0)
        log(
            kymriah,
            "storage_in",
            by=people["pharmacist"],
            at=T0 + timedelta(hours=1),
            fields={"equipment": freezer, "temperature_c": -150},
            reason="placed before the receipt was entered",
        )
        session.flush()
        return [*units, kymriah]

    return do


@pytest.fixture
def count_queries(engine):
    """A context that counts the SQL statements sent to the database."""

    class Counter:
        def __init__(self):
            self.n = 0

        def __enter__(self):
            event.listen(engine, "before_cursor_execute", self._count)
            return self

        def __exit__(self, *exc):
            event.remove(engine, "before_cursor_execute", self._count)

        def _count(self, *args):
            self.n += 1

    return Counter


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-unit="([^"]+)"', html)


def _listing(client, **args):
    response = client.get("/units", query_string=args)
    return response.status_code, response.get_data(as_text=True)


def test_the_number_of_queries_does_not_grow_with_the_number_of_units(
    client, login, people, fill, count_queries, session
):
    fill(4)  # 5 units
    login(people["nurse"])
    client.get("/units")  # warm: the first request loads what every later one has cached
    with count_queries() as few:
        status, html = _listing(client)
    assert status == 200 and len(_rows(html)) == 5
    fill_more = [f"M-{i:03d}" for i in range(55)]
    from qms.records import service

    for unit_id in fill_more:
        unit = service.register_unit(
            session=session,
            registry=client.application.extensions["qms_runtime"].registry,
            by=people["nurse"],
            unit_id=unit_id,
            checklist_id="testcart",
            site_id="SH-01",
            patient_ref="P-0042",
            now=T0,
        )
        assert unit.id == unit_id
    session.commit()
    with count_queries() as many:
        status, html = _listing(client)
    assert status == 200 and len(_rows(html)) == 50  # 60 units: a full first page
    with count_queries() as second:
        status, html = _listing(client, page=2)
    assert status == 200 and len(_rows(html)) == 10
    assert few.n == many.n, (few.n, many.n)
    # Page 2 names no equipment: no readings to load, one query fewer at most.
    assert many.n - 1 <= second.n <= many.n, (many.n, second.n)


def test_pages_of_fifty_show_every_unit_once(client, login, people, fill):
    units = fill(64)  # 65 units: 50 + 15
    login(people["nurse"])
    _, first = _listing(client)
    _, second = _listing(client, page=2)
    assert len(_rows(first)) == 50 and len(_rows(second)) == 15
    assert sorted(_rows(first) + _rows(second)) == sorted(u.id for u in units)
    assert "page 1 of 2" in first and 'href="/units?page=2"' in first
    assert 'href="/units?page=1"' in second and "page 2 of 2" in second


def test_a_page_past_the_end_says_so(client, login, people, fill):
    fill(2)
    login(people["nurse"])
    status, html = _listing(client, page=7)
    assert status == 200 and _rows(html) == []
    assert "Page 7 is past the end: there is one page." in html
    assert 'href="/units?page=1"' in html


@pytest.mark.parametrize("page", ["abc", "0", "-1", "1.5", "²"])
def test_a_bad_page_number_is_a_clear_400(client, login, people, page):
    login(people["nurse"])
    status, html = _listing(client, page=page)
    assert status == 400 and "is not a page number" in html


def test_open_units_come_first_then_the_most_recently_active(
    client, login, people, make_unit, log, session, registry
):
    nurse, quality = people["nurse"], people["quality"]
    old = make_unit(by=nurse, unit_id="A-old", at=T0)
    busy = make_unit(by=nurse, unit_id="B-busy", at=T0)
    done = make_unit(by=nurse, unit_id="C-done", at=T0)
    fresh = make_unit(by=nurse, unit_id="D-fresh", at=T0 + timedelta(hours=3))
    late = make_unit(by=nurse, unit_id="E-late", at=T0)
    log(busy, "receipt", by=nurse, at=T0 + timedelta(hours=4), now=T0 + timedelta(hours=5))
    receipt = log(
        late,
        "receipt",
        by=nurse,
        at=T0 + timedelta(hours=1),
        fields={"temperature_c": 5},
        now=T0 + timedelta(hours=9),  # later than any record of the open units
    ).record

    def close(unit, status, at):
        set_unit_status(
            session=session,
            registry=registry,
            unit_id=unit.id,
            status=status,
            by=quality,
            credential=PasswordEntry(DEFAULT_PASSWORD),
            freshness_minutes=5,
            reason="closed for the test",
            now=at,
        )

    close(late, "complete", T0 + timedelta(hours=10))
    close(done, "cancelled", T0 + timedelta(hours=11))
    login(nurse)
    _, html = _listing(client)
    # Closed units last, however recent their records; then the later closing first.
    assert _rows(html) == [busy.id, fresh.id, old.id, done.id, late.id]
    correct_step(
        session=session,
        registry=registry,
        record_id=receipt.id,
        by=quality,
        credential=PasswordEntry(DEFAULT_PASSWORD),
        freshness_minutes=5,
        reason="the logger said 6",
        fields={"temperature_c": 6},
        now=T0 + timedelta(hours=12),
    )
    session.commit()
    _, html = _listing(client)
    # A correction after the closing is the closed unit's latest activity.
    assert _rows(html) == [busy.id, fresh.id, old.id, late.id, done.id]


def test_each_filter(client, login, people, fill, make_unit, session):
    for code, name in (("HEM", "Haematology ward"), ("CTU", "Cell therapy unit")):
        ward = accounts.create_ward(session=session, site_id="SH-01", code=code, name=name)
        session.flush()
        # The nurse is on both wards: a nurse sees only her wards' units (and those on none).
        accounts.grant_ward(session=session, actor=accounts.Actor.system("test"),
                            user=people["nurse"], ward_id=ward.id, reason="test")  # fmt: skip
    units = fill(3)
    in_ward = make_unit(by=people["nurse"], unit_id="W-1", attributes={"ward": "HEM"})
    login(people["nurse"])

    _, html = _listing(client, status="complete")
    assert _rows(html) == [units[1].id]
    assert '<option value="complete" selected>complete</option>' in html
    _, html = _listing(client, status="in_progress")
    assert set(_rows(html)) == {u.id for u in units} - {units[1].id} | {in_ward.id}
    _, html = _listing(client, status="cancelled")
    assert _rows(html) == [] and "No unit matches these filters." in html

    _, html = _listing(client, product="kymriah")
    assert _rows(html) == ["K-001"]
    assert '<option value="kymriah" selected>kymriah</option>' in html

    _, html = _listing(client, ward="HEM")
    assert _rows(html) == [in_ward.id] and "ward HEM" in html
    assert '<option value="HEM" selected>HEM — Haematology ward</option>' in html
    _, html = _listing(client, ward="CTU")
    assert _rows(html) == []

    _, html = _listing(client, ward="HEM", product="kymriah")
    assert _rows(html) == []
    # The page links keep the filters.
    _, html = _listing(client, status="in_progress", page=3)
    assert 'href="/units?page=1&amp;status=in_progress"' in html


def test_an_unknown_status_is_a_clear_400(client, login, people):
    login(people["nurse"])
    status, html = _listing(client, status="lost")
    assert status == 400 and "There is no status &#39;lost&#39;" in html


def test_each_row_shows_status_product_next_due_and_findings_by_severity(
    client, login, people, fill
):
    fill(3)
    login(people["nurse"])
    _, html = _listing(client)
    rows = dict(re.findall(r'<tr data-unit="([^"]+)">(.*?)</tr>', html, re.S))
    kymriah = rows["K-001"]
    assert "kymriah 2026.3 · us" in kymriah and "in progress" in kymriah
    # The freezer read −110 °C for three hours while the unit was in it.
    assert 'data-severity="critical">1 critical' in kymriah
    assert "Prescription and indication check is due next." in kymriah
    complete = rows["T-001"]
    assert ">complete<" in complete
    assert 'data-testid="due">—' in complete  # nothing is due of a closed unit
    assert 'data-testid="findings"><span class="tag tag-on">none' in rows["T-002"]


def test_the_list_is_scoped_to_the_users_site(client, login, make_user, people, fill):
    fill(2)
    login(make_user("nurse", sites=("BJ-02",)))
    _, html = _listing(client)
    assert _rows(html) == []
    assert "No unit is registered at this site yet." in html
