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


def reads_only(view):
    """Mark a view that answers a POST without writing (the live check, a scan): its session
    is a read session, so that on SQLite it does not take the database's write lock and
    queue behind the writers."""
    view._qms_reads_only = True
    return view


def _writes() -> bool:
    if not request:
        return True
    if request.method in READ_METHODS:
        return False
    view = current_app.view_functions.get(request.endpoint)
    return not getattr(view, "_qms_reads_only", False)


def db_session() -> Session:
    session = g.get("_qms_session")
    if session is None:
        session = get_database().session(write=_writes())
        g._qms_session = session
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("_qms_session", None)
    if session is not None:
        # Anything the view did not commit is discarded, never half-written.
        session.rollback()
        session.close()
