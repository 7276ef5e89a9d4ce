"""Units list benchmark: `GET /units` (and page 2) at a site with 300 and with 3,000 units.

    .venv/bin/python bench/units.py [--units 300,3000] [--runs 15] [--databases sqlite,postgresql]

For each database and size: fill a fresh database with Kymriah units in realistic
shapes (records chained with the ledger's own declarations, as bench/ledger.py
does): units registered over the last months, most closed complete (a few cancelled),
the recent ones in progress at every stage (and some of the last month's waiting in the
freezer), one in twenty with a corrected record,
ten freezers logging hourly readings with the odd excursion. Then sign in through the
login form and time `GET /units` and `GET /units?page=2` through the Flask test
client, with the number of SQL statements each sends, next to a floor measured in the
same run: a bare page (one query for 50 units of the site, a minimal template) served
by the same app behind the same sign-in.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, insert, text
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import new_database  # noqa: E402
from qms.accounts import service as accounts  # noqa: E402
from qms.accounts.permissions import permission_required  # noqa: E402
from qms.accounts.roles import Permission  # noqa: E402
from qms.config import Settings  # noqa: E402
from qms.core.canonical import GENESIS, canonical_json, chain_hash  # noqa: E402
from qms.core.models import LedgerEntry  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.records.models import (  # noqa: E402
    SIGNATURE,
    STEP_RECORD,
    UNIT,
    UNIT_STATUS,
    Signature,
    StepRecord,
    Unit,
    UnitStatus,
)
from qms.storage import service as storage  # noqa: E402
from qms.storage.models import READING, Reading  # noqa: E402

SITE = "SH-01"
PASSWORD = "bench-password-2026"
PEOPLE = {  # username: role
    "chen.jie": "pharmacist",
    "zhang.min": "physician",
    "li.na": "nurse",
    "wang.wei": "nurse",
    "liu.yang": "quality_officer",
}
FREEZERS = [f"LN2-{n:02d}" for n in range(10)]
DAY2 = 24 * 60 + 8 * 60
# Kymriah, as the demonstration unit is recorded: (step, minutes after registration,
# performer, fields); the freezer is filled in per unit.
KYMRIAH_STEPS = [
    (
        "prescription_check",
        5,
        "zhang.min",
        {"diagnosis": "DLBCL, relapsed after two lines", "indication_confirmed": True},
    ),
    (
        "receipt",
        30,
        "chen.jie",
        {
            "coi_id": None,
            "shipper_id": "DS-778",
            "logger_id": "LG-5521",
            "logger_reviewed": True,
            "shipper_temperature_c": -171,
        },
    ),
    ("storage_in", 50, "chen.jie", {"equipment": None, "temperature_c": -162}),
    ("storage_out", DAY2, "chen.jie", {"equipment": None}),
    ("tocilizumab_check", DAY2 + 10, "chen.jie", {"doses_on_hand": 2}),
    (
        "identity_check",
        DAY2 + 40,
        "li.na",
        {"product_patient_id": None, "wristband_patient_id": None, "coi_id": None},
    ),
    ("thaw_start", DAY2 + 45, "li.na", {"temperature_c": 37}),
    ("thaw_end", DAY2 + 52, "li.na", {"temperature_c": 37}),
    ("infusion_start", DAY2 + 58, "li.na", {"rate_ml_min": 15, "filter": "none"}),
    ("infusion_end", DAY2 + 62, "li.na", {"volume_ml": 45}),
    ("disposal", DAY2 + 80, "li.na", {"method": "biohazard_waste"}),
    ("observation", DAY2 + 240, "zhang.min", {"crs_grade": 0, "icans_grade": 0}),
]
CLOSE_AFTER = timedelta(minutes=DAY2 + 300)


def setup_site(database: Database) -> dict[str, int]:
    with database.transaction() as s:
        accounts.create_site(session=s, site_id=SITE, name="Bench hospital")
        s.flush()
        for code, name in (("HEM", "Haematology ward"), ("CTU", "Cell therapy unit")):
            accounts.create_ward(session=s, site_id=SITE, code=code, name=name)
        system = accounts.Actor.system("bench")
        ids = {}
        for username, role in PEOPLE.items():
            user = accounts.create_user(
                session=s,
                actor=system,
                username=username,
                full_name=username.title(),
                role=role,
                password=PASSWORD,
                site_ids=[SITE],
            )
            s.flush()
            ids[username] = user.id
        for equipment in FREEZERS:
            storage.register_equipment(
                session=s, actor=system, equipment_id=equipment, kind="ln2_vapour", site_id=SITE
            )
    return ids


class ChainedFill:
    """Rows and their ledger entries, written in bulk, chained as the services chain them."""

    TABLES = {
        "ledger": LedgerEntry.__table__,
        "unit": Unit.__table__,
        "step": StepRecord.__table__,
        "signature": Signature.__table__,
        "status": UnitStatus.__table__,
        "reading": Reading.__table__,
    }

    def __init__(self, database: Database, people: dict[str, int]):
        self.database = database
        self.usernames = {user_id: name for name, user_id in people.items()}
        with database.transaction(write=False) as s:
            head = s.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq).desc())).first()
        self.previous, self.seq = (head.hash, head.seq) if head else (GENESIS, 0)
        self.batch: dict[str, list[dict]] = {key: [] for key in self.TABLES}

    def chain(self, kind: str, ref: str, content: dict) -> int:
        body = canonical_json(content)
        self.seq += 1
        digest = chain_hash(self.previous, body)
        self.batch["ledger"].append(
            {
                "seq": self.seq,
                "kind": kind,
                "ref": ref,
                "content": body,
                "prev_hash": self.previous,
                "hash": digest,
            }
        )
        self.previous = digest
        return self.seq

    def add_chained(self, table: str, declaration, row: dict) -> None:
        """Chain a typed row with the content its declaration derives, as ledger.write does."""
        content = declaration.content(row, self.usernames.__getitem__)
        row["ledger_seq"] = self.chain(content["type"], str(content["id"]), content)
        self.add(table, row)

    def add(self, table: str, row: dict) -> None:
        self.batch[table].append(row)
        if len(self.batch["ledger"]) >= 20_000:
            self.flush()

    def flush(self) -> None:
        with self.database.transaction() as s:
            for key, table in self.TABLES.items():
                if self.batch[key]:
                    s.execute(insert(table), self.batch[key])
                    self.batch[key] = []


def fill(database: Database, people: dict[str, int], units: int, now: datetime) -> int:
    """`units` Kymriah units registered over the last months; returns the ledger records."""
    chained = ChainedFill(database, people)
    span = timedelta(hours=units * 1.0)  # about one unit an hour, up to now
    start = now - span
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < now:
        for n, equipment in enumerate(FREEZERS):
            number = int((hour - start).total_seconds() // 3600)
            warm = (number + 37 * n) % 500 == 0  # the odd excursion above −120 °C
            temperature = -110.0 if warm else -162.0 + (number + n) % 3
            chained.add_chained(
                "reading",
                READING,
                {
                    "equipment_id": equipment,
                    "at": hour,
                    "temperature_c": temperature,
                    "recorded_at": hour,
                    "recorded_by": "logger",
                    "source": "logger",
                    "imported_at": None,
                    "imported_by": None,
                },
            )
        hour += timedelta(hours=1)
    for i in range(units):
        registered = start + span * i / units
        _one_unit(chained, people, i, registered, now)
    chained.flush()
    return chained.seq


def _one_unit(chained: ChainedFill, people, i: int, registered: datetime, now: datetime) -> None:
    unit_id = f"K-{i + 1:05d}"
    patient, coi = f"P-{i + 1:06d}", f"CHG1234{i + 1:07d}A"
    attributes = {"age_years": 20 + i % 50, "ward": ("HEM", "CTU")[i % 2]}
    chained.add_chained(
        "unit",
        UNIT,
        {
            "id": unit_id,
            "site_id": SITE,
            "checklist_id": "kymriah",
            "checklist_version": "2026.1",
            "profile": "cn",
            "coi_id": coi,
            "patient_ref": patient,
            "attributes": canonical_json(attributes),
            "registered_at": registered,
            "registered_by_id": people["chen.jie"],
            "imported_at": None,
            "imported_by": None,
        },
    )
    cancelled = i % 25 == 7
    # One in ten of the last month's units waits in the freezer for its infusion date.
    waiting = i % 10 == 5 and now - registered < timedelta(days=30)
    freezer = FREEZERS[i % len(FREEZERS)]
    number = 0
    last_at = registered
    for step, minutes, by, template in KYMRIAH_STEPS:
        performed = registered + timedelta(minutes=minutes)
        if performed + timedelta(minutes=1) > now or (cancelled and step == "storage_out"):
            break
        if waiting and step == "storage_out":
            break
        fields = {
            k: (freezer if k == "equipment" else coi if k == "coi_id" else patient)
            if v is None
            else v
            for k, v in template.items()
        }
        number += 1
        witness = "wang.wei" if step == "identity_check" else None
        record_id = f"{unit_id}#{number}"
        _step(chained, people, record_id, unit_id, step, fields, performed, by, witness)
        last_at = performed
        if i % 20 == 3 and step == "infusion_start":  # a typing error, corrected
            number += 1
            _step(
                chained,
                people,
                f"{unit_id}#{number}",
                unit_id,
                step,
                {**fields, "rate_ml_min": 15},
                performed,
                by,
                None,
                corrects=record_id,
                recorded_by="li.na",
                recorded_at=performed + timedelta(minutes=20),
            )
    closes = registered + CLOSE_AFTER
    if cancelled and now - registered > timedelta(days=2):
        _status(chained, people, unit_id, "cancelled", last_at + timedelta(hours=1))
    elif not cancelled and not waiting and closes + timedelta(hours=6) < now:
        _status(chained, people, unit_id, "complete", closes)


def _step(
    chained: ChainedFill,
    people,
    record_id: str,
    unit_id: str,
    step: str,
    fields: dict,
    performed: datetime,
    by: str,
    witness: str | None,
    *,
    corrects: str | None = None,
    recorded_by: str | None = None,
    recorded_at: datetime | None = None,
) -> None:
    recorded_at = recorded_at or performed + timedelta(seconds=30)
    recorded_by = recorded_by or by
    role, witness_role = PEOPLE[by], PEOPLE[witness] if witness else None
    reason = "typing error: the pump ran at 15 mL/min" if corrects else None
    chained.add_chained(
        "step",
        STEP_RECORD,
        {
            "id": record_id,
            "unit_id": unit_id,
            "step": step,
            "fields": canonical_json(fields),
            "performed_at": performed,
            "recorded_at": recorded_at,
            "performed_by_id": people[by],
            "performed_by_role": role,
            "witness_id": people[witness] if witness else None,
            "witness_role": witness_role,
            "recorded_by_id": people[recorded_by],
            "meaning": "performed",
            "checklist_id": "kymriah",
            "checklist_version": "2026.1",
            "corrects_id": corrects,
            "reason": reason,
            "findings": "[]",
            "imported_at": None,
            "imported_by": None,
        },
    )
    signers = [(recorded_by, "performed")] + ([(witness, "witnessed")] if witness else [])
    for n, (signer, meaning) in enumerate(signers, start=1):
        signature_id = f"{record_id}/{n}"
        chained.add_chained(
            "signature",
            SIGNATURE,
            {
                "id": signature_id,
                "record_id": record_id,
                "signer_id": people[signer],
                "printed_name": signer.title(),
                "meaning": meaning,
                "signed_at": recorded_at,
                "method": "password",
                "imported_at": None,
                "imported_by": None,
            },
        )


def _status(chained: ChainedFill, people, unit_id: str, status: str, at: datetime) -> None:
    record_id = f"{unit_id}!1"
    reason = "patient not infused" if status == "cancelled" else None
    chained.add_chained(
        "status",
        UNIT_STATUS,
        {
            "id": record_id,
            "unit_id": unit_id,
            "status": status,
            "at": at,
            "recorded_at": at,
            "by_id": people["zhang.min"],
            "by_role": "physician",
            "method": "password",
            "reason": reason,
            "findings": "[]",
            "imported_at": None,
            "imported_by": None,
        },
    )


FLOOR_TEMPLATE = """<!doctype html><title>floor</title><table>
{% for u in units %}<tr><td>{{ u.id }}</td><td>{{ u.checklist_id }}</td><td>{{ u.patient_ref }}</td></tr>{% endfor %}
</table>"""


def add_floor_page(app) -> None:
    """A bare page behind the same sign-in: one query for 50 units, a minimal template."""
    from flask import render_template_string

    from qms.web.database import db_session

    @permission_required(Permission.VIEW_RECORDS)
    def floor():
        units = db_session().exec(
            select(Unit)
            .where(Unit.site_id == SITE)
            .order_by(col(Unit.registered_at).desc())
            .limit(50)
        )
        return render_template_string(FLOOR_TEMPLATE, units=list(units))

    app.add_url_rule("/bench-floor", "bench_floor", floor)


def measure(client, database: Database, path: str, runs: int) -> tuple[float, int, str]:
    """Median seconds of `runs` GETs (after one warm-up), statements per GET, the last page."""
    counted = [0]

    def count(*_args) -> None:
        counted[0] += 1

    client.get(path)
    times = []
    event.listen(database.engine, "before_cursor_execute", count)
    try:
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    return statistics.median(times), counted[0] // runs, response.get_data(as_text=True)


def sign_in(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    response = client.post(
        "/login", data={"username": "li.na", "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code in (302, 303), "sign-in failed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="300,3000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    from qms.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.databases.split(","):
            for size in (int(n) for n in args.units.split(",")):
                url, drop = new_database(backend, Path(tmp))
                try:
                    migrate(url)
                    database = Database(url)
                    people = setup_site(database)
                    now = datetime.now(UTC)
                    started = time.perf_counter()
                    records = fill(database, people, size, now)
                    if backend == "postgresql":
                        # A live server's autovacuum analyses tables after a bulk load;
                        # without statistics the planner nests loops over 3,000 units.
                        with database.transaction() as s:
                            s.execute(text("ANALYZE"))
                    print(
                        f"[{backend}] {size} units: {records} ledger records filled in "
                        f"{time.perf_counter() - started:.1f}s"
                    )
                    settings = Settings(
                        instance_path=Path(tmp),
                        database_url=url,
                        secret_key="bench-secret",
                        secure_cookies=False,
                    )
                    app = create_app(settings, database=database)
                    add_floor_page(app)
                    client = app.test_client()
                    sign_in(client)
                    floor, floor_q, _ = measure(client, database, "/bench-floor", args.runs)
                    first, first_q, html = measure(client, database, "/units", args.runs)
                    second, second_q, _ = measure(client, database, "/units?page=2", args.runs)
                    shown = len(re.findall(r"<tr data-unit=", html))
                    pages = re.search(r"page 1 of (\d+)", html)
                    print(
                        f"[{backend}] {size} units: GET /units {first * 1000:.0f} ms, "
                        f"{first_q} queries ({shown} rows, {pages.group(1) if pages else 1} pages); "
                        f"page 2 {second * 1000:.0f} ms, {second_q} queries; "
                        f"floor {floor * 1000:.0f} ms, {floor_q} queries "
                        f"(median of {args.runs}; /units = {first / floor:.1f}x floor)"
                    )
                    database.dispose()
                finally:
                    drop()


if __name__ == "__main__":
    main()
