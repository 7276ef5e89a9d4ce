"""The security headers every answer carries, refusing NUL bytes in what is sent, and
showing bidirectional controls in what is printed."""

from __future__ import annotations

from flask import Flask, abort, request
from markupsafe import Markup

from qms.core.i18n import _

# Scripts and styles come from files the app serves (qms/web/static/), never inline:
# templates carry no <script> body, no on*= handler and no style= attribute.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",  # the signature forms must not be framed
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask, *, secure_cookies: bool) -> None:
    @app.after_request
    def _headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if secure_cookies:
            # Secure cookies mean the app is served over HTTPS: browsers keep to it.
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    app.before_request(refuse_nul_bytes)
    app.jinja_env.finalize = show_bidi_controls


def refuse_nul_bytes():
    """A NUL byte is never text a person typed: refuse it as bad input before any view
    (PostgreSQL cannot store it; SQLite would store it silently)."""
    sent = [request.args]
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent.append(request.form)
    texts = [request.path] + [
        text for data in sent for key, values in data.lists() for text in (key, *values)
    ]
    if any("\x00" in text for text in texts):
        abort(400, description=_("The request contains a NUL character, which no text may hold."))


# Bidirectional controls reorder what is shown (U+202E makes "exe.txt" read "txt.exe"):
# in a regulated record a reader must see them, so every page shows them as their code.
BIDI_CONTROLS = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_VISIBLE = {code: f"[U+{code:04X}]" for code in BIDI_CONTROLS}


def show_bidi_controls(value):
    """The Jinja `finalize` hook: every printed text shows bidi controls as [U+202E]."""
    if isinstance(value, str) and not value.isascii():
        shown = str(value).translate(_VISIBLE)
        return Markup(shown) if isinstance(value, Markup) else shown
    return value
