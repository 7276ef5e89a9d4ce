"""The notice outbox: each alert mailed once to the quality address of its site and to
the people it is for who have an address.

`mail_alert` (called where the alert is raised, in its transaction) makes one
`NoticeMail` per address with its Message-ID fixed; `deliver_notices` sends those whose
attempt is due, logging every try as a `NoticeAttempt`, with the same backoff and
24-hour window as report deliveries (a 5xx stops at once). The words are the alert's
code and parameters rendered when the mail is composed, in the notice's language (the
site's for its quality address, the person's own for a person). A notice
that fails for good is shown on the schedules page (it cannot be mailed about itself).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from sqlmodel import Session, func, select

from qms.config import Settings
from qms.db import Database
from qms.delivery.models import TEMPORARY, NoticeAttempt, NoticeMail


def _notice_id(alert_id: int, recipient: str) -> str:
    digest = hashlib.sha256(f"{alert_id}\n{recipient}".encode()).hexdigest()
    return f"NTC-{digest[:24]}"


def mail_alert(session: Session, alert, *, mail_domain: str = "qms.invalid") -> list[NoticeMail]:
    """One notice mail of `alert` per address concerned (the caller commits): the quality
    address of its site (of every site, for an alert of the whole installation), in the
    site's language; then each active person of those sites the alert is for (as in the
    app: the quality officers, and the owners or roles it names) who has an address, in
    the person's language. An address is mailed once."""
    from qms.accounts.models import Site
    from qms.scheduling.settings import quality_addresses

    if alert.site_id is not None:
        site_ids = [alert.site_id]
    else:
        site_ids = sorted(session.exec(select(Site.id)).all())
    languages = dict(session.exec(select(Site.id, Site.language)).all())
    wanted = [
        (site_id, address, languages.get(site_id) or "en")
        for site_id, address in quality_addresses(session, site_ids).items()
    ]
    wanted += _people_told(session, alert, site_ids, languages)
    made = []
    sent_to: set[str] = set()
    for site_id, address, language in wanted:
        if address.lower() in sent_to:
            continue
        sent_to.add(address.lower())
        notice_id = _notice_id(alert.id, address)
        row = NoticeMail(
            id=notice_id,
            alert_id=alert.id,
            site_id=site_id,
            recipient=address,
            language=language,
            message_id=f"<{notice_id.lower()}.{uuid.uuid4().hex[:12]}@{mail_domain}>",
            created_at=alert.at,
        )
        session.add(row)
        made.append(row)
    if made:
        session.flush()
    return made


def _people_told(
    session: Session, alert, site_ids: list[str], languages: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(site, address, language) of each person with an address the alert is for."""
    from qms.accounts.models import User, UserSite
    from qms.scheduling.alert_texts import addressed_to

    rows = session.exec(
        select(User, UserSite.site_id)
        .join(UserSite, UserSite.user_id == User.id)
        .where(
            UserSite.site_id.in_(site_ids),
            User.active.is_(True),
            User.email.is_not(None),
        )
        .order_by(User.id, UserSite.site_id)
    ).all()
    found = []
    for user, site_id in rows:
        if user.email and addressed_to(alert, user.id, user.role):
            found.append((site_id, user.email, user.language or languages.get(site_id) or "en"))
    return found


def notice_states(session: Session, notices: list[NoticeMail]):
    """Each notice's state (delivered, failed, waiting) from its attempts."""
    from qms.delivery.retries import state_of

    ids = [n.id for n in notices]
    attempts: dict[str, list[NoticeAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in session.exec(
            select(NoticeAttempt).where(NoticeAttempt.notice_id.in_(ids))
        ).all():
            attempts[attempt.notice_id].append(attempt)
    return [state_of(n, attempts[n.id]) for n in notices]


def deliver_notices(database: Database, settings: Settings, now: datetime, config) -> list[str]:
    """Send every notice mail whose attempt is due by `now` (the caller holds the outbox
    lock); one line per attempt."""
    from qms.delivery import mail
    from qms.delivery.retries import WAITING

    with database.transaction(write=False) as session:
        due = [
            s
            for s in notice_states(session, list(session.exec(select(NoticeMail)).all()))
            # A notice not tried yet leaves at once (whatever clock raised its alert).
            if s.status == WAITING and (not s.attempts or s.next_at <= now)
        ]
    lines = []
    for state in sorted(due, key=lambda s: (s.next_at, s.delivery.id)):
        notice = state.delivery
        if config is None:
            answer = mail.Answer(TEMPORARY, None, "no mail server configured (QMS_SMTP_URL)")
        else:
            answer = mail.send(config, compose(database, notice, config), notice.recipient)
        with database.transaction() as session:
            number = (
                session.exec(
                    select(func.max(NoticeAttempt.number)).where(
                        NoticeAttempt.notice_id == notice.id
                    )
                ).one()
                or 0
            ) + 1
            session.add(
                NoticeAttempt(
                    notice_id=notice.id,
                    number=number,
                    at=now,
                    recipient=notice.recipient,
                    outcome=answer.outcome,
                    smtp_code=answer.code,
                    smtp_text=answer.text,
                    message_id=notice.message_id,
                )
            )
        code = f" {answer.code}" if answer.code else ""
        lines.append(
            f"alert mail to {notice.recipient}: {answer.outcome}{code} {answer.text}".strip()
        )
    return lines


def compose(database: Database, notice: NoticeMail, config):
    """The mail of one alert, in the notice's language."""
    from qms.accounts.models import Site
    from qms.core.i18n import _
    from qms.delivery import mail
    from qms.reports.language import in_language
    from qms.scheduling.alert_texts import alert_text
    from qms.scheduling.models import Alert

    with database.transaction(write=False) as session:
        alert = session.get(Alert, notice.alert_id)
        site = session.get(Site, notice.site_id) if notice.site_id else None
    with in_language(notice.language):
        text = alert_text(alert, zone=site.timezone if site else "UTC")
        subject = _("qms alert: %(text)s", text=text)
        if len(subject) > 150:
            subject = subject[:147] + "..."
        body = "\n".join(
            [
                text,
                "",
                _("Site: %(site)s", site=alert.site_id or _("all sites")),
                _("Open qms to see it: your home page lists the alerts for you."),
            ]
        )
    return mail.build_message(
        config,
        to=notice.recipient,
        message_id=notice.message_id,
        subject=subject,
        body=body + "\n",
        pdf=None,
        file_name=None,
        date=notice.created_at,
    )
