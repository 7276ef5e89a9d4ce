"""Demonstration data: a Shanghai hospital, two wards, one user per role, a freezer with
its readings, and units recorded through the same services the ward uses (so they are
on the ledger, signed, and checked by the engine).

The passwords are printed in the README; never load this into a production database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from qms.accounts import service
from qms.accounts.models import User
from qms.checklists.language import Registry
from qms.db import utcnow
from qms.records import corrections
from qms.records import service as records
from qms.records.signatures import PasswordEntry, WitnessCredential
from qms.records.status import set_unit_status
from qms.storage import service as storage

DEMO_SITE = ("SH-01", "Xuhui Demonstration Hospital, Shanghai")
# The district its regulator covers: a regional annual report is of a region.
DEMO_REGION = ("SH-XH", "Xuhui District, Shanghai")
DEMO_WARDS = [("HEM", "Haematology ward"), ("CTU", "Cell therapy unit")]
# username, printed name, role, password
DEMO_USERS = [
    ("li.na", "Li Na", "nurse", "demo-nurse-2026"),
    ("wang.wei", "Wang Wei", "nurse", "demo-nurse-2026"),
    ("zhang.min", "Dr Zhang Min", "physician", "demo-physician-2026"),
    ("chen.jie", "Chen Jie", "pharmacist", "demo-pharmacist-2026"),
    ("liu.yang", "Liu Yang", "quality_officer", "demo-quality-2026"),
    ("zhao.lei", "Zhao Lei", "regulator", "demo-regulator-2026"),
    ("sun.hao", "Sun Hao", "admin", "demo-admin-2026"),
]

# The ward staff work on the cell therapy unit, where the demonstration units are.
DEMO_USER_WARDS = {"li.na": ("CTU",), "wang.wei": ("CTU",), "zhang.min": ("CTU",)}
DEMO_UNIT_WARD = "CTU"


def load_demo(*, session: Session) -> str:
    site_id, site_name = DEMO_SITE
    # A Shanghai hospital: pages in Chinese unless the user or the browser asks otherwise.
    service.create_site(session=session, site_id=site_id, name=site_name, language="zh_CN")
    session.flush()
    from qms.regions.service import create_region, place_site

    region_id, region_name = DEMO_REGION
    create_region(
        session=session, region_id=region_id, name=region_name, actor_id=None, actor_name="demo"
    )
    place_site(
        session=session, region_id=region_id, site_id=site_id, actor_id=None, actor_name="demo"
    )
    wards = {
        code: service.create_ward(session=session, site_id=site_id, code=code, name=name)
        for code, name in DEMO_WARDS
    }
    session.flush()
    actor = service.Actor.system("demonstration data")
    for username, full_name, role, password in DEMO_USERS:
        user = service.create_user(
            session=session,
            actor=actor,
            username=username,
            full_name=full_name,
            role=role,
            password=password,
            site_ids=[site_id],
            reason="demonstration data",
        )
        for code in DEMO_USER_WARDS.get(username, ()):
            service.grant_ward(
                session=session,
                actor=actor,
                user=user,
                ward_id=wards[code].id,
                reason="demonstration data",
            )
    session.flush()
    units = load_demo_records(session=session, registry=Registry.from_directory(), now=utcnow())
    from qms.scheduling.demo import add_demo_schedule

    add_demo_schedule(session=session, site_id=site_id, regulator="zhao.lei", now=utcnow())
    lines = [
        f"demonstration data loaded: {site_name} ({site_id}), {len(DEMO_WARDS)} wards, "
        f"units {', '.join(units)}"
    ]
    lines += [
        f"  {username:<10} {role:<16} password {password}"
        for username, _, role, password in DEMO_USERS
    ]
    return "\n".join(lines)


PASSWORDS = {username: password for username, _, _, password in DEMO_USERS}


def load_demo_records(*, session: Session, registry: Registry, now: datetime) -> list[str]:
    """A finished Kymriah infusion (with one correction) and a Yescarta unit in the freezer."""
    site_id = DEMO_SITE[0]
    people = {u.username: u for u in session.exec(select(User)).all()}
    pharmacist, physician = people["chen.jie"], people["zhang.min"]
    nurse, witness = people["li.na"], people["wang.wei"]
    start = (now - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)

    storage.register_equipment(
        session=session,
        actor=service.Actor.of(pharmacist),
        equipment_id="LN2-01",
        kind="ln2_vapour",
        site_id=site_id,
        description="Vapour-phase liquid nitrogen freezer, cell therapy lab",
        reason="demonstration data",
    )
    for hours in range(0, 72, 4):
        storage.record_reading(
            session=session,
            actor=service.Actor.of(pharmacist),
            equipment_id="LN2-01",
            at=start + timedelta(hours=hours),
            temperature_c=-162.0 + (hours % 3),
            source="logger",
            now=now,
        )

    def log(unit_id, step, minutes, fields, by, *, with_witness=None, reason=None):
        witness_credential = None
        if with_witness is not None:
            witness_credential = WitnessCredential(
                with_witness.username, PASSWORDS[with_witness.username]
            )
        return records.log_step(
            session=session,
            registry=registry,
            unit_id=unit_id,
            step=step,
            performed_at=start + timedelta(minutes=minutes),
            fields=fields,
            by=by,
            credential=PasswordEntry(PASSWORDS[by.username]),
            freshness_minutes=5,
            witness=witness_credential,
            reason=reason,
            now=now,
        )

    def register(unit_id, checklist_id, patient_ref, coi_id, age):
        records.register_unit(
            session=session,
            registry=registry,
            by=pharmacist,
            unit_id=unit_id,
            checklist_id=checklist_id,
            site_id=site_id,
            patient_ref=patient_ref,
            coi_id=coi_id,
            profile="cn",
            attributes={"age_years": age, "ward": DEMO_UNIT_WARD},
            now=start,
        )
        return unit_id

    k = register("K-2026-001", "kymriah", "P-0042", "CHG123426ABC123", 34)
    prescription = {"diagnosis": "DLBCL, relapsed after two lines", "indication_confirmed": True}
    log(k, "prescription_check", 5, prescription, physician)
    receipt = {
        "coi_id": "CHG123426ABC123",
        "shipper_id": "DS-778",
        "logger_id": "LG-5521",
        "logger_reviewed": True,
        "shipper_temperature_c": -171,
    }
    log(k, "receipt", 30, receipt, pharmacist)
    log(k, "storage_in", 50, {"equipment": "LN2-01", "temperature_c": -162}, pharmacist)
    day2 = 24 * 60 + 8 * 60
    log(k, "storage_out", day2, {"equipment": "LN2-01"}, pharmacist)
    log(k, "tocilizumab_check", day2 + 10, {"doses_on_hand": 2}, pharmacist)
    premedication = {"paracetamol": True, "antihistamine": True, "corticosteroid": False}
    log(k, "premedication", day2 + 15, premedication, nurse)
    identity = {
        "product_patient_id": "P-0042",
        "wristband_patient_id": "P-0042",
        "coi_id": "CHG123426ABC123",
    }
    log(k, "identity_check", day2 + 40, identity, nurse, with_witness=witness)
    log(k, "thaw_start", day2 + 45, {"temperature_c": 37}, nurse)
    log(k, "thaw_end", day2 + 52, {"temperature_c": 37}, nurse)
    # A typing error (150 for 15 mL/min): stored with a reason, then corrected.
    typo = log(
        k,
        "infusion_start",
        day2 + 58,
        {"rate_ml_min": 150, "filter": "none"},
        nurse,
        reason="entered from the pump display; to be checked",
    )
    corrections.correct_step(
        session=session,
        registry=registry,
        record_id=typo.record.id,
        by=nurse,
        credential=PasswordEntry(PASSWORDS[nurse.username]),
        freshness_minutes=5,
        reason="typing error: the pump ran at 15 mL/min, as its log shows",
        fields={"rate_ml_min": 15},
        now=now,
    )
    log(k, "infusion_end", day2 + 62, {"volume_ml": 45}, nurse)
    log(k, "disposal", day2 + 80, {"method": "biohazard_waste"}, nurse)
    log(k, "observation", day2 + 240, {"crs_grade": 0, "icans_grade": 0}, physician)
    set_unit_status(
        session=session,
        registry=registry,
        unit_id=k,
        status="complete",
        by=physician,
        credential=PasswordEntry(PASSWORDS[physician.username]),
        freshness_minutes=5,
        at=start + timedelta(minutes=day2 + 300),
        now=now,
    )

    y = register("Y-2026-002", "yescarta", "P-0057", "CHG123426YSC002", 51)
    prescription = {"diagnosis": "large B-cell lymphoma", "indication_confirmed": True}
    log(y, "prescription_check", 20, prescription, physician)
    receipt = {
        "coi_id": "CHG123426YSC002",
        "shipper_id": "DS-781",
        "logger_id": "LG-5530",
        "logger_reviewed": True,
        "shipper_temperature_c": -168,
    }
    log(y, "receipt", 120, receipt, pharmacist)
    log(y, "storage_in", 140, {"equipment": "LN2-01", "temperature_c": -161}, pharmacist)
    return [k, y]
