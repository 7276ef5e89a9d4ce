"""Every route of the URL map, for every role, with objects of one's own site, of another
site and missing ones.

The expectation of each route derives from the access its view declares
(`qms.accounts.permissions`: `permission_required(P)`, `signed_in_required`, `public`):

- anonymous: sent to the sign-in page (public routes: answered, never a 500);
- a role without the permission: 403;
- a role with it, objects of its own site: answered (a GET: 2xx or a redirect; a POST with
  an empty form may refuse the form, but never as the role's refusal, never 404);
- a role with it, another site's object: exactly what a missing object gets;
- ward staff (nurses, physicians: `accounts.access.WARD_ROLES`), an object of their own
  site on another ward (a unit, its record): exactly what a missing object gets; every
  other role with the permission gets it as an object of its own site (never 404);
- ward staff never read another ward's unit id, patient reference or chain-of-identity id
  in any answer (the freezer it is in, its excursion, its deviation and findings, lists),
  while the roles that see the whole site do read them on those pages;
- never a 500.

A route joins the matrix by declaring its access; each URL parameter needs examples in
`EXAMPLES` below (built at two sites by the `examples` fixture; `Example.also` adds
further objects of the own site whose pages name another ward's unit). A route without a
declaration or with a parameter without examples fails `test_every_route_is_in_the_matrix`
with what to add.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from werkzeug.routing.converters import AnyConverter

from qms.accounts import service as accounts
from qms.accounts.access import WARD_ROLES
from qms.accounts.models import User, Ward
from qms.accounts.permissions import access_of
from qms.accounts.roles import Permission, Role, permissions_of
from qms.accounts.service import Actor
from qms.checklists.language import Registry
from qms.delivery import service as deliveries
from qms.quality import audits
from qms.quality import capa as cp
from qms.quality import deviations as dv
from qms.quality.models import Deviation
from qms.records import service as records
from qms.records.signatures import PasswordEntry, WitnessCredential
from qms.records.wards import WARD_ATTRIBUTE
from qms.reports.models import ReportVersion
from qms.storage import service as storage
from qms.web.app import runtime_of
from tests.reports.conftest import registered_dossier

OWN, OTHER = "SH-01", "BJ-02"
# The hospital group's quality officer belongs to OWN and to GROUP, a site without objects
# (not to OTHER): the matrix asks it everything while working at either of its two sites.
GROUP = "GZ-03"
GROUP_OFFICER = "quality_officer+group"
# The matrix's ward staff are on WARD-A, where the own site's unit is; WARD-B's unit is
# another ward's (ward codes no answer may name to them).
WARD, OTHER_WARD = "WARD-A", "WARD-B"
# What identifies the unit on WARD-B (stored in the own site's freezer, with an excursion and
# a deviation whose finding quotes both patient ids): no answer to ward staff may hold any.
OTHER_WARD_UNIT = "U-OWN-2"
OTHER_WARD_NAMES = (OTHER_WARD_UNIT, "P-0777", "P-0778", "CHG123426XYZ777")
# The pages that name the other ward's unit to those who see the whole site.
NAMING_PAGES = {"storage.equipment_list", "storage.equipment_page", "quality.deviation_page"}
ROLES = [role.value for role in Role]
PASSWORD = "correct-horse-battery"
CHECKLISTS = Path(__file__).parent.parent / "records" / "checklists"
STORED = Path(__file__).parent / "checklists"  # a product kept in a freezer

# Routes anyone may reach, on purpose.
PUBLIC = {"static", "accounts.login", "web.health", "report_check.public_check"}

# The decorator's own refusal: a role that holds the permission must never see it.
ROLE_REFUSAL = "Your role may not do this"


@dataclass(frozen=True)
class Example:
    """Values of a URL parameter: an object of the user's own site, of another site, and
    one that does not exist. `other=None`: the parameter names no site's object.
    `other_ward`: an object of the own site on another ward than the ward staff's."""

    own: object
    other: object | None = None
    missing: object | None = None
    other_ward: object | None = None
    also: tuple = ()  # further own-site objects (whose pages name another ward's unit)


def _unit(session, registry, by, unit_id, site, *, now, ward=None, **kw):
    unit = records.register_unit(
        session=session,
        registry=registry,
        by=by,
        unit_id=unit_id,
        checklist_id=kw.get("checklist_id", "testcart"),
        site_id=site,
        patient_ref=kw.get("patient_ref", "P-0042"),
        coi_id=kw.get("coi_id", "CHG123426ABC123"),
        attributes={WARD_ATTRIBUTE: ward} if ward else None,
        now=now - timedelta(hours=3),
    )
    session.flush()
    return unit


def _log(session, registry, unit, step, by, at, fields=None, *, witness=None, reason=None):
    return records.log_step(
        session=session,
        registry=registry,
        unit_id=unit.id,
        step=step,
        performed_at=at,
        fields=fields or {},
        by=by,
        credential=PasswordEntry(PASSWORD),
        witness=WitnessCredential(witness.username, PASSWORD) if witness else None,
        reason=reason,
        freshness_minutes=5,
        now=at,
    )


def _late_infusion(session, registry, unit, nurse, witness, now) -> str:
    """Identity check, thaw, an infusion 45 minutes later (a major finding: it opens a
    deviation); returns the identity check's record id."""
    at = now - timedelta(hours=2)
    identity = _log(
        session,
        registry,
        unit,
        "identity_check",
        nurse,
        at - timedelta(minutes=20),
        {"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
        witness=witness,
    )
    _log(session, registry, unit, "thaw_end", nurse, at, {"temperature_c": 20})
    _log(session, registry, unit, "infusion_end", nurse, at + timedelta(minutes=45),
         reason="pump alarm delayed the start")  # fmt: skip
    session.flush()
    return identity.record.id


def _staff(session, site, tag, roles, ward: Ward | None = None) -> dict[str, User]:
    """Users of a site, named <tag>.<role>; the ward staff among them on `ward`."""
    users = {
        role: accounts.create_user(
            session=session,
            actor=Actor.system("test"),
            username=f"{tag}.{role}",
            full_name=f"{tag} {role}",
            role=role,
            password=PASSWORD,
            site_ids=[site],
        )
        for role in roles
    }
    session.flush()
    for role, user in users.items():
        if ward is not None and role in WARD_ROLES:
            accounts.grant_ward(session=session, actor=Actor.system("test"), user=user,
                                ward_id=ward.id, reason="the matrix's ward")  # fmt: skip
    return users


def _site_objects(app, session, registry, site, tag, now, ward=None) -> dict[str, object]:
    """One site's objects of every kind a URL names (made through the services)."""
    settings = app.extensions["qms_settings"]
    roles = ("nurse", "physician", "pharmacist", "quality_officer")
    users = _staff(session, site, tag, roles, ward)
    nurse, officer = users["nurse"], users["quality_officer"]
    code = ward.code if ward else None
    unit = _unit(session, registry, users["pharmacist"], f"U-{tag.upper()}-1", site, now=now,
                 ward=code)  # fmt: skip
    record_id = _late_infusion(session, registry, unit, nurse, users["physician"], now)
    day = now.date()
    run = audits.run_audit(
        session=session,
        registry=registry,
        by=officer,
        scope=audits.AuditScope(
            site_id=site, date_from=day - timedelta(days=2), date_to=day + timedelta(days=1)
        ),
        now=now,
    )
    (deviation,) = session.exec(select(Deviation).where(Deviation.site_id == site)).all()
    sign = dv.Signer(PasswordEntry(PASSWORD))
    for action, kw in (
        ("assigned", {"details": {"owner": officer.username}}),
        ("investigation_started", {}),
        ("capa_required", {}),
    ):
        dv.record_event(
            session=session,
            by=officer,
            deviation_id=deviation.id,
            action=action,
            signer=sign,
            now=now,
            **kw,
        )
    capa = cp.open_capa(
        session=session,
        by=officer,
        site_id=site,
        title="Spare infusion pump",
        description="Pump alarms delay infusions.",
        deviations=[deviation.id],
        owner=officer.username,
        signer=sign,
        now=now,
    )
    cp.add_action(
        session=session,
        by=officer,
        capa_id=capa.id,
        title="Train the ward",
        owner=nurse.username,
        due_at=now + timedelta(days=14),
        signer=sign,
        now=now,
    )
    evidence = f"attendance at {tag}".encode()
    cp.add_evidence(
        session=session,
        by=nurse,
        capa_id=capa.id,
        action="1",
        text="Ward trained",
        files=[("attendance.txt", evidence)],
        store=settings.instance_path / "evidence",
        signer=sign,
        now=now,
    )
    equipment = storage.register_equipment(
        session=session,
        actor=Actor.system("test"),
        equipment_id=f"LN2-{tag.upper()}",
        kind="ln2_vapour",
        site_id=site,
    )
    report_id = registered_dossier(session, settings, unit, officer, now).id
    # Delivered to the matrix's regulator (of the own site) in either case: another
    # site's delivery must still answer as missing. The outbox makes no portal delivery
    # to a regulator not of the report's site, so the other site's is written directly.
    report = session.get(ReportVersion, report_id)
    made = deliveries.ensure_deliveries(
        session=session,
        report=report,
        recipients=[],
        regulators=["matrix.regulator"],
        language="en",
        schedule_run_id=None,
        now=now,
    )
    if made:
        (delivery,) = made
    else:
        from qms.core import ledger
        from qms.delivery.models import Delivery

        delivery = Delivery(
            id=f"DLV-matrix-{tag}",
            report_version_id=report.id,
            site_id=report.site_id,
            channel="portal",
            recipient="matrix.regulator",
            language="en",
            message_id=f"<matrix-{tag}@qms.invalid>",
            created_at=now,
        )
        ledger.write(session, delivery)
    session.flush()
    return {
        "unit_id": unit.id,
        "record_id": record_id,
        "run_id": run.id,
        "deviation_id": deviation.id,
        "capa_id": capa.id,
        "sha256": hashlib.sha256(evidence).hexdigest(),
        "equipment_id": equipment.id,
        "version_id": report_id,
        "delivery_id": delivery.id,
    }


def _other_ward_unit(session, registry, pharmacist, equipment_id, now):
    """The own site's unit on WARD-B, as its ward and pharmacy record it: placed in the own
    freezer (which then reads warm: an excursion with the unit inside), a bedside check whose
    patient ids differ (a critical finding quoting both: it opens a deviation), a thaw.
    Returns the unit, the thaw's record and the deviation."""
    ward_b = _staff(session, OWN, "own.ward-b", ("nurse",), _ward(session, OTHER_WARD))["nurse"]
    unit = _unit(session, registry, pharmacist, OTHER_WARD_UNIT, OWN, now=now, ward=OTHER_WARD,
                 checklist_id="teststored", patient_ref="P-0777", coi_id="CHG123426XYZ777")  # fmt: skip
    at = now - timedelta(hours=3)
    _log(session, registry, unit, "storage_in", pharmacist, at + timedelta(minutes=10),
         {"equipment": equipment_id}, reason="placed before the freezer's first reading")  # fmt: skip
    for minutes, temperature in ((20, -100.0), (30, -160.0)):
        storage.record_reading(session=session, actor=Actor.system("test"),
                               equipment_id=equipment_id, at=at + timedelta(minutes=minutes),
                               temperature_c=temperature, now=now)  # fmt: skip
    identity = {"product_patient_id": "P-0777", "wristband_patient_id": "P-0778"}
    checked = _log(session, registry, unit, "identity_check", ward_b, at + timedelta(minutes=40),
                   identity, reason="wristband misread, checked again")  # fmt: skip
    thaw = _log(session, registry, unit, "thaw_end", ward_b, at + timedelta(minutes=60),
                {"temperature_c": 20}, reason="thawed after the second check")  # fmt: skip
    deviation = session.exec(
        select(Deviation).where(Deviation.step_record_id == checked.record.id)
    ).one()
    return unit, thaw.record, deviation


def _ward(session, code) -> Ward:
    return session.exec(select(Ward).where(Ward.site_id == OWN, Ward.code == code)).one()


@pytest.fixture
def examples(app, session, make_user, make_site) -> dict[str, Example]:
    """What each URL parameter name stands for, made at two sites. A new parameter name
    (a report id, a deviation id...) gets its line here."""
    registry = Registry(
        [*Registry.from_directory(CHECKLISTS), *Registry.from_directory(STORED)], []
    )
    runtime_of(app).registry = registry
    make_site(OWN)
    make_site(OTHER, name="Test Hospital, Beijing")
    for code in (WARD, OTHER_WARD):
        accounts.create_ward(session=session, site_id=OWN, code=code, name=code)
    session.flush()
    now = datetime.now(UTC)
    own = _site_objects(app, session, registry, OWN, "own", now, ward=_ward(session, WARD))
    other = _site_objects(app, session, registry, OTHER, "other", now)
    nurse_own = session.exec(select(User).where(User.username == "own.nurse")).one()
    pharmacist = session.exec(select(User).where(User.username == "own.pharmacist")).one()
    other_ward, thaw, deviation = _other_ward_unit(
        session, registry, pharmacist, own["equipment_id"], now
    )
    nurse_other = session.exec(select(User).where(User.username == "other.nurse")).one()
    session.commit()
    missing = {
        "unit_id": "U-MISSING-1",
        "record_id": "U-MISSING-1#1",
        "run_id": "AUD-SH01-2000-0001",
        "deviation_id": "DEV-SH01-2000-0001",
        "capa_id": "CAPA-SH01-2000-0001",
        "equipment_id": "LN2-MISSING",
        "version_id": "unit-dossier:SH-01:U-MISSING-1:all:en/v1",
        "delivery_id": "DLV-000000000000000000000000",
    }
    return {
        "user_id": Example(nurse_own.id, nurse_other.id, 987654),
        **{name: Example(own[name], other[name], missing[name]) for name in missing},
        "unit_id": Example(own["unit_id"], other["unit_id"], missing["unit_id"], other_ward.id),
        "record_id": Example(own["record_id"], other["record_id"], missing["record_id"], thaw.id),
        # The other ward's unit's deviation: its page is open to the whole site's staff.
        "deviation_id": Example(
            own["deviation_id"],
            other["deviation_id"],
            missing["deviation_id"],
            also=(deviation.id,),
        ),  # fmt: skip
        # Parameters inside an object named by another parameter (its site decides).
        "index": Example(0),  # a run's first finding
        "number": Example("1"),  # a CAPA's first action
        "sha256": Example(own["sha256"]),  # the own CAPA's evidence file
        "step": Example("thaw_end"),  # a step of both units' checklists
    }


@pytest.fixture
def people(examples, make_user, session) -> dict[str, object]:
    """One user of each role at the own site; the ward staff on WARD-A."""
    made = {role: make_user(role, username=f"matrix.{role}", sites=(OWN,)) for role in ROLES}
    made[GROUP_OFFICER] = make_user(
        "quality_officer", username="matrix.group.officer", sites=(OWN, GROUP)
    )
    for role in WARD_ROLES:
        accounts.grant_ward(
            session=session,
            actor=Actor.system("test"),
            user=made[role],
            ward_id=_ward(session, WARD).id,
            reason="the matrix's ward",
        )
    session.commit()
    return made


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    rule: str
    access: object
    values: dict  # parameter -> Example


def _cases(app) -> tuple[list[Case], list[str]]:
    """The matrix's routes, and what is missing for the routes that cannot join it."""
    cases, problems = [], []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        view = app.view_functions[rule.endpoint]
        access = access_of(view)
        if access is None:
            problems.append(
                f"{rule.rule} ({rule.endpoint}) declares no access: decorate its view with "
                "permission_required(Permission.X) or signed_in_required "
                "(qms.accounts.permissions), or, if anyone may reach it on purpose, with "
                "public and add it to PUBLIC in tests/web/test_access_matrix.py"
            )
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            cases.append(Case(rule.endpoint, method, rule.rule, access, dict(rule._converters)))
    return cases, problems


def _missing_examples(cases: list[Case], examples) -> list[str]:
    return [
        f"{case.rule} ({case.endpoint}) has the URL parameter <{name}> without "
        "examples: add an Example(own, other site's, missing) for it to the "
        "`examples` fixture in tests/web/test_access_matrix.py"
        for case in cases
        for name, converter in case.values.items()
        if name not in examples and not isinstance(converter, AnyConverter)
    ]


def test_every_route_is_in_the_matrix(app, examples):
    cases, problems = _cases(app)
    problems += _missing_examples(cases, examples)
    assert not problems, "\n".join(sorted(set(problems)))
    assert {c.endpoint for c in cases} >= {"accounts.users", "records.unit_page", "web.home"}


def _values(case: Case, examples, which: str) -> dict | None:
    """URL values for `which` (own | other | missing | other_ward); None if no parameter
    names a site's object (another ward's, for other_ward)."""
    values, scoped = {}, False
    for name, converter in case.values.items():
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
            continue
        example = examples[name]
        if which == "other_ward":
            values[name] = example.other_ward or example.own
            scoped = scoped or example.other_ward is not None
            continue
        if example.other is None or which == "own":
            values[name] = example.own
        else:
            values[name] = getattr(example, which)
            scoped = True
    return values if which == "own" or scoped else None


def _sign_in(client, user, working_site=None):
    client._cookies.clear()  # each request from a fresh sign-in: a case may sign out
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, f"{user.username} could not sign in"
    if working_site is not None:
        chosen = client.post("/site", data={"site_id": working_site})
        assert chosen.status_code == 302, f"{user.username} could not work at {working_site}"


def _names_other_ward_unit(body: bytes, asked: dict) -> list[str]:
    """What of the other ward's unit an answer names, besides what was asked for."""
    for value in asked.values():
        body = body.replace(str(value).encode(), b"")
    return [name for name in OTHER_WARD_NAMES if name.encode() in body]


def _ask(app, client, case, values):
    with app.test_request_context():
        url = app.url_map.bind("localhost").build(case.endpoint, values, method=case.method)
    return client.open(url, method=case.method, data={})


def _title_with_markup(response) -> bytes | None:
    """The start of a page's <title> when it holds a tag (a block left open in a template
    puts the page's markup into the browser's tab), else None."""
    if response.status_code != 200 or response.mimetype != "text/html":
        return None
    found = re.search(rb"<title>(.*?)</title>", response.get_data(), re.S)
    if found is None or b"<" not in found.group(1):
        return None
    return found.group(1)[:60]


@pytest.mark.parametrize(
    "role, working_site",
    [(None, None), *((role, None) for role in ROLES), (GROUP_OFFICER, OWN), (GROUP_OFFICER, GROUP)],
    ids=[
        "anonymous",
        *ROLES,
        f"group quality officer at {OWN}",
        f"group quality officer at {GROUP}",
    ],
)
def test_access_matrix(app, client, examples, people, role, working_site):
    """`GROUP_OFFICER`: a quality officer of two sites answers exactly as the quality
    officer of one, whichever of its sites it works at."""
    app.config["WTF_CSRF_ENABLED"] = False  # the matrix asks about access, not forms
    cases, problems = _cases(app)
    assert not problems, "see test_every_route_is_in_the_matrix"
    person = people[role] if role else None
    role = "quality_officer" if role == GROUP_OFFICER else role
    granted = permissions_of(role) if role else None
    wrong = []
    named = set()  # the endpoints whose answer named the other ward's unit
    for case in cases:
        answers, asked = {}, {}
        for which in ("own", "other", "missing", "other_ward"):
            values = _values(case, examples, which)
            if values is None:
                continue
            if role is None:
                client._cookies.clear()
            else:
                _sign_in(client, person, working_site)
            response = _ask(app, client, case, values)
            answers[which] = response
            asked[which] = values
            body = response.get_data()  # a file (a PDF, evidence) is bytes
            who = f"{role} at {working_site}" if working_site else role or "anonymous"
            where = f"{who} {case.method} {case.rule} ({which})"
            if response.status_code >= 500:
                wrong.append(f"{where}: {response.status_code}")
                continue
            title = _title_with_markup(response)
            if title:
                wrong.append(f"{where}: the page's title holds markup ({title!r})")
            found = _names_other_ward_unit(body, values)
            if found and role in WARD_ROLES:
                wrong.append(f"{where}: names another ward's unit ({', '.join(found)})")
            elif found and which == "own":
                named.add(case.endpoint)
            if role is None:
                if not (response.status_code == 302 and "/login" in response.headers["Location"]):
                    wrong.append(f"{where}: {response.status_code}, not sent to sign in")
                continue
            allowed = case.access.kind == "signed_in" or bool(granted & case.access.permission)
            if not allowed:
                if response.status_code != 403:
                    wrong.append(f"{where}: {response.status_code}, expected 403")
                continue
            if ROLE_REFUSAL.encode() in body:
                wrong.append(f"{where}: refused for the role, which holds the permission")
            if which == "own" or (which == "other_ward" and role not in WARD_ROLES):
                if response.status_code == 404:
                    wrong.append(f"{where}: 404 for an object of the user's own site")
                if case.method == "GET" and response.status_code >= 400:
                    wrong.append(f"{where}: {response.status_code} for the user's own site")
        allowed_role = role is not None and (
            case.access.kind == "signed_in" or bool(granted & case.access.permission)
        )
        # Further objects of the own site, whose pages name the other ward's unit.
        for name in case.values:
            for value in getattr(examples.get(name), "also", ()) if allowed_role else ():
                if case.method != "GET":
                    continue
                values = {**_values(case, examples, "own"), name: value}
                _sign_in(client, people[role])
                response = _ask(app, client, case, values)
                where = f"{role} GET {case.rule} ({name}={value})"
                if response.status_code >= 400:
                    wrong.append(f"{where}: {response.status_code} for the user's own site")
                found = _names_other_ward_unit(response.get_data(), values)
                if found and role in WARD_ROLES:
                    wrong.append(f"{where}: names another ward's unit ({', '.join(found)})")
                elif found:
                    named.add(case.endpoint)
        if allowed_role and "other" in answers:
            other, missing = answers["other"], answers["missing"]
            where = f"{role} {case.method} {case.rule}"
            if other.status_code != missing.status_code:
                wrong.append(
                    f"{where}: another site's object answers {other.status_code}, "
                    f"a missing one {missing.status_code}"
                )
            # An id asked for may itself hold the site's code (a report's id does): an
            # answer that repeats what was asked names nothing; anything else must not.
            shown = other.get_data()
            for value in asked["other"].values():
                shown = shown.replace(str(value).encode(), b"")
            if OTHER.encode() in shown:
                wrong.append(f"{where}: the answer names the other site {OTHER}")
        if allowed_role and role in WARD_ROLES and "other_ward" in answers:
            other, missing = answers["other_ward"], answers["missing"]
            where = f"{role} {case.method} {case.rule}"
            if other.status_code != missing.status_code:
                wrong.append(
                    f"{where}: another ward's object answers {other.status_code}, "
                    f"a missing one {missing.status_code}"
                )
            shown = other.get_data()
            for value in asked["other_ward"].values():
                shown = shown.replace(str(value).encode(), b"")
            if OTHER_WARD.encode() in shown:
                wrong.append(f"{where}: the answer names the other ward {OTHER_WARD}")
    if (
        role not in (None, *WARD_ROLES)
        and Permission.VIEW_RECORDS in granted
        and working_site in (None, OWN)
    ):
        # Those who see the whole site read the other ward's unit where it is: else the
        # fixture no longer puts it there and the ward staff's check above proves nothing
        # (a list shows the site being worked at: not the own site's unit while at GROUP).
        for endpoint in sorted(NAMING_PAGES - named):
            wrong.append(f"{role} {endpoint}: does not name {OTHER_WARD_UNIT}, of its site")
    assert not wrong, "\n".join(wrong)


def test_a_route_without_a_declaration_or_examples_is_named_with_what_to_add(app, examples):
    from qms.accounts.permissions import permission_required
    from qms.accounts.roles import Permission

    @app.route("/forgotten")
    def forgotten():
        return "no declaration"

    @app.route("/reports/<report_id>")
    @permission_required(Permission.VIEW_REPORTS)
    def report(report_id):
        return report_id

    cases, problems = _cases(app)
    assert any("/forgotten (forgotten) declares no access" in p for p in problems)
    missing = _missing_examples(cases, examples)
    assert any("/reports/<report_id>" in p and "<report_id> without examples" in p for p in missing)
