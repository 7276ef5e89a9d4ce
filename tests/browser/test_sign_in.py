"""A person signs in with each demo account in a real browser and sees their page."""

from __future__ import annotations

import re

import pytest

from qms.demo import DEMO_USERS

pytestmark = pytest.mark.browser

HEADINGS = {
    "nurse": "Ward work",
    "physician": "Ward work",
    "pharmacist": "Pharmacy and cell-therapy lab",
    "quality_officer": "Quality",
    "regulator": "Reports",
    "admin": "Administration",
}


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_every_demo_user_signs_in_and_out(live_server, page):
    for username, full_name, role, password in DEMO_USERS:
        _sign_in(page, live_server.url, username, password)
        assert page.locator("[data-testid=current-user]").inner_text() == full_name
        # The role's own heading, under the worklist of those who have one.
        assert page.get_by_role("heading", name=HEADINGS[role], exact=True).count() == 1
        page.click("text=Sign out")
        assert page.locator(".flash").inner_text() == "You have signed out."


def test_lockout_and_admin_unlock(live_server, page):
    for _ in range(5):
        _sign_in(page, live_server.url, "li.na", "not-her-password")
    assert "now locked" in page.locator(".flash").inner_text()
    _sign_in(page, live_server.url, "li.na", "demo-nurse-2026")
    assert "locked" in page.locator(".flash").inner_text()

    _sign_in(page, live_server.url, "sun.hao", "demo-admin-2026")
    page.click("text=Users")
    row = page.locator("tr[data-username='li.na']")
    assert "locked until" in row.inner_text()
    row.get_by_placeholder("Reason to unlock").fill("confirmed identity by phone")
    row.get_by_role("button", name="Unlock").click()
    assert "unlock done" in page.locator(".flash").inner_text()
    page.click("text=Sign out")

    _sign_in(page, live_server.url, "li.na", "demo-nurse-2026")
    assert page.locator("[data-testid=current-user]").inner_text() == "Li Na"


def test_nurse_opening_admin_page_sees_403(live_server, page):
    _sign_in(page, live_server.url, "li.na", "demo-nurse-2026")
    response = page.goto(live_server.url + "/admin/users")
    assert response.status == 403
    assert re.search("You may not do this", page.content())
