"""One database session per request, opened on first use and closed at teardown.

Requests that may write (anything but GET/HEAD/OPTIONS) get a write session, which on
SQLite takes the database lock at BEGIN. The view owns the commit.
"""

from __future__ import annotations

from flask import current_app, g, request
from sqlmodel import Session

from qms.db import Database
from qms.runtime import Runtime

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def app_runtime() -> Runtime:
    """The current app's settings, database and checklist registry."""
    return current_app.extensions["qms_runtime"]


def get_database() -> Database:
    return app_runtime().database


def db_session() -> Session:
    session = g.get("_qms_session")
    if session is None:
        write = request.method not in READ_METHODS if request else True
        session = get_database().session(write=write)
        g._qms_session = session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("_qms_session", None)
    if session is not None:
        # Anything the view did not commit is discarded, never half-written.
        session.rollback()
        session.close()
