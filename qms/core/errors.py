"""The errors a person can cause, one hierarchy that says what went wrong and maps to HTTP.

Services raise these; nothing was stored when one is raised, and the message says what
and why in words the person can act on. A view catches `Invalid` to show the message
beside the form; `Denied`, `NotFound` and `Conflict` reach the app's error handler and
become the 403, 404 and 409 pages (and the same status in the API). Commands catch
`QmsError` and print one line.
"""

from __future__ import annotations


class QmsError(ValueError):
    """Something asked of qms that cannot be done; nothing was stored."""

    http_status = 400


class Invalid(QmsError):
    """The input cannot be accepted as it is (a missing reason, an impossible time...)."""

    http_status = 400


class NotFound(QmsError):
    """The thing asked for does not exist (or is not visible to this person)."""

    http_status = 404


class Denied(QmsError):
    """This person may not do this: their role, their sites, or the checklist's step roles."""

    http_status = 403


class Conflict(QmsError):
    """It contradicts what is already recorded (recorded twice, already in that state)."""

    http_status = 409


class SignatureError(Invalid):
    """A signature could not be accepted (wrong password, stale session, wrong witness).

    `failed_username` names the account whose password was wrong: the caller records it
    (accounts.service.record_signature_failure) after rolling back, so that guessing a
    password at a signature counts towards the lockout as a failed sign-in does.
    """

    def __init__(self, message: str, *, failed_username: str | None = None):
        super().__init__(message)
        self.failed_username = failed_username


class FindingsNeedReason(Invalid):
    """The record breaks a rule: it is recorded only with a reason (it then becomes a finding)."""

    def __init__(self, message: str, findings: list):
        super().__init__(message)
        self.findings = list(findings)
