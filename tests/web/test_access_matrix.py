"""Every route of the URL map, for every role, with objects of one's own site, of another
site and missing ones.

The expectation of each route derives from the access its view declares
(`qms.accounts.permissions`: `permission_required(P)`, `signed_in_required`, `public`):

- anonymous: sent to the sign-in page (public routes: answered, never a 500);
- a role without the permission: 403;
- a role with it, objects of its own site: answered (a GET: 2xx or a redirect; a POST with
  an empty form may refuse the form, but never as the role's refusal, never 404);
- a role with it, another site's object: exactly what a missing object gets;
- never a 500.

A route joins the matrix by declaring its access; each URL parameter needs examples in
`EXAMPLES` below (built at two sites by the `examples` fixture). A route without a
declaration or with a parameter without examples fails `test_every_route_is_in_the_matrix`
with what to add.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.routing.converters import AnyConverter

from qms.accounts.permissions import access_of
from qms.accounts.roles import Role, permissions_of
from qms.checklists.language import Registry
from qms.records import service as records
from qms.web.app import runtime_of

OWN, OTHER = "SH-01", "BJ-02"
ROLES = [role.value for role in Role]
PASSWORD = "correct-horse-battery"
CHECKLISTS = Path(__file__).parent.parent / "records" / "checklists"

# Routes anyone may reach, on purpose.
PUBLIC = {"static", "accounts.login", "web.health"}

# The decorator's own refusal: a role that holds the permission must never see it.
ROLE_REFUSAL = "Your role may not do this"


@dataclass(frozen=True)
class Example:
    """Values of a URL parameter: an object of the user's own site, of another site, and
    one that does not exist. `other=None`: the parameter names no site's object."""

    own: object
    other: object | None = None
    missing: object | None = None


def _unit(session, registry, by, unit_id, site):
    unit = records.register_unit(
        session=session,
        registry=registry,
        by=by,
        unit_id=unit_id,
        checklist_id="testcart",
        site_id=site,
        patient_ref="P-0042",
        coi_id="CHG123426ABC123",
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    session.flush()
    return unit


@pytest.fixture
def examples(app, session, make_user) -> dict[str, Example]:
    """What each URL parameter name stands for, made at two sites. A new parameter name
    (a report id, a deviation id...) gets its line here."""
    registry = Registry.from_directory(CHECKLISTS)
    runtime_of(app).registry = registry
    nurse_own = make_user("nurse", username="own.nurse", sites=(OWN,))
    nurse_other = make_user("nurse", username="other.nurse", sites=(OTHER,))
    _unit(session, registry, nurse_own, "U-OWN-1", OWN)
    _unit(session, registry, nurse_other, "U-OTHER-1", OTHER)
    session.commit()
    return {
        "user_id": Example(nurse_own.id, nurse_other.id, 987654),
        "unit_id": Example("U-OWN-1", "U-OTHER-1", "U-MISSING-1"),
    }


@pytest.fixture
def people(make_user, session) -> dict[str, object]:
    made = {role: make_user(role, username=f"matrix.{role}", sites=(OWN,)) for role in ROLES}
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
    """URL values for `which` (own | other | missing); None if no parameter names a site's object."""
    values, scoped = {}, False
    for name, converter in case.values.items():
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
            continue
        example = examples[name]
        if example.other is None or which == "own":
            values[name] = example.own
        else:
            values[name] = getattr(example, which)
            scoped = True
    return values if which == "own" or scoped else None


def _sign_in(client, user):
    client._cookies.clear()  # each request from a fresh sign-in: a case may sign out
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, f"{user.username} could not sign in"


def _ask(app, client, case, values):
    with app.test_request_context():
        url = app.url_map.bind("localhost").build(case.endpoint, values, method=case.method)
    return client.open(url, method=case.method, data={})


@pytest.mark.parametrize("role", [None, *ROLES], ids=["anonymous", *ROLES])
def test_access_matrix(app, client, examples, people, role):
    app.config["WTF_CSRF_ENABLED"] = False  # the matrix asks about access, not forms
    cases, problems = _cases(app)
    assert not problems, "see test_every_route_is_in_the_matrix"
    granted = permissions_of(role) if role else None
    wrong = []
    for case in cases:
        answers = {}
        for which in ("own", "other", "missing"):
            values = _values(case, examples, which)
            if values is None:
                continue
            if role is None:
                client._cookies.clear()
            else:
                _sign_in(client, people[role])
            response = _ask(app, client, case, values)
            answers[which] = response
            body = response.get_data(as_text=True)
            where = f"{role or 'anonymous'} {case.method} {case.rule} ({which})"
            if response.status_code >= 500:
                wrong.append(f"{where}: {response.status_code}")
                continue
            if role is None:
                if not (response.status_code == 302 and "/login" in response.headers["Location"]):
                    wrong.append(f"{where}: {response.status_code}, not sent to sign in")
                continue
            allowed = case.access.kind == "signed_in" or bool(granted & case.access.permission)
            if not allowed:
                if response.status_code != 403:
                    wrong.append(f"{where}: {response.status_code}, expected 403")
                continue
            if ROLE_REFUSAL in body:
                wrong.append(f"{where}: refused for the role, which holds the permission")
            if which == "own":
                if response.status_code == 404:
                    wrong.append(f"{where}: 404 for an object of the user's own site")
                if case.method == "GET" and response.status_code >= 400:
                    wrong.append(f"{where}: {response.status_code} for the user's own site")
        allowed_role = role is not None and (
            case.access.kind == "signed_in" or bool(granted & case.access.permission)
        )
        if allowed_role and "other" in answers:
            other, missing = answers["other"], answers["missing"]
            where = f"{role} {case.method} {case.rule}"
            if other.status_code != missing.status_code:
                wrong.append(
                    f"{where}: another site's object answers {other.status_code}, "
                    f"a missing one {missing.status_code}"
                )
            if OTHER in other.get_data(as_text=True):
                wrong.append(f"{where}: the answer names the other site {OTHER}")
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
