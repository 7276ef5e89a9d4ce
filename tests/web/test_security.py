"""Security headers on every answer; no inline script or style for the policy to refuse;
NUL bytes refused as bad input, on both databases."""

from __future__ import annotations

import re

import pytest

from qms.paths import TEMPLATES_DIR
from qms.web.app import create_app


@pytest.mark.parametrize("path", ["/login", "/", "/static/qms.css", "/no/such/page", "/healthz"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP in tests


def test_hsts_when_cookies_are_secure(settings, database):
    app = create_app(settings.with_(secure_cookies=True), database=database)
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on...= handler"),
    (re.compile(r"javascript:", re.I), "a javascript: address"),
]


def test_templates_have_nothing_inline_the_policy_would_refuse():
    problems = []
    for path in sorted(TEMPLATES_DIR.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in INLINE:
                if pattern.search(line):
                    problems.append(
                        f"{path.relative_to(TEMPLATES_DIR)}:{number}: {what}; move it to a "
                        "file under qms/web/static/"
                    )
    assert not problems, "\n".join(problems)


def test_a_nul_byte_at_sign_in_is_bad_input(client, make_user, session, csrf_from):
    user = make_user("nurse", username="li.na")
    session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "li.na\x00", "password": "x", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert client.get("/?q=a%00b").status_code == 400
    assert user.active


def test_a_nul_byte_in_a_reason_or_a_name_is_bad_input(client, make_user, login, csrf_from):
    login(make_user("admin"))
    token = csrf_from(client.get("/admin/users/new").get_data(as_text=True))
    response = client.post(
        "/admin/users/new",
        data={
            "username": "wang.wei",
            "full_name": "Wang\x00Wei",
            "role": "nurse",
            "sites": ["SH-01"],
            "password": "a-long-enough-password",
            "reason": "new\x00nurse",
            "csrf_token": token,
        },
    )
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)
