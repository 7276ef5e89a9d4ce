"""Delivery tables: one delivery per (report, channel, recipient), every attempt a row.

A `Delivery` is the outbox entry: made once (unique report, channel and recipient),
with its Message-ID fixed before anything is sent, so a resend after a crash carries the
same one. Each `DeliveryAttempt` records when, to whom, over which channel, and the SMTP
server's answer (code and text). Both are chained and never changed; a delivery's state
(delivered, failed, waiting for a retry) is derived from its attempts. A `PortalOpen`
logs each time a regulator opens a report delivered to their portal.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from qms.core.ledger import TIME, declare, keep_append_only
from qms.core.ledger import Chained as C
from qms.core.models import ledger_seq_column
from qms.db import UTCDateTime, utcnow

EMAIL = "email"
PORTAL = "portal"

ACCEPTED = "accepted"  # the server took the message (2xx), or the portal shows it
TEMPORARY = "temporary"  # 4xx, or no connection: tried again later
PERMANENT = "permanent"  # 5xx: never tried again


class Delivery(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("report_version_id", "channel", "recipient"),)

    id: str = Field(primary_key=True, max_length=40)  # "DLV-<hash of report+channel+recipient>"
    report_version_id: str = Field(foreign_key="report_version.id", max_length=128, index=True)
    schedule_run_id: str | None = Field(default=None, max_length=72)
    site_id: str = Field(foreign_key="site.id", max_length=32, index=True)
    channel: str = Field(max_length=16)  # email | portal
    recipient: str = Field(max_length=254)  # an address, or a regulator's username
    language: str = Field(max_length=16)
    message_id: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ledger_seq: int = Field(sa_column=ledger_seq_column())


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: str = Field(primary_key=True, max_length=48)  # "<delivery id>#<n>"
    delivery_id: str = Field(foreign_key="delivery.id", max_length=40, index=True)
    number: int = Field(sa_column=Column(Integer, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=254)
    outcome: str = Field(max_length=16)  # accepted | temporary | permanent
    smtp_code: int | None = Field(default=None, sa_column=Column(Integer))
    smtp_text: str | None = Field(default=None, sa_column=Column(Text))
    message_id: str = Field(max_length=200)
    ledger_seq: int = Field(sa_column=ledger_seq_column())


@keep_append_only
class PortalOpen(SQLModel, table=True):
    """A regulator opened a report delivered to their portal (the first one is the date)."""

    __tablename__ = "portal_open"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(foreign_key="delivery.id", max_length=40, index=True)
    user_id: int = Field(foreign_key="app_user.id")
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


@keep_append_only
class NoticeMail(SQLModel, table=True):
    """The mail of one alert to one address (a site's quality address): made once, with
    its Message-ID fixed before it is sent; its attempts are `NoticeAttempt`s."""

    __tablename__ = "notice_mail"
    __table_args__ = (UniqueConstraint("alert_id", "recipient"),)

    id: str = Field(primary_key=True, max_length=40)  # "NTC-<hash of alert+recipient>"
    alert_id: int = Field(foreign_key="alert.id", index=True)
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=32)
    recipient: str = Field(max_length=254)
    language: str = Field(max_length=16)
    message_id: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


@keep_append_only
class NoticeAttempt(SQLModel, table=True):
    """One try at sending a notice mail, with the SMTP server's answer."""

    __tablename__ = "notice_attempt"
    __table_args__ = (UniqueConstraint("notice_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    notice_id: str = Field(foreign_key="notice_mail.id", max_length=40, index=True)
    number: int = Field(sa_column=Column(Integer, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recipient: str = Field(max_length=254)
    outcome: str = Field(max_length=16)  # accepted | temporary | permanent
    smtp_code: int | None = Field(default=None, sa_column=Column(Integer))
    smtp_text: str | None = Field(default=None, sa_column=Column(Text))
    message_id: str = Field(max_length=200)


def _text(column: str):
    return lambda get: None if get(column) is None else str(get(column))


DELIVERY = declare(
    Delivery,
    kind="delivery",
    chained=[
        C("id"),
        C("report", "report_version_id"),
        C("schedule_run", "schedule_run_id"),
        C("site", "site_id"),
        C("channel"),
        C("recipient"),
        C("language"),
        C("message_id"),
        C("created_at", encoding=TIME),
    ],
)

DELIVERY_ATTEMPT = declare(
    DeliveryAttempt,
    kind="delivery_try",  # ledger kinds are at most 16 characters
    chained=[
        C("id"),
        C("delivery", "delivery_id"),
        C("number", value=_text("number"), sql="CAST(t.number AS TEXT)"),
        C("at", encoding=TIME),
        C("channel"),
        C("recipient"),
        C("outcome"),
        C("smtp_code", value=_text("smtp_code"), sql="CAST(t.smtp_code AS TEXT)"),
        C("smtp_text"),
        C("message_id"),
    ],
)
