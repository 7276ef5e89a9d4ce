"""Every demo role gets a page fit for it; errors have pages, not stack traces."""

from __future__ import annotations

import pytest

ROLE_TEXT = {
    "nurse": "Ward work",
    "physician": "Ward work",
    "pharmacist": "Pharmacy and cell-therapy lab",
    "quality_officer": "Quality",
    "regulator": "Reports",
    "admin": "Administration",
}


@pytest.mark.parametrize("role", sorted(ROLE_TEXT))
def test_home_page_fits_role(client, make_user, login, role):
    login(make_user(role))
    html = client.get("/").get_data(as_text=True)
    assert ROLE_TEXT[role] in html
    assert ("Manage users" in html) == (role == "admin")


def test_404_page(client, make_user, login):
    login(make_user("nurse"))
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)


def test_static_assets_are_served_locally(client):
    response = client.get("/static/qms.css")
    assert response.status_code == 200 and b"--accent" in response.data
    assert b"http" not in client.get("/login").data.split(b"<body>")[0].replace(b"http-equiv", b"")


def test_500_page_says_nothing_was_half_saved(app, client):
    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "Something went wrong" in text and "boom" not in text


def test_a_write_conflict_is_a_409_page_and_nothing_half_saved(app, client, session, make_user):
    from sqlalchemy import func, select

    from qms.accounts.models import Site
    from qms.web.database import db_session

    make_user("nurse")
    session.commit()
    before = session.scalar(select(func.count()).select_from(Site))

    @app.route("/conflict", methods=["GET"])
    def conflict():
        s = db_session()
        s.add(Site(id="SH-01", name="the same id again"))
        s.commit()
        return "saved"

    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/conflict")
    assert response.status_code == 409
    assert "at the same moment" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Site)) == before
