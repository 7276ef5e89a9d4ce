"""A nurse finds a unit from the navigation and reads its records and corrections."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_nurse_reads_a_unit_with_its_correction(live_server, page):
    page.goto(live_server.url + "/login")
    page.fill("#username", "li.na")
    page.fill("#password", "demo-nurse-2026")
    page.click("button[type=submit]")
    page.click("nav >> text=Units")
    row = page.locator("tr[data-unit='Y-2026-002']")
    assert "Released from storage to the ward" in row.inner_text()
    page.click("text=K-2026-001")
    assert page.locator("h1").inner_text() == "Unit K-2026-001"
    assert "no findings" in page.locator("[data-testid=assessment]").inner_text()
    correction = page.locator("[data-testid=correction]")
    assert correction.count() == 1
    assert "typing error" in correction.inner_text() and "Li Na" in correction.inner_text()
    witnessed = page.locator("[data-testid=signature]", has_text="witnessed")
    assert witnessed.count() == 1 and "Wang Wei" in witnessed.inner_text()
    # What the ward recorded is on an intact chain.
    verify = live_server.qms("verify")
    assert verify.returncode == 0 and "ledger OK" in verify.stdout


def test_quality_officer_signs_a_unit_complete_in_the_browser(live_server, page):
    page.goto(live_server.url + "/login")
    page.fill("#username", "liu.yang")
    page.fill("#password", "demo-quality-2026")
    page.click("button[type=submit]")
    page.goto(live_server.url + "/units/Y-2026-002")
    form = page.locator("[data-testid=status-form]")
    form.locator("select").select_option("complete")
    form.locator("textarea").fill("product returned to the manufacturer; patient not infused")
    form.locator("input[type=password]").fill("demo-quality-2026")
    form.get_by_role("button").click()
    assert page.locator(".flash").inner_text() == "Unit Y-2026-002 is now complete."
    assert "Status: complete" in page.locator("[data-testid=status]").inner_text()
    assert "Liu Yang" in page.locator("[data-testid=status]").inner_text()
    assert page.locator("[data-testid=finding]").count() > 0  # its missing steps
    assert live_server.qms("verify").returncode == 0
