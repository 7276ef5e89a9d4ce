"""Error pages: each says what happened and what to do next."""

from __future__ import annotations

import logging

from flask import render_template
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, InternalServerError

from qms.core.errors import QmsError
from qms.core.i18n import _, _l

log = logging.getLogger(__name__)

ADVICE = {
    400: (
        _l("The request could not be understood"),
        _l("Go back, check what you entered and try again."),
    ),
    403: (
        _l("You may not do this"),
        _l("Your role does not allow this page or action. If you need it, ask your administrator."),
    ),
    404: (
        _l("Not found"),
        _l(
            "The page or record does not exist. Check the address, or start again from the home page."
        ),
    ),
    405: (
        _l("Not allowed"),
        _l("This address does not accept that kind of request. Start again from the home page."),
    ),
    409: (
        _l("This conflicts with what is already recorded"),
        _l(
            "Someone may have recorded this at the same time. Reload the page to see the current records, then try again."
        ),
    ),
    413: (_l("Too large"), _l("The file or form is larger than the system accepts.")),
    422: (_l("The form has problems"), _l("Correct what is marked and submit again.")),
    500: (
        _l("Something went wrong on our side"),
        _l(
            "Nothing you entered was saved partly: either all of it was saved or none. Reload to check, and tell your administrator the time this happened."
        ),
    ),
}


def _render(code: int, detail: str | None):
    title, advice = ADVICE.get(code, (_l("Error"), _l("Start again from the home page.")))
    return render_template(
        "errors/error.html", code=code, title=title, advice=advice, detail=detail
    ), code


def init_app(app) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        return _render(
            400,
            _(
                "The form's security token was missing or has expired. Reload the page and submit the form again."
            ),
        )

    @app.errorhandler(IntegrityError)
    def _conflict(error: IntegrityError):
        # Two people wrote the same thing at once (a username, a record id): the database
        # kept the first; this request's transaction is rolled back at teardown.
        log.warning("write conflict: %s", error.orig)
        return _render(
            409, _("Someone else recorded this at the same moment; your change was not saved.")
        )

    @app.errorhandler(QmsError)
    def _refused(error: QmsError):
        # A service refused (denied, not found, a conflict, invalid input) and the view
        # let it through: the page of its status, with the service's message.
        return _render(error.http_status, str(error))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        detail = (
            error.description
            if error.description and error.description != type(error).description
            else None
        )
        return _render(error.code, detail)

    @app.errorhandler(InternalServerError)
    def _internal(error: InternalServerError):
        log.exception("unhandled error", exc_info=error.original_exception)
        return _render(500, None)
