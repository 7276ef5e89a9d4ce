"""The session cookie, and the requests that must not write it.

A session lives in a signed cookie, so the last answer to set it wins. A form's live check
and a label scan are asked while the form is filled in and can still be on their way when
the form is sent: answered after the step, their cookie (read before the step) would put
back the session the step replaced, losing its "recorded" message and the fresh password
time. Views marked `reads_only` (`qms.web.database`: they answer a POST without writing)
read the session and leave it alone: their answer sends no cookie, unless the request
signed the user out (an idle timeout found by it still clears the cookie).
"""

from __future__ import annotations

from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user


def _reads_only() -> bool:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    return bool(getattr(view, "_qms_reads_only", False))


class SessionInterface(SecureCookieSessionInterface):
    def should_set_cookie(self, app, session) -> bool:  # noqa: ANN001 (Flask's signature)
        if _reads_only() and current_user.is_authenticated:
            return False
        return super().should_set_cookie(app, session)
