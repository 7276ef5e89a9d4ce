"""The quality officer's month: an audit, a deviation confirmed and a finding dismissed, a
CAPA with two actions, a nurse's evidence, a second officer's approval, and the
effectiveness check coming due (driven by `qms audit effectiveness-due --now`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.browser

SHANGHAI = ZoneInfo("Asia/Shanghai")
QO_PASSWORD = "demo-quality-2026"
SECOND_PASSWORD = "second-officer-2026"


def _late_unit(day: datetime) -> str:
    """A Kymriah unit infused 55 minutes after its thaw (the limit is 30)."""

    def at(minutes: int) -> str:
        return (day + timedelta(minutes=minutes)).isoformat()

    lines = [
        {
            "type": "unit",
            "id": "K-2026-101",
            "checklist": "kymriah",
            "site": "SH-01",
            "profile": "cn",
            "coi_id": "CHG123426ABC101",
            "patient": "P-0101",
            "attributes": {"age_years": 40},
        },
        {
            "type": "step",
            "unit": "K-2026-101",
            "step": "identity_check",
            "at": at(0),
            "by": "li.na",
            "witness": "wang.wei",
            "fields": {
                "product_patient_id": "P-0101",
                "wristband_patient_id": "P-0101",
                "coi_id": "CHG123426ABC101",
            },
        },
        {
            "type": "step",
            "unit": "K-2026-101",
            "step": "thaw_end",
            "at": at(20),
            "by": "li.na",
            "fields": {"temperature_c": 37},
        },
        {
            "type": "step",
            "unit": "K-2026-101",
            "step": "infusion_start",
            "at": at(70),
            "by": "li.na",
            "fields": {"rate_ml_min": 15, "filter": "none"},
            "reason": "pump alarm",
        },
        {
            "type": "step",
            "unit": "K-2026-101",
            "step": "infusion_end",
            "at": at(75),
            "by": "li.na",
            "fields": {"volume_ml": 45},
        },
    ]
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def _sign_in(page, url, username, password):
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _sign_out(page):
    page.locator("form[action='/logout'] button").click()


def _flash(page) -> str:
    return page.locator(".flash").first.inner_text()


def test_quality_officer_month_from_audit_to_effectiveness(live_server, page, tmp_path):
    today = datetime.now(SHANGHAI)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(_late_unit((today - timedelta(days=2)).replace(hour=8, minute=0)))
    imported = live_server.qms("import", str(extra))
    assert imported.returncode == 0, imported.stderr
    made = live_server.qms(
        "user", "create", "--username", "zhou.qing", "--full-name", "Zhou Qing",
        "--role", "quality_officer", "--site", "SH-01", "--password", SECOND_PASSWORD,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = live_server.url

    # The audit of the month.
    _sign_in(page, url, "liu.yang", QO_PASSWORD)
    page.click("nav >> text=Quality")
    form = page.locator("[data-testid=new-run]")
    form.locator("#from").fill((today - timedelta(days=30)).date().isoformat())
    form.locator("#to").fill(today.date().isoformat())
    form.get_by_role("button").click()
    assert re.match(r"Audit AUD-SH01-\d{4}-0001 recorded\.", _flash(page))
    assert "3 units" in page.locator("[data-testid=counts]").inner_text()  # the demo's two and ours
    window = page.locator("tr[data-finding]", has_text="kymriah.thaw_to_infusion")
    window.locator("input[value=confirmed]").check()
    window.locator("input[type=password]").fill(QO_PASSWORD)
    window.get_by_role("button").click()
    assert "reviewed" in _flash(page)
    receipt = page.locator("tr[data-finding]", has_text="kymriah.receipt.done")
    receipt.locator("input[value=dismissed]").check()
    receipt.locator("textarea").fill("received before go-live; the paper record is on file")
    receipt.locator("input[type=password]").fill(QO_PASSWORD)
    receipt.get_by_role("button").click()
    receipt = page.locator("tr[data-finding]", has_text="kymriah.receipt.done")
    assert "paper record is on file" in receipt.locator("[data-testid=rationale]").inner_text()
    assert "Liu Yang" in receipt.inner_text()

    # The deviation, then a CAPA with two actions.
    window = page.locator("tr[data-finding]", has_text="kymriah.thaw_to_infusion")
    window.locator("[data-testid=review] a").click()
    deviation_url = page.url
    deviation_id = deviation_url.rsplit("/", 1)[1]
    for action in ("assigned", "investigation_started", "capa_required"):
        step = page.locator(f"form[data-action={action}]")
        step.locator("input[type=password]").fill(QO_PASSWORD)
        step.get_by_role("button").click()
        assert "updated" in _flash(page), _flash(page)
    assert page.locator("[data-testid=status]").inner_text() == "CAPA required"
    capa_form = page.locator("[data-testid=new-capa]")
    capa_form.locator("#capa-title").fill("Spare pump on the cell therapy unit")
    capa_form.locator("#capa-owner").select_option("liu.yang")
    capa_form.locator("input[type=password]").fill(QO_PASSWORD)
    capa_form.get_by_role("button").click()
    capa_url = page.url
    due = (today + timedelta(days=14)).date().isoformat()
    for title, owner in (
        ("Buy a spare pump", "liu.yang"),
        ("Train the ward on pump alarms", "li.na"),
    ):
        action = page.locator("[data-testid=action-form]")
        action.locator("#action-title").fill(title)
        action.locator("#action-owner").select_option(owner)
        action.locator("#action-due").fill(due)
        action.locator("input[type=password]").fill(QO_PASSWORD)
        action.get_by_role("button").click()
        assert "Action added" in _flash(page), _flash(page)
    evidence = page.locator("section[data-action='1'] [data-testid=evidence-form]")
    evidence.locator("textarea").fill("Pump PX-2 delivered to the ward")
    evidence.locator("input[type=password]").fill(QO_PASSWORD)
    evidence.locator("button[type=submit]").click()
    done = page.locator("section[data-action='1'] [data-testid=done-form]")
    done.locator("input[type=password]").fill(QO_PASSWORD)
    done.get_by_role("button").click()
    _sign_out(page)

    # The nurse records evidence on her action, with a file.
    _sign_in(page, url, "li.na", "demo-nurse-2026")
    page.goto(capa_url)
    sheet = tmp_path / "attendance.txt"
    sheet.write_text("Pump alarm training, 12 nurses")
    evidence = page.locator("section[data-action='2'] [data-testid=evidence-form]")
    evidence.locator("textarea").fill("Ward trained")
    evidence.locator("input[type=file]").set_input_files(str(sheet))
    evidence.locator("input[type=password]").fill("demo-nurse-2026")
    evidence.locator("button[type=submit]").click()
    assert "Evidence recorded" in _flash(page), _flash(page)
    assert "attendance.txt" in page.locator("section[data-action='2']").inner_text()
    done = page.locator("section[data-action='2'] [data-testid=done-form]")
    done.locator("input[type=password]").fill("demo-nurse-2026")
    done.get_by_role("button").click()
    assert (
        "done" in page.locator("section[data-action='2'] [data-testid=action-status]").inner_text()
    )
    _sign_out(page)

    # The owner may not approve; the second officer does, and closes the deviation.
    _sign_in(page, url, "liu.yang", QO_PASSWORD)
    page.goto(capa_url)
    close = page.locator("[data-testid=close-form]")
    close.locator("input[type=password]").fill(QO_PASSWORD)
    close.get_by_role("button").click()
    assert "other than its owner" in _flash(page)
    _sign_out(page)
    _sign_in(page, url, "zhou.qing", SECOND_PASSWORD)
    page.goto(capa_url)
    close = page.locator("[data-testid=close-form]")
    close.locator("input[type=password]").fill(SECOND_PASSWORD)
    close.get_by_role("button").click()
    assert "approved" in _flash(page)
    due_text = page.locator("[data-testid=effectiveness-due]").inner_text()
    assert "Effectiveness check due" in due_text and "due now" not in due_text
    page.goto(deviation_url)
    closing = page.locator("form[data-action=closed]")
    closing.locator("input[type=password]").fill(SECOND_PASSWORD)
    closing.get_by_role("button").click()
    assert page.locator("[data-testid=status]").inner_text() == "closed"

    # 91 days later the check is due: the system re-runs the audit for the CAPA's rules.
    later = (datetime.now(UTC) + timedelta(days=91)).isoformat()
    prepared = live_server.qms("audit", "effectiveness-due", "--now", later)
    assert prepared.returncode == 0, prepared.stderr
    assert "1 effectiveness check(s) prepared" in prepared.stdout
    page.goto(capa_url)
    assert "0 findings recurred" in page.locator("[data-testid=recurred]").inner_text()
    verdict = page.locator("[data-testid=verdict-form]")
    verdict.locator("input[value=yes]").check()
    verdict.locator("input[type=password]").fill(SECOND_PASSWORD)
    verdict.get_by_role("button").click()
    assert "recorded" in _flash(page)
    assert "effective" in page.locator("[data-testid=verdict]").inner_text()
    assert deviation_id in page.locator("[data-testid=capa]").inner_text()
    verified = live_server.qms("verify")
    assert verified.returncode == 0 and "ledger OK" in verified.stdout
