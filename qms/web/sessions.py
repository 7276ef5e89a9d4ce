"""The session cookie, and the requests that must not write it.

A session lives in a signed cookie, so the last answer to set it wins. A form's live check
and a label scan are asked while the form is filled in and can still be on their way when
the form is sent: answered after the step, their cookie (read before the step) would put
back the session the step replaced, losing its "recorded" message and the fresh password
time. Those requests read the session and leave it alone: `leaves_session_alone` marks
them, and the cookie is then not sent unless the request signed the user out.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user


def leaves_session_alone(view: Callable[..., Any]) -> Callable[..., Any]:
    """A view that reads the session but never sends it back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.qms_leaves_session_alone = True
        return view(*args, **kwargs)

    return wrapper


class SessionInterface(SecureCookieSessionInterface):
    def should_set_cookie(self, app, session) -> bool:  # noqa: ANN001 (Flask's signature)
        # A sign-out (an idle timeout found by this request) still clears the cookie.
        if g.get("qms_leaves_session_alone") and current_user.is_authenticated:
            return False
        return super().should_set_cookie(app, session)
