"""Delivery by mail to a real SMTP server on loopback, and to the regulators' portal."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from qms.accounts.service import Actor
from qms.core.verify import verify
from qms.db import Database
from qms.delivery import mail
from qms.delivery.models import Delivery, DeliveryAttempt
from qms.delivery.service import (
    DELIVERED,
    FAILED,
    deliver_pending,
    ensure_deliveries,
    portal_deliveries,
    states,
)
from qms.scheduling.models import Alert
from tests.conftest import make_test_settings
from tests.delivery_helpers import Mailbox, SmtpServer

pytestmark = pytest.mark.slow
T0 = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def dossier(tmp_path, fresh_database_url):
    """A committed demonstration database with one generated (signed) unit dossier."""
    from qms.demo import load_demo
    from qms.reports.keys import make_demo_keys
    from qms.reports.service import generate_report

    settings = make_test_settings(tmp_path, fresh_database_url)
    database = Database(fresh_database_url)
    make_demo_keys(settings, site_name="Test Hospital")
    with database.transaction() as session:
        load_demo(session=session)
    with database.transaction() as session:
        report = generate_report(
            session=session,
            settings=settings,
            who=Actor.system("test"),
            report_type="unit-dossier",
            scope="K-2026-001",
            language="zh",
        )
    yield database, settings, report
    database.dispose()


def _config(server: SmtpServer) -> mail.SmtpConfig:
    return mail.SmtpConfig.from_env(
        {
            "QMS_SMTP_URL": server.url,
            "QMS_MAIL_FROM": "qms@hospital.example",
            "QMS_MAIL_REPLY_TO": "quality@hospital.example",
            "QMS_CHECK_URL": "https://qms.hospital.example/check-report",
        }
    )


def _deliveries(database, report, **kw):
    with database.transaction() as session:
        made = ensure_deliveries(
            session=session,
            report=report,
            recipients=kw.get("recipients", ["bureau@example.org"]),
            regulators=kw.get("regulators", ["zhao.lei"]),
            language="zh_CN",
            schedule_run_id=None,
            now=T0,
        )
    return made


def _attempts(database):
    with database.transaction(write=False) as session:
        return list(session.exec(select(DeliveryAttempt).order_by(DeliveryAttempt.at)).all())


def test_a_report_arrives_with_its_pdf_whose_sha256_is_the_registrys(dossier):
    database, settings, report = dossier
    made = _deliveries(database, report)
    assert _deliveries(database, report) == []  # made once
    with SmtpServer(Mailbox()) as server:
        lines = deliver_pending(database, settings, T0, config=_config(server))
        assert len(lines) == 2, lines
        assert any(
            line.startswith("email to bureau@example.org: accepted 250") for line in lines
        ), lines
        (message,) = server.mailbox.received
    email = next(d for d in made if d.channel == "email")
    assert message["Message-ID"] == email.message_id
    assert message["Reply-To"] == "quality@hospital.example"
    (attachment,) = list(message.iter_attachments())
    pdf = attachment.get_content()
    assert attachment.get_content_type() == "application/pdf"
    assert hashlib.sha256(pdf).hexdigest() == report.sha256
    body = message.get_body(("plain",)).get_content()
    assert report.sha256 in body and "https://qms.hospital.example/check-report" in body
    assert "附" in body or "报告" in body  # in the recipient's language (Chinese)
    attempts = _attempts(database)
    assert {(a.channel, a.outcome) for a in attempts} == {
        ("email", "accepted"),
        ("portal", "accepted"),
    }
    assert next(a for a in attempts if a.channel == "email").smtp_code == 250
    with database.transaction(write=False) as session:
        assert [d.id for d, opened in portal_deliveries(session, "zhao.lei")] == [
            d.id for d in made if d.channel == "portal"
        ]
        assert verify(session).ok
    # Nothing is sent again.
    assert deliver_pending(database, settings, T0 + timedelta(days=1)) == []


def test_a_server_that_refuses_for_a_while_is_retried_with_backoff_until_it_accepts(dossier):
    database, settings, report = dossier
    _deliveries(database, report, regulators=[])
    refusals = ["451 4.3.0 Try again later"] * 3
    with SmtpServer(Mailbox(refusals)) as server:
        config = _config(server)
        now = T0
        assert deliver_pending(database, settings, now, config=config)[0].startswith(
            "email to bureau@example.org: temporary 451"
        )
        # Not yet: the next attempt waits one minute, then two, then four.
        assert deliver_pending(database, settings, now + timedelta(seconds=59), config=config) == []
        for wait in (1, 2, 4):
            now += timedelta(minutes=wait)
            assert len(deliver_pending(database, settings, now, config=config)) == 1
        assert len(server.mailbox.received) == 1 and server.mailbox.refused == 3
    attempts = _attempts(database)
    assert [(a.number, a.outcome, a.smtp_code) for a in attempts] == [
        (1, "temporary", 451),
        (2, "temporary", 451),
        (3, "temporary", 451),
        (4, "accepted", 250),
    ]
    assert len({a.message_id for a in attempts}) == 1  # the same Message-ID each time
    with database.transaction(write=False) as session:
        (state,) = states(session, list(session.exec(select(Delivery)).all()))
        assert state.status == DELIVERED


def test_a_permanent_refusal_stops_at_once_and_alerts_quality_officers(dossier):
    from qms.delivery.models import NoticeAttempt
    from qms.scheduling.settings import set_site_setting

    database, settings, report = dossier
    with database.transaction() as session:
        set_site_setting(session=session, actor=Actor.system("test"), site_id="SH-01",
                         name="quality_address", value="quality@hospital.example",
                         reason="the quality team's mailbox", now=T0)  # fmt: skip
    _deliveries(database, report, regulators=[])
    with SmtpServer(Mailbox(["550 5.1.1 Mailbox unavailable"])) as server:
        config = _config(server)
        lines = deliver_pending(database, settings, T0, config=config)
        assert (
            lines[-1]
            == "alert mail to quality@hospital.example: accepted 250 2.0.0 Ok: queued as TEST"
        )
        assert deliver_pending(database, settings, T0 + timedelta(hours=2), config=config) == []
        # The refused report never arrived; the quality address was told, once.
        (told,) = server.mailbox.received
    assert told["To"] == "quality@hospital.example"
    assert "bureau@example.org" in told.get_body(("plain",)).get_content()
    assert "550" in told.get_body(("plain",)).get_content()
    with database.transaction(write=False) as session:
        assert [a.outcome for a in session.exec(select(NoticeAttempt)).all()] == ["accepted"]
    (attempt,) = _attempts(database)
    assert (attempt.outcome, attempt.smtp_code) == ("permanent", 550)
    assert "Mailbox unavailable" in attempt.smtp_text
    with database.transaction(write=False) as session:
        (state,) = states(session, list(session.exec(select(Delivery)).all()))
        assert state.status == FAILED
        (alert,) = session.exec(select(Alert)).all()
    assert alert.code == "delivery.failed" and alert.site_id == "SH-01"
    assert "550" in json.loads(alert.params)["error"]


def test_no_server_at_all_is_retried_for_24_hours_then_failed(dossier):
    database, settings, report = dossier
    _deliveries(database, report, regulators=[])
    from tests.delivery_helpers import free_port

    config = mail.SmtpConfig.from_env(
        {"QMS_SMTP_URL": f"smtp://127.0.0.1:{free_port()}", "QMS_MAIL_FROM": "qms@h.example"}
    )
    now = T0
    for _ in range(60):  # 30 hours of passes
        deliver_pending(database, settings, now, config=config)
        now += timedelta(minutes=30)
    attempts = _attempts(database)
    assert all(a.outcome == "temporary" and a.smtp_code is None for a in attempts)
    assert attempts[-1].at - attempts[0].at <= timedelta(hours=24)
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] <= timedelta(hours=4, minutes=30)
    with database.transaction(write=False) as session:
        assert [a.code for a in session.exec(select(Alert)).all()] == ["delivery.failed"]


def test_mail_settings_are_read_from_the_environment():
    config = mail.SmtpConfig.from_env(
        {"QMS_SMTP_URL": "smtps://qms%40h:p%40ss@mail.h.example", "QMS_MAIL_FROM": "q@h.example"}
    )
    assert (config.host, config.port, config.ssl, config.username, config.password) == (
        "mail.h.example",
        465,
        True,
        "qms@h",
        "p@ss",
    )
    assert mail.SmtpConfig.from_env(
        {"QMS_SMTP_URL": "smtp://h:587?starttls=1", "QMS_MAIL_FROM": "a@b.c"}
    ).starttls
    assert mail.SmtpConfig.from_env({}) is None
    with pytest.raises(mail.MailConfigError, match="QMS_MAIL_FROM"):
        mail.SmtpConfig.from_env({"QMS_SMTP_URL": "smtp://h:25"})
    with pytest.raises(mail.MailConfigError, match="smtp://user:password@host:port"):
        mail.SmtpConfig.from_env({"QMS_SMTP_URL": "http://h", "QMS_MAIL_FROM": "a@b.c"})
