"""Mail over SMTP, configured from the environment, and the message a recipient reads.

QMS_SMTP_URL: `smtp://user:password@host:port` (plain, or `?starttls=1` to upgrade),
`smtps://...` for SSL from the start; QMS_MAIL_FROM (required to send), QMS_MAIL_REPLY_TO
(optional); QMS_CHECK_URL, if set, is the public check page the message links to (where
the recipient drops the PDF to learn whether it is registered and current). `send` speaks SMTP step by step so that the server's own
answer (code and text) to the message is what the attempt records.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote, urlsplit

from qms.delivery.models import ACCEPTED, PERMANENT, TEMPORARY

SMTP_TIMEOUT_S = 60


class MailConfigError(ValueError):
    """The mail settings cannot be used (one line that says which and why)."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    ssl: bool
    starttls: bool
    username: str | None
    password: str | None
    sender: str
    reply_to: str | None
    check_url: str | None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SmtpConfig | None:
        """The configuration, or None when QMS_SMTP_URL is not set (no mail is sent)."""
        env = os.environ if environ is None else environ
        url = env.get("QMS_SMTP_URL")
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise MailConfigError(
                f"QMS_SMTP_URL={_redact(url)!r}: write smtp://user:password@host:port "
                "(smtps:// for SSL, ?starttls=1 to upgrade)"
            )
        sender = env.get("QMS_MAIL_FROM")
        if not sender:
            raise MailConfigError("QMS_MAIL_FROM is not set: the address reports are sent from")
        query = parse_qs(parts.query)
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            ssl=parts.scheme == "smtps",
            starttls=query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
            reply_to=env.get("QMS_MAIL_REPLY_TO") or None,
            check_url=env.get("QMS_CHECK_URL") or None,
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


@dataclass(frozen=True)
class Answer:
    outcome: str  # accepted | temporary | permanent
    code: int | None
    text: str


def _classify(code: int, text: bytes | str) -> Answer:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if 200 <= code < 300:
        return Answer(ACCEPTED, code, words)
    return Answer(PERMANENT if 500 <= code < 600 else TEMPORARY, code, words)


def build_message(
    config: SmtpConfig,
    *,
    to: str,
    message_id: str,
    subject: str,
    body: str,
    pdf: bytes | None,
    file_name: str | None,
    date,
) -> EmailMessage:
    """One message; `pdf` None sends the text alone (an alert to a quality address)."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(date)
    message.set_content(body)
    if pdf is not None:
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=file_name)
    return message


def send(config: SmtpConfig, message: EmailMessage, to: str) -> Answer:
    """Send one message to one recipient; the server's answer, never an exception."""
    try:
        if config.ssl:
            client = smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=SMTP_TIMEOUT_S,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=SMTP_TIMEOUT_S)
    except (OSError, smtplib.SMTPException) as exc:
        return Answer(TEMPORARY, getattr(exc, "smtp_code", None), f"cannot connect: {exc}")
    try:
        client.ehlo()
        if config.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if config.username:
            client.login(config.username, config.password or "")
        for step in (
            lambda: client.mail(config.sender),
            lambda: client.rcpt(to),
            # CRLF line ends: smtplib sends bytes as they are, and servers refuse bare LFs.
            lambda: client.data(message.as_bytes(policy=policy.SMTP)),
        ):
            answer = _classify(*step())
            if answer.outcome != ACCEPTED:
                client.rset()
                return answer
        return answer
    except smtplib.SMTPResponseException as exc:
        return _classify(exc.smtp_code, exc.smtp_error)
    except (OSError, smtplib.SMTPException) as exc:
        return Answer(TEMPORARY, None, f"connection failed: {exc}")
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
