"""The outbox: make each released report's deliveries once, send what is due, log every try.

`ensure_deliveries` makes one `Delivery` per (report, channel, recipient) under the
ledger's lock, each with its Message-ID fixed there and then. `deliver_pending` sends
the mail deliveries whose next attempt is due, one at a time, outside any transaction,
and chains a `DeliveryAttempt` with the server's answer after each. Retries back off
exponentially (1 minute, doubling, at most 4 hours apart) for 24 hours from the first
attempt; a permanent refusal (5xx) stops at once. A delivery that fails for good is an
alert for the site's quality officers (on their home page, and mailed to the site's
quality address through `qms.delivery.notices`). Portal deliveries (regulator accounts) are
accepted as soon as they are made: the report is in the regulator's portal.

Only one process sends at a time (the scheduler's leader election, and the outbox's
own lock for a `qms schedule run-due` beside a scheduler). A crash after the SMTP
server accepted a message and before its attempt was chained sends it again with the
same Message-ID at the next pass.
"""

from __future__ import annotations

import hashlib
import os
import signal
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from qms.config import Settings
from qms.core import ledger
from qms.db import Database
from qms.delivery.models import (
    ACCEPTED,
    EMAIL,
    PORTAL,
    TEMPORARY,
    Delivery,
    DeliveryAttempt,
    PortalOpen,
)
from qms.delivery.retries import (  # noqa: F401 - named here too
    DELIVERED,
    FAILED,
    RETRY_BASE,
    RETRY_CAP,
    RETRY_WINDOW,
    WAITING,
    DeliveryState,
    retry_delay,
    state_of,
)

DELIVERY_LOCK_KEY = 7_347_004


def crash_point(name: str) -> None:
    """Let the crash tests kill this process at a named point (only when they ask)."""
    if os.environ.get("QMS_DELIVERY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def states(session: Session, deliveries: list[Delivery]) -> list[DeliveryState]:
    ids = [d.id for d in deliveries]
    attempts: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in session.exec(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids))
        ).all():
            attempts[attempt.delivery_id].append(attempt)
    return [state_of(d, attempts[d.id]) for d in deliveries]


def _delivery_id(report_version_id: str, channel: str, recipient: str) -> str:
    digest = hashlib.sha256(f"{report_version_id}\n{channel}\n{recipient}".encode()).hexdigest()
    return f"DLV-{digest[:24]}"


def ensure_deliveries(
    *,
    session: Session,
    report,  # qms.reports.models.ReportVersion
    recipients: Iterable[str],
    regulators: Iterable[str],
    language: str,
    schedule_run_id: str | None,
    now: datetime,
    mail_domain: str = "qms.invalid",
) -> list[Delivery]:
    """One delivery per recipient of a released report, made once (the caller commits).

    A recipient without an @ is a regulator's account, mailed at the address the account
    has now, in its language. A regulator is mailed, or finds the report in their portal,
    only if they belong to every site the report covers (the rule a report is read by);
    otherwise the quality officers are told, once."""
    from qms.accounts.access import belongs_to_every
    from qms.accounts.models import User
    from qms.accounts.roles import Role
    from qms.reports.service import covered_sites
    from qms.scheduling import alerts

    ledger.lock(session)
    sites = covered_sites(session, report) or (report.site_id,)
    wanted: list[tuple[str, str, str | None]] = []
    for recipient in recipients:
        if "@" in recipient:
            wanted.append((EMAIL, recipient, None))
            continue
        user = session.exec(select(User).where(User.username == recipient)).first()
        if (
            user is None
            or not user.active
            or user.role != Role.REGULATOR
            or not user.email
            or not belongs_to_every(session, user.id, sites)
        ):
            alerts.raise_once(
                session,
                f"no-address:{report.id}:{recipient}",
                alerts.NO_ADDRESS,
                site_id=report.site_id,
                at=now,
                report=report.id,
                username=recipient,
            )
            continue
        wanted.append((EMAIL, user.email, user.language))
    for username in regulators:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None or not belongs_to_every(session, user.id, sites):
            alerts.raise_once(
                session,
                f"portal-refused:{report.id}:{username}",
                alerts.PORTAL_NOT_DELIVERED,
                site_id=report.site_id,
                at=now,
                report=report.id,
                username=username,
                sites=list(sites),
            )
            continue
        wanted.append((PORTAL, username, user.language))
    made = []
    for channel, recipient, account_language in wanted:
        delivery_id = _delivery_id(report.id, channel, recipient)
        if session.get(Delivery, delivery_id) is not None:
            continue
        row = Delivery(
            id=delivery_id,
            report_version_id=report.id,
            schedule_run_id=schedule_run_id,
            site_id=report.site_id,
            channel=channel,
            recipient=recipient,
            language=account_language or language,
            message_id=f"<{delivery_id.lower()}.{uuid.uuid4().hex[:12]}@{mail_domain}>",
            created_at=now,
        )
        ledger.write(session, row)
        made.append(row)
    return made


def _record(session: Session, delivery: Delivery, number: int, at: datetime, answer) -> None:
    ledger.write(
        session,
        DeliveryAttempt(
            id=f"{delivery.id}#{number}",
            delivery_id=delivery.id,
            number=number,
            at=at,
            channel=delivery.channel,
            recipient=delivery.recipient,
            outcome=answer.outcome,
            smtp_code=answer.code,
            smtp_text=answer.text,
            message_id=delivery.message_id,
        ),
    )


@dataclass(frozen=True)
class _Shown:
    outcome: str
    code: int | None
    text: str


def deliver_pending(
    database: Database, settings: Settings, now: datetime, *, config=None
) -> list[str]:
    """Send every delivery whose attempt is due by `now`; one line per attempt."""
    from qms.delivery import mail
    from qms.scheduling.leader import FileLeadership, PostgresLeadership

    if database.dialect == "postgresql" and not database.bound:
        lock = PostgresLeadership(database.url, key=DELIVERY_LOCK_KEY)
    else:
        lock = FileLeadership(settings.instance_path / "outbox.lock")
    if not lock.try_acquire():
        return ["outbox busy: another process is sending"]
    try:
        if config is None:
            config = mail.SmtpConfig.from_env()
        with database.transaction(write=False) as session:
            open_ones = [
                s
                for s in states(session, list(session.exec(select(Delivery)).all()))
                if s.status == WAITING and s.next_at is not None and s.next_at <= now
            ]
        lines = []
        for state in sorted(open_ones, key=lambda s: (s.next_at, s.delivery.id)):
            lines.append(_attempt(database, settings, state, now, config))
        from qms.delivery.notices import deliver_notices

        # Alerts raised above (a failed delivery) are mailed in the same pass.
        lines += deliver_notices(database, settings, now, config)
        return lines
    finally:
        lock.release()


def _attempt(database: Database, settings: Settings, state: DeliveryState, now, config) -> str:
    from qms.delivery import mail

    delivery = state.delivery
    number = len(state.attempts) + 1
    if delivery.channel == PORTAL:
        answer = _Shown(ACCEPTED, None, "in the regulator's portal")
    elif config is None:
        answer = _Shown(TEMPORARY, None, "no mail server configured (QMS_SMTP_URL)")
    else:
        message = compose(database, settings, delivery, config)
        answer = mail.send(config, message, delivery.recipient)
        if answer.outcome == ACCEPTED:
            crash_point("after-accept")
    with database.transaction() as session:
        _record(session, delivery, number, now, answer)
        after = state_of(delivery, [*state.attempts, _as_attempt(delivery, number, now, answer)])
        if after.status == FAILED:
            from qms.scheduling import alerts

            alerts.raise_alert(
                session,
                alerts.DELIVERY_FAILED,
                site_id=delivery.site_id,
                at=now,
                report=delivery.report_version_id,
                recipient=delivery.recipient,
                error=f"{answer.code or ''} {answer.text}".strip(),
            )
    code = f" {answer.code}" if answer.code else ""
    return (
        f"{delivery.channel} to {delivery.recipient}: {answer.outcome}{code} {answer.text}".strip()
    )


def _as_attempt(delivery: Delivery, number: int, at: datetime, answer) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=f"{delivery.id}#{number}",
        delivery_id=delivery.id,
        number=number,
        at=at,
        channel=delivery.channel,
        recipient=delivery.recipient,
        outcome=answer.outcome,
        smtp_code=answer.code,
        smtp_text=answer.text,
        message_id=delivery.message_id,
    )


def compose(database: Database, settings: Settings, delivery: Delivery, config):
    """The message for one delivery, in the recipient's language, with the PDF attached."""
    from qms.core.i18n import _
    from qms.delivery import mail
    from qms.reports import files
    from qms.reports.language import in_language
    from qms.reports.models import REPORT_TYPE_LABELS, ReportVersion

    with database.transaction(write=False) as session:
        report = session.get(ReportVersion, delivery.report_version_id)
        from qms.accounts.models import Site
        from qms.regions.models import Region
        from qms.reports.models import REGIONAL_ANNUAL

        # What the report covers: its site, or the region of a regional report.
        if report.type == REGIONAL_ANNUAL:
            region = session.get(Region, report.scope)
            covers = (region.name if region else report.scope, report.scope)
        else:
            site = session.get(Site, report.site_id)
            covers = (site.name, site.id)
    pdf = (files.reports_dir(settings) / report.file_name).read_bytes()
    with in_language(delivery.language):
        kind = str(REPORT_TYPE_LABELS.get(report.type, report.type))
        subject = _(
            "%(report)s: %(site)s, %(period)s", report=kind, site=covers[0], period=report.period
        )
        lines = [
            _(
                "Attached is the %(report)s of %(site)s (%(site_id)s) for %(period)s.",
                report=kind,
                site=covers[0],
                site_id=covers[1],
                period=report.period,
            ),
            "",
            _("Report: %(id)s", id=report.id),
            _("SHA-256 of the attached PDF: %(sha256)s", sha256=report.sha256),
        ]
        if config.check_url:
            lines.append(
                _(
                    "Check it on the public check page: %(url)s",
                    url=config.check_url,
                )
            )
        lines += [
            "",
            _(
                "If this message arrives twice with the same Message-ID, it is the same "
                "delivery: keep one."
            ),
        ]
    return mail.build_message(
        config,
        to=delivery.recipient,
        message_id=delivery.message_id,
        subject=subject,
        body="\n".join(lines) + "\n",
        pdf=pdf,
        file_name=report.file_name.rsplit("/", 1)[-1],
        date=delivery.created_at,
    )


# --- the portal ---------------------------------------------------------------------


def portal_deliveries(session: Session, username: str) -> list[tuple[Delivery, datetime | None]]:
    """A regulator's portal: each report delivered to them, with the date first opened."""
    rows = session.exec(
        select(Delivery)
        .where(Delivery.channel == PORTAL, Delivery.recipient == username)
        .order_by(Delivery.created_at.desc())
    ).all()
    opened: dict[str, datetime] = {}
    ids = [r.id for r in rows]
    if ids:
        for event in session.exec(select(PortalOpen).where(PortalOpen.delivery_id.in_(ids))).all():
            if event.delivery_id not in opened or event.at < opened[event.delivery_id]:
                opened[event.delivery_id] = event.at
    return [(r, opened.get(r.id)) for r in rows]


def record_open(session: Session, delivery: Delivery, user_id: int, at: datetime) -> None:
    session.add(PortalOpen(delivery_id=delivery.id, user_id=user_id, at=at))
    session.flush()
