"""What every signing form shares: the signer's credential from the form or the session,
a refused signature counted towards the lockout, and the password's freshness kept.

A view that signs does::

    credential = signing.credential(user.id, password)
    try:
        service(..., credential=credential, ...)
    except Invalid as exc:
        signing.refuse(s, exc)
        flash(str(exc), "error")
        return back
    s.commit()
    signing.signed(password, now)
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, request, session
from sqlmodel import Session

from qms.accounts import service as accounts
from qms.core.errors import SignatureError
from qms.records.signatures import Credential, FreshSession, PasswordEntry


def credential(user_id: int, password: str | None) -> Credential:
    """The password typed for this signature, or the proof of when it was last typed."""
    if password:
        return PasswordEntry(password)
    entered = datetime.fromtimestamp(session.get("password_at", 0), UTC)
    return FreshSession(user_id, entered)


def refuse(s: Session, exc: Exception) -> None:
    """Undo what the failed write did; a wrong password still counts towards the
    lockout (under the site's own threshold), like a wrong password at sign-in."""
    s.rollback()
    if isinstance(exc, SignatureError) and exc.failed_username:
        settings = current_app.extensions["qms_settings"]
        accounts.record_signature_failure(
            session=s,
            username=exc.failed_username,
            remote_addr=request.remote_addr,
            lockout=accounts.Lockout.of(settings),
        )
        s.commit()


def signed(password: str | None, now: datetime) -> None:
    """After a committed signature: a password typed now starts a new freshness window."""
    if password:
        session["password_at"] = now.timestamp()
