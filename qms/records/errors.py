"""The errors a user can cause when writing records: each message says what and why."""

from __future__ import annotations


class RecordError(ValueError):
    """A record that cannot be written as asked; nothing was stored. The message says why."""


class RecordNotFound(RecordError):
    pass


class RecordPermissionError(RecordError):
    """The person may not do this (role, site, or the checklist's step roles)."""


class SignatureError(RecordError):
    """A signature could not be accepted (wrong password, stale session, wrong witness).

    `failed_username` names the account whose password was wrong: the caller records it
    (accounts.service.record_signature_failure) after rolling back, so that guessing a
    password at a signature counts towards the lockout as a failed sign-in does.
    """

    def __init__(self, message: str, *, failed_username: str | None = None):
        super().__init__(message)
        self.failed_username = failed_username


class FindingsNeedReason(RecordError):
    """The record breaks a rule: it is recorded only with a reason (it then becomes a finding)."""

    def __init__(self, message: str, findings: list):
        super().__init__(message)
        self.findings = list(findings)
