"""Wards in Debian's Chromium: the administrator makes a nurse and puts her on the haematology
ward; she cannot see or record the demonstration units, which are on the cell therapy unit,
while the cell therapy unit's nurse can. The ward page fits a tablet and a phone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent / "screenshots"
ADMIN = ("sun.hao", "demo-admin-2026")
NEW_NURSE = ("zhou.xin", "zhou-haematology-2026")
CTU_NURSE = ("li.na", "demo-nurse-2026")
UNIT = "Y-2026-002"  # in the freezer, on the cell therapy unit (CTU)


def sign_in(page, url, username, password):
    page.context.clear_cookies()
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def _no_sideways_scroll(page, what):
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{what} scrolls sideways ({scroll} > {inner})"


def _steps(live_server) -> int:
    exported = live_server.qms("export")
    assert exported.returncode == 0, exported.stderr
    return sum(json.loads(line).get("type") == "step" for line in exported.stdout.splitlines())


def _put_on_ward(page, url):
    """The administrator makes the nurse and puts her on HEM; returns the ward page's URL."""
    sign_in(page, url, *ADMIN)
    page.goto(url + "/admin/users/new")
    page.fill("#username", NEW_NURSE[0])
    page.fill("#full_name", "Zhou Xin")
    page.select_option("#role", "nurse")
    page.select_option("#sites", "SH-01")
    page.fill("#password", NEW_NURSE[1])
    with page.expect_navigation():
        page.get_by_role("button", name="Create user").click()
    row = page.locator(f"tr[data-username='{NEW_NURSE[0]}']")
    assert row.locator("[data-testid=wards-link]").inner_text() == "none"
    with page.expect_navigation():
        row.locator("[data-testid=wards-link]").click()
    assert "On no ward" in page.locator("[data-testid=no-ward]").inner_text()
    page.select_option("#ward", label="SH-01 HEM — Haematology ward")
    page.fill("#reason", "joins the haematology ward")
    with page.expect_navigation():
        page.get_by_role("button", name="Put on the ward").click()
    assert page.locator(".flash").first.inner_text() == "zhou.xin is now on ward HEM."
    assert page.locator("[data-testid=held-wards] tr[data-ward=HEM]").count() == 1
    history = page.locator("[data-testid=ward-history]").inner_text()
    assert "joins the haematology ward" in history and "Sun Hao" in history
    return page.url


def test_a_nurse_of_another_ward_cannot_see_or_record_the_unit(live_server, page):
    url = live_server.url
    _put_on_ward(page, url)
    # The cell therapy unit's nurse sees the unit and its forms.
    sign_in(page, url, *CTU_NURSE)
    assert page.locator(f"tr[data-unit='{UNIT}']").count() == 1  # her worklist
    page.goto(url + f"/units/{UNIT}")
    assert page.locator("form[data-step]").count() > 0
    # The haematology nurse: not in her worklist, not in the units list, the page missing.
    sign_in(page, url, *NEW_NURSE)
    assert page.locator(f"tr[data-unit='{UNIT}']").count() == 0
    page.goto(url + "/units")
    assert UNIT not in page.content()
    missing = page.goto(url + "/units/NO-SUCH-UNIT")
    response = page.goto(url + f"/units/{UNIT}")
    assert response.status == 404 == missing.status
    assert "CTU" not in page.content()
    # Recording by hand (a form copied from another page) is refused as missing too.
    token = page.evaluate("document.querySelector('input[name=csrf_token]').value")
    before = _steps(live_server)
    answer = page.request.post(
        url + f"/units/{UNIT}/steps/tocilizumab_check",
        form={"csrf_token": token, "f-doses_on_hand": "2", "password": NEW_NURSE[1]},
    )
    assert answer.status == 404
    assert _steps(live_server) == before


def test_the_ward_page_fits_a_tablet_and_a_phone(live_server, browser):
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    ward_page = _put_on_ward(page, live_server.url)
    cookies = context.cookies()
    context.close()
    for width, height in ((1024, 768), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(ward_page)
        page.screenshot(path=str(SHOTS / f"ward-admin-{width}.png"), full_page=True)
        _no_sideways_scroll(page, f"the ward page at {width}px")
        page.goto(live_server.url + "/admin/users")
        page.screenshot(path=str(SHOTS / f"users-{width}.png"), full_page=True)
        context.close()
