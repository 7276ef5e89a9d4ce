"""Account tables: sites, wards, users, their site memberships, ward grants and login events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from qms.core.ledger import keep_append_only
from qms.db import UTCDateTime, utcnow


class Site(SQLModel, table=True):
    """A hospital (or one campus of it): the scope of records and reports."""

    id: str = Field(primary_key=True, max_length=32)  # e.g. SH-01
    name: str = Field(max_length=200)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    # The language pages are shown in when neither the user nor the browser chooses one.
    language: str = Field(default="en", max_length=16, sa_column_kwargs={"server_default": "en"})
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Ward(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("site_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(foreign_key="site.id", max_length=32)
    code: str = Field(max_length=32)
    name: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class User(SQLModel, table=True):
    """A person who signs in. Never deleted: records point at users; deactivate instead."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    full_name: str = Field(max_length=200)  # the printed name on e-signatures
    role: str = Field(max_length=32)
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    # Where reminders and alerts for this person are mailed (and a regulator's reports,
    # when a schedule names the account); None: no mail to the person.
    email: str | None = Field(default=None, max_length=254)
    # The language the user chose for pages; None: the browser's, else the site's.
    language: str | None = Field(default=None, max_length=16)
    # Signed-in sessions carry the version they began with; raising it ends them all.
    session_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    created_by_id: int | None = Field(default=None, foreign_key="app_user.id")


class UserSite(SQLModel, table=True):
    """A user's membership of a site; a regulator may belong to several."""

    __tablename__ = "user_site"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=32)


@keep_append_only
class LoginEvent(SQLModel, table=True):
    """One sign-in attempt or account event, appended, never changed.

    Lockout is computed from these rows: the failures since the last success or unlock.
    """

    __tablename__ = "login_event"
    __table_args__ = (Index("ix_login_event_username_at", "username", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    user_id: int | None = Field(default=None, foreign_key="app_user.id")
    kind: str = Field(max_length=16)  # success | failure | logout | timeout | unlock
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    remote_addr: str | None = Field(default=None, max_length=64)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")  # who unlocked


@keep_append_only
class WardGrant(SQLModel, table=True):
    """One grant or revocation of a ward to a user, appended, never changed.

    A user's wards are derived: for each (user, ward) the event with the highest `n` says
    whether it is held now. `n` counts the events of that pair (1, 2, 3 ...) and is unique
    with it, so two administrators deciding at once cannot both write the next event.
    """

    __tablename__ = "ward_grant"
    __table_args__ = (UniqueConstraint("user_id", "ward_id", "n"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    ward_id: int = Field(foreign_key="ward.id")
    n: int
    granted: bool  # True: the ward is granted; False: revoked
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    by_id: int | None = Field(default=None, foreign_key="app_user.id")  # None: the system
    reason: str = Field(sa_column=Column(Text, nullable=False))
